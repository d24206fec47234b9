package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRestorePITRReplayFlags: a bad --replay, --applier-threads or
// --applier-mode is a usage error naming the flag, and the target
// directory is not created.
func TestRestorePITRReplayFlags(t *testing.T) {
	store := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--replay", "fast"}, "--replay"},
		{[]string{"--applier-threads", "0"}, "--applier-threads 0"},
		{[]string{"--applier-mode", "none"}, `--applier-mode "none"`},
		{[]string{"--applier-mode", "Optimistic"}, "want one of optimistic, aggressive, conservative, minimal"},
	} {
		target := filepath.Join(t.TempDir(), "target")
		args := append([]string{"restore", "--storage", store, "--pitr-gtid", "7-11-5", "--target-dir", target}, tc.args...)
		_, errOut, code := run(t, args...)
		if code != ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d with %q", args, code, errOut, ExitUsage, tc.want)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("%q: target %s exists after a usage error (%v)", args, target, err)
		}
	}
}
