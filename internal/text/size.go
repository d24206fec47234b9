package text

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseSize parses a byte count, the one size rule of every gosst option
// (rate limits, part sizes, use-memory, innodb_page_size): a non-negative
// decimal integer (a leading + is allowed), optionally followed by K, M, G or T (case-insensitive,
// powers of 1024 as in MariaDB's option files), optionally followed by B
// or iB. So 512, 512B, 64K, 64k, 64KB, 64KiB and 64kib are all accepted;
// KB means 1024 bytes, never 1000. Surrounding blanks are ignored. A
// negative number, another suffix, or a value above 2^63-1 bytes is an
// error.
func ParseSize(s string) (int64, error) {
	num := strings.TrimSpace(s)
	u := strings.ToUpper(num)
	switch {
	case strings.HasSuffix(u, "IB"):
		u = u[:len(u)-2]
		if u == "" || strings.IndexByte("KMGT", u[len(u)-1]) < 0 {
			return 0, fmt.Errorf("bad size %q: want a byte count such as 512, 64K, 100M or 2GiB", s)
		}
	case strings.HasSuffix(u, "B"):
		u = u[:len(u)-1]
	}
	shift := 0
	if u != "" {
		if i := strings.IndexByte("KMGT", u[len(u)-1]); i >= 0 {
			shift = 10 * (i + 1)
			u = u[:len(u)-1]
		}
	}
	n, err := strconv.ParseInt(u, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q: want a byte count such as 512, 64K, 100M or 2GiB", s)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("bad size %q: more than %d bytes", s, int64(math.MaxInt64))
	}
	return n << shift, nil
}
