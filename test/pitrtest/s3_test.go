package pitrtest

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/gosst/gosst/stream/crypt"
	"github.com/gosst/gosst/test/gbtest"
	"github.com/gosst/gosst/test/s3server"
)

// TestPITRThroughS3Encrypted: backup of node 2, binlogs of node 1 archived
// encrypted to a real S3 server (TLS); the replay starts by GTID in another
// node's files and stops before a GTID, checked row by row.
func TestPITRThroughS3Encrypted(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	srv := s3server.Require(t, s3server.Options{TLS: true, Buckets: []string{"galera"}})
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	q := url.Values{}
	q.Set("endpoint", srv.Endpoint)
	q.Set("path-style", "true")
	q.Set("ca", srv.CAFile)
	store := "s3://galera/prod?" + q.Encode()

	id, _ := age.GenerateX25519Identity()
	keyFile := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n1, n2 := clu.Node(1), clu.Node(2)
	if err := n2.Exec(ctx, "CREATE DATABASE IF NOT EXISTS pitr; CREATE TABLE pitr.s3 (id INT PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	seqs := map[int]string{}
	insert := func(from, to int) {
		for i := from; i <= to; i++ {
			conn, err := n2.DB().Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.ExecContext(ctx, "INSERT INTO pitr.s3 VALUES (?)", i); err != nil {
				t.Fatal(err)
			}
			var g string
			if err := conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&g); err != nil {
				t.Fatal(err)
			}
			conn.Close()
			seqs[i] = g
		}
	}
	// A second, local storage holds the same backup point and node 2's own
	// binlogs: there the replay starts at the backup's file/position.
	local := t.TempDir()
	// node 1's binlog is not rotated here: its file holds transactions on
	// both sides of the backup point. The local backup is taken last, so
	// node 2's binlog file it names holds the rows after it.
	insert(1, 50)
	mustGB(t, "backup", "--storage", store, "--socket", n2.Socket, "--user", "root", "--recipient", id.Recipient().String(), "--log-level", "warn")
	mustGB(t, "backup", "--storage", local, "--socket", n2.Socket, "--user", "root", "--log-level", "warn")
	insert(51, 100)
	flush(t, n1)
	insert(101, 150)
	flush(t, n1)
	flush(t, n2)
	out := mustGB(t, "binlog", "archive", "--storage", store, "--socket", n1.Socket, "--user", "root", "--recipient", id.Recipient().String(), "--log-level", "warn")
	t.Logf("archive: %s", out)
	out = mustGB(t, "binlog", "archive", "--storage", local, "--socket", n2.Socket, "--user", "root", "--log-level", "warn")
	t.Logf("archive of node2 (local): %s", out)
	out = mustGB(t, "list", "--pitr", "--storage", store)
	t.Logf("list --pitr:\n%s", out)

	// Without the key: refused with a clear message.
	dir := filepath.Join(t.TempDir(), "data")
	out, code := gb(t, "restore", "--pitr-gtid", seqs[120], "--target-dir", dir, "--storage", store)
	if code == 0 || !strings.Contains(out, "encrypted") {
		t.Fatalf("restore without a key: exit %d\n%s", code, out)
	}
	// A wrong key with --force over a datadir: refused before anything is
	// downloaded, naming the key the backup needs; the datadir unchanged.
	dir = filepath.Join(t.TempDir(), "data")
	old := gbtest.OldDatadir(t, dir)
	other, _ := age.GenerateX25519Identity()
	wrongKey := filepath.Join(t.TempDir(), "wrong.txt")
	if err := os.WriteFile(wrongKey, []byte(other.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fp := crypt.Fingerprint(id.Recipient().String())
	out, code = gb(t, "restore", "--pitr-gtid", seqs[120], "--force", "--target-dir", dir, "--storage", store, "--identity", wrongKey)
	if code == 0 || !strings.Contains(out, "no identity matched") || !strings.Contains(out, fp) {
		t.Fatalf("restore --pitr --force with a wrong key: exit %d, want an error naming fingerprint %s\n%s", code, fp, out)
	}
	if gbtest.TreeHash(t, dir) != old || len(gbtest.StagingLeft(t, dir)) != 0 {
		t.Fatalf("restore --pitr --force with a wrong key changed the target or left staging\n%s", out)
	}
	dir = filepath.Join(t.TempDir(), "data")
	out = mustGB(t, "restore", "--pitr-gtid", seqs[120], "--target-dir", dir, "--storage", store, "--identity", keyFile, "--log-level", "warn")
	t.Logf("restore: %s", out)
	if !strings.Contains(out, "started at after GTID") || !strings.Contains(out, "on "+n1.Name) || strings.Contains(out, "start of the segment") {
		t.Fatalf("the replay should start by GTID in node1's files: %s", out)
	}
	checkS3Rows(t, dir, 119, seqs[120])

	// The replay fails (--replay=client: a mariadb client that exits 1; mariabackup and
	// mariadb-binlog are the real ones): the datadir is unchanged.
	dir = filepath.Join(t.TempDir(), "data")
	old = gbtest.OldDatadir(t, dir)
	func() {
		bin := t.TempDir()
		for _, name := range []string{"mariabackup", "mariadb-binlog"} {
			p, err := exec.LookPath(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(p, filepath.Join(bin, name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink("/bin/false", filepath.Join(bin, "mariadb")); err != nil {
			t.Fatal(err)
		}
		path := os.Getenv("PATH")
		os.Setenv("PATH", bin)
		defer os.Setenv("PATH", path)
		// The fake client only exists in client mode (the applier's SQL
		// thread failing is TestPITRApplierSQLError).
		out, code = gb(t, "restore", "--replay", "client", "--pitr-gtid", seqs[120], "--force", "--target-dir", dir, "--storage", local)
	}()
	if gbtest.TreeHash(t, dir) != old || len(gbtest.StagingLeft(t, dir)) != 0 {
		t.Fatalf("a PITR whose replay failed changed the target or left staging (exit %d)\n%s", code, out)
	}
	if code == 0 || !strings.Contains(out, "replay binlogs") {
		t.Fatalf("a PITR whose replay failed: exit %d\n%s", code, out)
	}

	// Killed after the replay, just before the swap: the datadir is
	// unchanged; the next run removes the leftover and replaces it.
	dir = filepath.Join(t.TempDir(), "data")
	old = gbtest.OldDatadir(t, dir)
	gbtest.RunKilledAt(t, "replayed", "restore", "--pitr-gtid", seqs[120], "--force", "--target-dir", dir, "--storage", local, "--log-level", "warn")
	if gbtest.TreeHash(t, dir) != old || len(gbtest.StagingLeft(t, dir)) != 1 {
		t.Fatalf("a PITR killed after its replay changed the target or left no staging dir: %v", gbtest.StagingLeft(t, dir))
	}
	out = mustGB(t, "restore", "--pitr-gtid", seqs[120], "--force", "--target-dir", dir, "--storage", local, "--log-level", "warn")
	if left := gbtest.StagingLeft(t, dir); len(left) != 0 || !strings.Contains(out, "removed the staging directory of an interrupted restore") {
		t.Fatalf("the next PITR did not remove the killed run's staging dir (%v):\n%s", left, out)
	}
	t.Logf("restore (local, node2 binlogs): %s", out)
	if !strings.Contains(out, "started at backup position") || !strings.Contains(out, "on "+n2.Name) {
		t.Fatalf("the replay should start at the backup's own position in node2's files: %s", out)
	}
	checkS3Rows(t, dir, 119, seqs[120])
}

func checkS3Rows(t *testing.T, dir string, want int, target string) {
	t.Helper()
	db, stop := gbtest.Standalone(t, dir)
	defer stop()
	rs, err := db.Query("SELECT id FROM pitr.s3 ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	n := 0
	for rs.Next() {
		var id int
		if err := rs.Scan(&id); err != nil {
			t.Fatal(err)
		}
		n++
		if id != n {
			t.Fatalf("row %d has id %d", n, id)
		}
	}
	if n != want {
		t.Fatalf("restored %d rows before %s, want exactly %d", n, target, want)
	}
}
