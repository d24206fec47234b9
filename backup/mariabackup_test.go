package backup

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/storage/mem"
	"github.com/gosst/gosst/stream/xbstream"
)

// fakeMariabackup writes a shell script standing in for mariabackup; it
// records its arguments and MYSQL_PWD in <dir>/args.
func fakeMariabackup(t testing.TB, body string) (path, argsLog string) {
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

// TestStreamWithFakeMariabackup: a backup stream with MariaDB 11.x's
// metadata names is stored whole and fills the manifest; mariabackup gets
// the password only in MYSQL_PWD, and a secret it prints is not logged.
func TestStreamWithFakeMariabackup(t *testing.T) {
	const uuid = "6b94087a-e947-11f1-b506-2f33047b60b8"
	var buf bytes.Buffer
	w := xbstream.NewWriter(&buf)
	for _, e := range []struct{ path, data string }{
		{"backup-my.cnf", "[mysqld]\ninnodb_page_size=16384\n"},
		{"ibdata1", strings.Repeat("page", 5000)},
		{"shop/orders.ibd", "rows"},
		{"mariadb_backup_checkpoints", "backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 48312\nlast_lsn = 48324\n"},
		{"mariadb_backup_galera_info", uuid + ":23 7\n"},
		{"mariadb_backup_binlog_info", "mariadb-bin.000003\t11810\t7-11-23\n"},
		{"mariadb_backup_info", "tool_version = 11.4.5-MariaDB\nserver_version = 11.4.5-MariaDB-log\n"},
	} {
		if _, err := w.WriteFile(e.path, strings.NewReader(e.data), 0); err != nil {
			t.Fatal(err)
		}
	}
	xbs := filepath.Join(t.TempDir(), "backup.xbs")
	if err := os.WriteFile(xbs, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	mb, argsLog := fakeMariabackup(t, `echo "[00] Encryption plugin parameter :  '--file_key_management_filekey=s3cr3t'" >&2
cat `+xbs+`
echo "[00] completed OK!" >&2
`)
	var logged bytes.Buffer
	be := mem.New()
	o := Options{Node: mariadb.Target{Host: "127.0.0.1", Port: 1, User: "bk", Password: "pw"}, Mariabackup: mb, TmpDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{ID: "20261204T220000Z-00000002", Type: TypeFull}
	var written string
	obj, scan, err := o.stream(context.Background(), &Catalog{Store: be}, m, nil, thisProcess(), &written)
	if err != nil {
		t.Fatal(err)
	}
	if oi, err := be.Stat(context.Background(), obj.Key); err != nil || oi.Size != obj.Size || written != obj.Key || obj.PlainSize != int64(buf.Len()) {
		t.Errorf("stored %+v: %+v %v (plain %d bytes)", obj, oi, err, buf.Len())
	}
	if err := scan.Fill(m); err != nil {
		t.Fatal(err)
	}
	if m.LSN != (LSNRange{From: 0, To: 48312, Last: 48324}) || m.Galera != (GaleraPosition{UUID: uuid, Seqno: 23, DomainID: 7}) ||
		m.Binlog != (BinlogPosition{File: "mariadb-bin.000003", Position: 11810, GTID: "7-11-23"}) || m.MariaBackupVersion != "11.4.5-MariaDB" ||
		len(m.Tables) != 1 || m.Tables[0] != (Table{Schema: "shop", Name: "orders", Engine: "InnoDB"}) {
		t.Errorf("manifest from the 11.x metadata: %+v", m)
	}
	args, _ := os.ReadFile(argsLog)
	if !strings.HasSuffix(string(args), " --user=bk --host=127.0.0.1 --port=1 pwd=pw\n") {
		t.Errorf("mariabackup's command line and MYSQL_PWD: %q", args)
	}
	if strings.Contains(logged.String(), "s3cr3t") || !strings.Contains(logged.String(), "filekey=<redacted>") || !strings.Contains(logged.String(), "completed OK!") {
		t.Errorf("mariabackup's output in the log:\n%s", logged.String())
	}
}
