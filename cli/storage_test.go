package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// TestStorageRetriesAreLogged: the CLI gives storage its logger, so each
// retry against a failing endpoint (here a loopback listener that closes
// every connection before answering) is a warning on stderr with the
// operation, the attempt out of the budget and the reason; before, the
// storage had no logger and retried silently.
func TestStorageRetriesAreLogged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	store := "s3://bucket/galera?region=us-east-1&path-style=true&endpoint=http://" + ln.Addr().String()
	_, errOut, code := run(t, "list", "--storage", store, "--log-format", "json")
	if code != ExitFailure || !strings.Contains(errOut, "giving up after 5 attempts") {
		t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and the error after 5 attempts", code, errOut, ExitFailure)
	}
	var retries []string
	for _, line := range strings.Split(errOut, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != "storage: retrying after transient error" {
			continue
		}
		if m["level"] != "WARN" || m["op"] != "list" || m["err"] == nil {
			t.Errorf("retry line %s lacks level WARN, op list or the error", line)
		}
		retries = append(retries, fmt.Sprint(m["attempt"]))
	}
	if want := []string{"1/5", "2/5", "3/5", "4/5"}; fmt.Sprint(retries) != fmt.Sprint(want) {
		t.Errorf("retry warnings for attempts %v, want %v; stderr:\n%s", retries, want, errOut)
	}
	if n := conns.Load(); n != 5 {
		t.Errorf("%d connections for one list, want 5", n)
	}
}
