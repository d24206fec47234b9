package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bad configuration is refused before the service touches anything: no
// connection, no storage, nothing deleted.
func TestScheduleRefusesBadConfiguration(t *testing.T) {
	store := filepath.Join(t.TempDir(), "never-created")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--full-schedule", "0 4 * *"}, "--full-schedule"},
		{[]string{"--incremental-schedule", "every hour"}, "--incremental-schedule"},
		{[]string{"--verify-schedule", "0 61 * * *"}, "--verify-schedule"},
		{[]string{"--full-schedule", "@daily", "--keep-full", "-1"}, "keep-full"},
		{[]string{"--full-schedule", "@daily", "--pitr-window", "soon"}, "--pitr-window"},
		{[]string{"--full-schedule", "@daily", "--keep-days", "-3"}, "keep-days"},
		{[]string{"--archive-binlogs=false"}, "nothing to do"},
		{[]string{"--full-schedule", "@daily", "--lease-ttl", "1s"}, "--lease-ttl"},
		{[]string{"--full-schedule", "@daily", "--max-lag", "10ms"}, "--max-lag"},
		{[]string{"--full-schedule", "@daily", "--bogus"}, "unknown flag"},
	} {
		args := append([]string{"--no-defaults", "schedule", "--storage", store, "--socket", "/nonexistent.sock"}, tc.args...)
		_, errOut, code := run(t, args...)
		if code != ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d naming %q", tc.args, code, errOut, ExitUsage, tc.want)
		}
		if _, err := os.Stat(store); !os.IsNotExist(err) {
			t.Fatalf("%q: the storage was touched (%v)", tc.args, err)
		}
	}
}

// A [galera-backup] group sets schedule's flags like any other command's,
// and a bad value there is refused naming the file.
func TestScheduleOptionFile(t *testing.T) {
	dir := t.TempDir()
	cnf := filepath.Join(dir, "my.cnf")
	if err := os.WriteFile(cnf, []byte("[galera-backup]\nfull-schedule = 0 4 * *\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run(t, "--defaults-file", cnf, "schedule", "--storage", filepath.Join(dir, "s"))
	if code != ExitUsage || !strings.Contains(errOut, "--full-schedule") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
