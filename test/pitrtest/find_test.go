package pitrtest

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosst/gosst/test/cluster"
	"github.com/gosst/gosst/test/gbtest"
)

func nodeSum(t *testing.T, n *cluster.Node, table string) string {
	t.Helper()
	var c, sum int64
	if err := n.DB().QueryRowContext(context.Background(), fmt.Sprintf("SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT(id, ':', v))), 0) FROM %s", table)).Scan(&c, &sum); err != nil {
		t.Fatalf("%s: %v", table, err)
	}
	return fmt.Sprintf("%d rows, crc sum %d", c, sum)
}

type foundTx struct {
	GTID          string   `json:"gtid"`
	ServerID      uint32   `json:"server_id"`
	Kind          any      `json:"kind"`
	Tables        []string `json:"tables"`
	Rows          *int64   `json:"rows"`
	Statement     string   `json:"statement"`
	RestoreBefore string   `json:"restore_before"`
	Node          string   `json:"node"`
}

// TestFindBadTransaction: an archive of many segments (FLUSH BINARY LOGS
// between writes) holds a large DELETE on one table and a DROP TABLE of
// another; binlog find --table --json finds both with their GTID, kind
// and exact row count, and a restore --pitr-gtid to the GTID it prints
// brings back each table with every row.
func TestFindBadTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	store := t.TempDir()
	n1 := clu.Node(1)
	exec := func(q string) {
		t.Helper()
		if err := n1.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE DATABASE IF NOT EXISTS findt")
	exec("CREATE TABLE findt.keep (id INT PRIMARY KEY, v VARCHAR(40), d DECIMAL(12,3), at DATETIME(6)) ENGINE=InnoDB")
	exec("CREATE TABLE findt.victim (id INT PRIMARY KEY, v TEXT, b BLOB) ENGINE=InnoDB")
	exec("CREATE TABLE findt.other (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
	exec("INSERT INTO findt.keep SELECT seq, CONCAT('keep-', seq), seq / 7, NOW(6) FROM findt.seq_1_to_3000")
	flush(t, n1)
	exec("INSERT INTO findt.victim SELECT seq, REPEAT(CONCAT('v', seq), 20), UNHEX(MD5(seq)) FROM findt.seq_1_to_700")
	flush(t, n1)
	mustGB(t, "backup", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")
	// After the backup, more rows in several binlog files: the restores
	// must replay them.
	for i := 0; i < 3; i++ {
		exec(fmt.Sprintf("INSERT INTO findt.keep SELECT seq, CONCAT('late-', seq), seq, NOW(6) FROM findt.seq_%d_to_%d", 3001+i*200, 3200+i*200))
		exec(fmt.Sprintf("INSERT INTO findt.victim VALUES (%d, 'late', NULL)", 1000+i))
		exec(fmt.Sprintf("INSERT INTO findt.other VALUES (%d, %d)", i, i))
		flush(t, n1)
	}
	keepBefore := nodeSum(t, n1, "findt.keep")
	var deleted int64
	res, err := n1.DB().ExecContext(ctx, "DELETE FROM findt.keep WHERE id > 100")
	if err != nil {
		t.Fatal(err)
	}
	deleted, _ = res.RowsAffected()
	exec("INSERT INTO findt.other VALUES (10, 10)")
	flush(t, n1)
	exec("UPDATE findt.victim SET v = 'changed' WHERE id <= 5")
	victimBefore := nodeSum(t, n1, "findt.victim")
	exec("DROP TABLE findt.victim")
	exec("INSERT INTO findt.other VALUES (11, 11)")
	flush(t, n1)
	out := mustGB(t, "binlog", "archive", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")
	t.Logf("archive: %s", out)
	segs := segments(t, store)
	if len(segs) < 6 {
		t.Fatalf("want an archive of many segments, got %d", len(segs))
	}
	t.Logf("%d segments; deleted %d rows; keep before the delete: %s; victim before the drop: %s", len(segs), deleted, keepBefore, victimBefore)

	out = mustGB(t, "binlog", "find", "--storage", store, "--table", "findt.keep", "--table", "findt.victim", "--kind", "DELETE", "--kind", "DDL", "--json", "--log-level", "error")
	var found []foundTx
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var f foundTx
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("binlog find --json line %q: %v", line, err)
		}
		found = append(found, f)
	}
	t.Logf("binlog find:\n%s", out)
	var del, drop *foundTx
	for i := range found {
		f := &found[i]
		if f.Kind == "DELETE" && len(f.Tables) == 1 && f.Tables[0] == "findt.keep" {
			if del != nil {
				t.Fatalf("two DELETEs on findt.keep:\n%s", out)
			}
			del = f
		}
		if f.Kind == "DDL" && strings.HasPrefix(f.Statement, "DROP TABLE") && len(f.Tables) == 1 && f.Tables[0] == "findt.victim" {
			drop = f
		}
	}
	if del == nil || drop == nil {
		t.Fatalf("binlog find did not find the DELETE and the DROP:\n%s", out)
	}
	if del.Rows == nil || *del.Rows != deleted || del.RestoreBefore != del.GTID || !strings.HasPrefix(del.GTID, "7-11-") || del.Node != n1.Name {
		t.Fatalf("the DELETE: %+v (deleted %d rows)", del, deleted)
	}
	if drop.RestoreBefore != drop.GTID || drop.Rows == nil || *drop.Rows != 0 {
		t.Fatalf("the DROP: %+v", drop)
	}
	// The human form prints the restore command for each.
	human := mustGB(t, "binlog", "find", "--storage", store, "--table", "findt.victim", "--kind", "DDL", "--log-level", "error")
	if !strings.Contains(human, "restore to just before this: galera-backup restore --pitr-gtid "+drop.GTID+" ") {
		t.Fatalf("human output:\n%s", human)
	}

	for _, c := range []struct {
		gtid, table, want string
	}{
		{del.GTID, "findt.keep", keepBefore},
		{drop.GTID, "findt.victim", victimBefore},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		out := mustGB(t, "restore", "--pitr-gtid", c.gtid, "--target-dir", dir, "--storage", store, "--log-level", "warn")
		t.Logf("restore --pitr-gtid %s: %s", c.gtid, strings.TrimSpace(out))
		db, stop := gbtest.Standalone(t, dir)
		var n, sum int64
		if err := db.QueryRow(fmt.Sprintf("SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT(id, ':', v))), 0) FROM %s", c.table)).Scan(&n, &sum); err != nil {
			t.Fatalf("restored to just before %s: %s: %v", c.gtid, c.table, err)
		}
		stop()
		if got := fmt.Sprintf("%d rows, crc sum %d", n, sum); got != c.want {
			t.Fatalf("restored to just before %s: %s has %s, want %s", c.gtid, c.table, got, c.want)
		}
		t.Logf("restored to just before %s: %s has every row (%s)", c.gtid, c.table, c.want)
	}
}
