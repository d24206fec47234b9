package cli

import (
	"strings"
	"testing"
)

// TestRestoreContinueUsage: --continue needs a new target and replays
// into its own directory; the mistakes are usage errors before any
// storage is opened.
func TestRestoreContinueUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--continue", dir}, "needs the new target"},
		{[]string{"--continue", dir, "--pitr-gtid", "7-11-5", "--target-dir", dir}, "give no --target-dir"},
		{[]string{"--continue", dir, "--pitr-gtid", "7-11-5", "--force"}, "give no --target-dir"},
		{[]string{"--continue", dir, "--pitr-gtid", "7-11-5", "--galera"}, "give no --target-dir"},
		{[]string{"--continue", dir, "--pitr-gtid", "7-11-5", "latest"}, "give no backup id"},
	} {
		args := append([]string{"restore", "--storage", "/nonexistent/gosst-store"}, tc.args...)
		_, errOut, code := run(t, args...)
		if code != ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d with %q", args, code, errOut, ExitUsage, tc.want)
		}
	}
}
