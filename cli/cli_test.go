package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut strings.Builder
	code := Main(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--bogus"},
		{"status", "--timeout", "soon"},
		{"status", "extra-arg"},
		{"no-such-command"},
		{"--log-level", "loud", "version"},
	} {
		_, errOut, code := run(t, args...)
		if code != ExitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, code, ExitUsage, errOut)
		}
		if !strings.HasPrefix(errOut, "galera-backup: ") {
			t.Errorf("%q: stderr %q lacks the program prefix", args, errOut)
		}
	}
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "galera-backup ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestStatusUnreachable(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := run(t, "status", "--json", "--timeout", "2s", "--socket", filepath.Join(dir, "none.sock"), "--node", "u@tcp(127.0.0.1:1)/")
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d; stderr %q", code, ExitFailure, errOut)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("bad JSON %q: %v", out, err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
	for _, r := range rows {
		if r["error"] == nil || r["node"] == nil {
			t.Errorf("row %v lacks node or error", r)
		}
		if _, ok := r["wsrep_local_state_comment"]; ok {
			t.Errorf("error row %v carries status fields", r)
		}
	}
}

func TestStatusTableShowsErrorRow(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	out, _, code := run(t, "status", "--socket", sock)
	if code != ExitFailure || !strings.Contains(out, "unix:"+sock) || !strings.Contains(out, "ERROR:") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}

func TestStatusRefusesReadableDefaultsFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "my.cnf")
	if err := os.WriteFile(p, []byte("[client]\nuser=monitor\npassword=Pw-9f3kQ\nsocket=/nonexistent\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "status", "--defaults-file", p)
	if code == 0 || !strings.Contains(out, "chmod 600") {
		t.Fatalf("exit %d, out %q, err %q: want a refusal naming chmod 600", code, out, errOut)
	}
	if strings.Contains(out+errOut, "Pw-9f3kQ") {
		t.Fatal("the password leaked into the output")
	}
}
