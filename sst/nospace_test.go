package sst

import (
	"fmt"
	"os"
	"syscall"
	"testing"
)

// TestNoSpaceExitCode: a joiner whose disk fills up while it receives
// must exit 28 (ENOSPC), which mysqld logs as "No space left on device",
// not 32 ("Broken pipe"), which sends the operator to the network.
func TestNoSpaceExitCode(t *testing.T) {
	full := fmt.Errorf("xbstream: offset 4194304: file %q: %w", "ibdata1",
		&os.PathError{Op: "write", Path: "/var/lib/mysql/.gosst-sst/ibdata1", Err: syscall.ENOSPC})
	for _, tc := range []struct {
		name      string
		got, want int
	}{
		{"codeOr", codeOr(full, 32), ExitNoSpace},
		{"ExitCode", ExitCode(fmt.Errorf("receive: %w", full)), ExitNoSpace},
		{"codeOr, other write error", codeOr(fmt.Errorf("w: %w", syscall.EIO), 32), 32},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}
