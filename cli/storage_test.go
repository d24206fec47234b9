package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readOnlyCommands open storage only to read it.
func readOnlyCommands(store, target string) [][]string {
	return [][]string{
		{"list", "--storage", store},
		{"list", "--pitr", "--storage", store},
		{"show", "latest", "--storage", store},
		{"verify", "latest", "--storage", store},
		{"restore", "latest", "--target-dir", target, "--storage", store},
		{"binlog", "list", "--storage", store},
	}
}

// TestReadOnlyCommandsNeverCreateStorage: list, show, verify, restore and
// binlog list on a storage directory that does not exist fail with a
// message naming it and --storage, and leave it missing.
func TestReadOnlyCommandsNeverCreateStorage(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "galera")
	for _, args := range readOnlyCommands(store, filepath.Join(dir, "target")) {
		_, errOut, code := run(t, append(args, "--log-level", "error")...)
		if code != ExitFailure || !strings.Contains(errOut, "no backup storage at "+store) || !strings.Contains(errOut, "--storage") {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and a message naming the missing storage", args, code, errOut, ExitFailure)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("%q created %s", args, ents[0].Name())
		}
	}
	t.Setenv("GOSST_STORAGE", store)
	if _, errOut, code := run(t, "list"); code != ExitFailure || !strings.Contains(errOut, "GOSST_STORAGE") {
		t.Errorf("list with GOSST_STORAGE set to a missing directory: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Errorf("list created %s: %v", store, err)
	}
}

// TestMistypedStorageURL: a URL with a mistyped scheme is a usage error
// saying what was meant, for every command, and creates no directory named
// after it (it used to create ./s3: and exit 0).
func TestMistypedStorageURL(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct{ url, want string }{
		{"s3:/bucket/galera", `did you mean "s3://bucket/galera"`},
		{"s3:bucket", `did you mean "s3://bucket"`},
		{"minio:/10.0.0.5:9000/b", `did you mean "minio://10.0.0.5:9000/b"`},
		{"file:/var/backups/galera", `did you mean "file:///var/backups/galera"`},
		{"gs://bucket", "unknown URL scheme"},
	} {
		cmds := append(readOnlyCommands(tc.url, filepath.Join(dir, "target")),
			[]string{"backup", "--storage", tc.url, "--socket", filepath.Join(dir, "none.sock")},
			[]string{"binlog", "archive", "--storage", tc.url, "--socket", filepath.Join(dir, "none.sock")})
		for _, args := range cmds {
			_, errOut, code := run(t, append(args, "--log-level", "error")...)
			if code != ExitUsage || !strings.Contains(errOut, tc.want) {
				t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", args, code, errOut, ExitUsage, tc.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("%q created %s", args, ents[0].Name())
			}
		}
	}
}
