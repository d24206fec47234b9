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
	if code != ExitUsage || !strings.Contains(errOut, cnf+":2: [galera-backup] full-schedule: ") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// A value that only schedule's own checks refuse (after the option files
// were applied) is named by file, line, group and key when it came from an
// option file, and by its flag when it came from the command line. Nothing
// runs, and nothing is deleted.
func TestScheduleOptionFileErrorsNameTheLine(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	// Credentials, so the S3 client asks no metadata service (loopback only).
	t.Setenv("AWS_ACCESS_KEY_ID", "gosst-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "gosst-test-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	store := filepath.Join(dir, "store")
	noParent := filepath.Join(dir, "no-such-dir", "store")
	for _, tc := range []struct {
		name, text string
		args       []string // after the storage flag, on the command line
		code       int
		want       string // after "FILE:" in the message
	}{
		{"bad cron expression", "[galera-backup]\nincremental-schedule = 0 25 * * *\n", nil, ExitUsage,
			"2: [galera-backup] incremental-schedule: "},
		{"negative keep-days", "[galera-backup]\nfull-schedule=@daily\n# retention\nkeep-days = -3\n", nil, ExitUsage,
			"4: [galera-backup] keep-days: retention: "},
		{"bad pitr-window", "[galera-backup]\nfull-schedule=@daily\npitr-window = soon\n", nil, ExitUsage,
			"3: [galera-backup] pitr-window: retention: "},
		{"a policy that would delete every backup", "[galera-backup]\nfull-schedule=@daily\n\npitr-window = 0\n", nil, ExitUsage,
			"4: [galera-backup] pitr-window: retention: retention refused: \"0\" keeps nothing"},
		{"lease-ttl too short", "[galera-backup]\nfull-schedule=@daily\nlease-ttl=1s\n", nil, ExitUsage,
			"3: [galera-backup] lease-ttl: 1s is too short"},
		{"bad rate limit", "[galera-backup]\nfull-schedule=@daily\nrate-limit=fast\n", nil, ExitUsage,
			"3: [galera-backup] rate-limit: "},
		{"mistyped storage URL", "[galera-backup]\nfull-schedule=@daily\nstorage=s3//bucket/x\n", []string{}, ExitUsage,
			"3: [galera-backup] storage: "},
		{"storage that cannot be created", "[galera-backup]\nfull-schedule=@daily\nstorage=" + noParent + "\n", []string{}, ExitFailure,
			"3: [galera-backup] storage: cannot create backup storage"},
		{"unreachable S3 storage", "[galera-backup]\nfull-schedule=@daily\nstorage=s3://bucket/x?endpoint=http://127.0.0.1:1&region=us-east-1&max-attempts=1\n", []string{}, ExitFailure,
			"3: [galera-backup] storage: storage s3://bucket/x?endpoint=http://127.0.0.1:1&region=us-east-1&max-attempts=1 cannot be reached"},
		{"unreachable node", "[client]\nsocket=" + filepath.Join(dir, "none.sock") + "\n[galera-backup]\nfull-schedule=@daily\n", nil, ExitFailure,
			"2: [client] socket: read wsrep_node_name of the local node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := cnf(t, dir, "bad.cnf", tc.text, 0o600)
			args := []string{"schedule", "--defaults-file", p}
			if tc.args == nil {
				args = append(args, "--storage", store)
			}
			_, errOut, code := run(t, args...)
			if code != tc.code || !strings.Contains(errOut, p+":"+tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, p+":"+tc.want)
			}
			if _, err := os.Stat(noParent); !os.IsNotExist(err) {
				t.Fatalf("storage created under a missing parent: %v", err)
			}
		})
	}
	// A flag given on the command line wins over the file, and is named
	// as a flag.
	p := cnf(t, dir, "ttl.cnf", "[galera-backup]\nfull-schedule=@daily\nlease-ttl=1s\n", 0o600)
	if _, errOut, code := run(t, "schedule", "--defaults-file", p, "--storage", store, "--lease-ttl", "2s"); code != ExitUsage ||
		!strings.Contains(errOut, "galera-backup: --lease-ttl: 2s is too short") {
		t.Errorf("command line over file: exit %d, stderr %q", code, errOut)
	}
	// The same values on the command line are named by their flag.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--full-schedule", "@daily", "--keep-days", "-3"}, "--keep-days: retention: "},
		{[]string{"--full-schedule", "@daily", "--pitr-window", "0"}, "--pitr-window: retention: retention refused"},
		{[]string{"--full-schedule", "@daily", "--lease-ttl", "1s"}, "--lease-ttl: 1s is too short"},
		{[]string{"--full-schedule", "@daily", "--storage", noParent}, "--storage: cannot create backup storage"},
	} {
		args := append([]string{"--no-defaults", "schedule", "--storage", store, "--socket", filepath.Join(dir, "none.sock")}, tc.args...)
		_, errOut, code := run(t, args...)
		if code == ExitOK || !strings.Contains(errOut, "galera-backup: "+tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %q", tc.args, code, errOut, tc.want)
		}
	}
}
