package pitrtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

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
	insert(1, 50)
	flush(t, n1)
	mustGB(t, "backup", "--storage", store, "--socket", n2.Socket, "--user", "root", "--recipient", id.Recipient().String(), "--log-level", "warn")
	insert(51, 100)
	flush(t, n1)
	insert(101, 150)
	flush(t, n1)
	out := mustGB(t, "binlog", "archive", "--storage", store, "--socket", n1.Socket, "--user", "root", "--recipient", id.Recipient().String(), "--log-level", "warn")
	t.Logf("archive: %s", out)
	out = mustGB(t, "list", "--pitr", "--storage", store)
	t.Logf("list --pitr:\n%s", out)

	// Without the key: refused with a clear message.
	dir := filepath.Join(t.TempDir(), "data")
	out, code := gb(t, "restore", "--pitr-gtid", seqs[120], "--target-dir", dir, "--storage", store)
	if code == 0 || !strings.Contains(out, "encrypted") {
		t.Fatalf("restore without a key: exit %d\n%s", code, out)
	}
	dir = filepath.Join(t.TempDir(), "data")
	out = mustGB(t, "restore", "--pitr-gtid", seqs[120], "--target-dir", dir, "--storage", store, "--identity", keyFile, "--log-level", "warn")
	t.Logf("restore: %s", out)
	db, stop := standalone(t, dir)
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
	if n != 119 {
		t.Fatalf("restored %d rows before %s, want exactly 119", n, seqs[120])
	}
	fmt.Fprint(os.Stderr)
}
