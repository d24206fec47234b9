package backup

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/storage/mem"
)

// fakeMariabackup writes a shell script standing in for mariabackup; it
// records its arguments and MYSQL_PWD in <dir>/args.
func fakeMariabackup(t *testing.T, body string) (path, argsLog string) {
	t.Helper()
	dir := t.TempDir()
	path, argsLog = filepath.Join(dir, "mariabackup"), filepath.Join(dir, "args")
	script := "#!/bin/sh\necho \"$* pwd=$MYSQL_PWD\" >> " + argsLog + "\n" + body
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, argsLog
}

// TestStreamFailingBackupTail: mariabackup --backup fails after closing
// its stdout; the error names its exit status and ends with its last
// stderr line, which it wrote after the stream ended (stderr is read to
// its end before the exit status is taken), and nothing is stored as
// complete.
func TestStreamFailingBackupTail(t *testing.T) {
	mb, argsLog := fakeMariabackup(t, `exec 1>&-
i=0; while [ $i -lt 2000 ]; do echo "[01] copying ./ibdata1 $i"; i=$((i+1)); done >&2
echo "[00] FATAL ERROR: simulated backup failure" >&2
exit 1
`)
	be := mem.New()
	cat := &Catalog{Store: be}
	o := Options{Node: mariadb.Target{Host: "127.0.0.1", Port: 1, User: "bk", Password: "s3cr3t"}, Mariabackup: mb, TmpDir: t.TempDir()}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{ID: "20261204T220000Z-00000001", Type: TypeFull}
	var written string
	_, _, err := o.stream(context.Background(), cat, m, nil, thisProcess(), &written)
	if err == nil {
		t.Fatal("a failed mariabackup --backup was stored as a complete stream")
	}
	msg := err.Error()
	if !strings.Contains(msg, "mariabackup failed: exit status 1") || !strings.HasSuffix(msg, "[00] FATAL ERROR: simulated backup failure") ||
		!strings.Contains(msg, "--- mariabackup output (last lines) ---\n[01] copying ./ibdata1 1961\n") {
		t.Errorf("error does not end with mariabackup's last 40 lines:\n%s", msg)
	}
	args, rerr := os.ReadFile(argsLog)
	if rerr != nil || !strings.Contains(string(args), "--backup ") || !strings.Contains(string(args), "--user=bk") ||
		strings.Contains(strings.TrimSuffix(string(args), " pwd=s3cr3t\n"), "s3cr3t") {
		t.Errorf("mariabackup's command line and MYSQL_PWD: %q %v", args, rerr)
	}
}

// TestPrepareFailureTail: a failing mariabackup --prepare (of a base, or
// applying an incremental) fails the restore with its exit status and its
// last lines of output, stdout and stderr together.
func TestPrepareFailureTail(t *testing.T) {
	mb, argsLog := fakeMariabackup(t, `echo "[00] starting prepare"
i=0; while [ $i -lt 100 ]; do echo "[00] applying $i" >&2; echo; i=$((i+1)); done
echo "[00] FATAL ERROR: simulated prepare failure" >&2
exit 2
`)
	o := RestoreOptions{Mariabackup: mb, UseMemory: "64M", Logger: slog.New(slog.DiscardHandler)}
	base, inc := t.TempDir(), t.TempDir()
	err := o.prepare(context.Background(), base, inc)
	if err == nil {
		t.Fatal("a failed prepare succeeded")
	}
	msg := err.Error()
	want := "mariabackup apply incremental " + filepath.Base(inc) + " failed: exit status 2\n"
	if !strings.HasPrefix(msg, want) || !strings.HasSuffix(msg, "[00] applying 99\n[00] FATAL ERROR: simulated prepare failure") ||
		strings.Count(msg, "\n") != 25 {
		t.Errorf("error is not the prepare's exit status and its last 25 lines:\n%s", msg)
	}
	args, _ := os.ReadFile(argsLog)
	if got := strings.TrimSpace(string(args)); got != "--prepare --target-dir="+base+" --use-memory=64M --incremental-dir="+inc+" pwd=" {
		t.Errorf("prepare's command line: %q", got)
	}

	ok, _ := fakeMariabackup(t, "echo done >&2\n")
	o.Mariabackup = ok
	if err := o.prepare(context.Background(), base, ""); err != nil {
		t.Errorf("a successful prepare: %v", err)
	}
}
