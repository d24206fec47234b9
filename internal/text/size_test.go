package text

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"512", 512, true},
		{" 512 ", 512, true},
		{"512B", 512, true},
		{"512b", 512, true},
		{"64K", 64 << 10, true},
		{"64k", 64 << 10, true},
		{"64KB", 64 << 10, true},
		{"64KiB", 64 << 10, true},
		{"64kib", 64 << 10, true},
		{"100M", 100 << 20, true},
		{"5MiB", 5 << 20, true},
		{"16m", 16 << 20, true},
		{"2G", 2 << 30, true},
		{"2GiB", 2 << 30, true},
		{"1T", 1 << 40, true},
		{"1tb", 1 << 40, true},
		{"8388607T", 8388607 << 40, true},
		{"9223372036854775807", math.MaxInt64, true},
		{"8388608T", 0, false}, // 2^63: overflow
		{"9223372036854775808", 0, false},
		{"", 0, false},
		{"K", 0, false},
		{"B", 0, false},
		{"KiB", 0, false},
		{"iB", 0, false},
		{"5iB", 0, false},
		{"-1", 0, false},
		{"-1K", 0, false},
		{"+1", 1, true},
		{"-0", 0, true},
		{"1P", 0, false},
		{"1.5G", 0, false},
		{"lots", 0, false},
		{"fast", 0, false},
		{"1 K", 0, false},
		{"1KK", 0, false},
		{"0x10", 0, false},
	} {
		got, err := ParseSize(c.in)
		if c.ok && (err != nil || got != c.want) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
		if !c.ok && err == nil {
			t.Errorf("ParseSize(%q) = %d; want an error", c.in, got)
		}
		if !c.ok && err != nil && !strings.Contains(err.Error(), "bad size") {
			t.Errorf("ParseSize(%q) error %q does not say bad size", c.in, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "512", "64K", "64KiB", "100MB", "2g", "1T", "-1", "8388608T", "KiB", " 7 ", "1.5G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d: negative", s, n)
		}
		// The plain byte count it gives parses back to itself.
		if m, err := ParseSize(strings.Repeat(" ", len(s)%2) + strconv.FormatInt(n, 10)); err != nil || m != n {
			t.Fatalf("ParseSize(%q) = %d, but %d parses to %d, %v", s, n, n, m, err)
		}
	})
}
