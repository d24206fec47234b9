package pitrtest

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/test/gbtest"
)

// TestPITRApplierDomainsStrict: the replication-applier replay with
// gtid_strict_mode=ON on the archived node, two GTID domains in the
// binlogs (the wsrep domain and node-local writes in gtid_domain_id), a
// multi-statement transaction, GTID targets on and right after it, and a
// time target equal to a transaction's commit second. Each restore is
// compared with both modes (--replay=applier and --replay=client).
//
// The file sorts last: the node-local domain-0 writes it leaves in node
// 1's binlogs would break TestIndexMatchesMariadbBinlog's wsrep-domain
// comparison if it ran before it.
func TestPITRApplierDomainsStrict(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	store := t.TempDir()
	n1 := clu.Node(1)
	if err := n1.Exec(ctx, "SET GLOBAL gtid_strict_mode=ON"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n1.Exec(context.Background(), "SET GLOBAL gtid_strict_mode=OFF") })
	if err := n1.Exec(ctx, "CREATE DATABASE IF NOT EXISTS pitr_ap; CREATE TABLE IF NOT EXISTS pitr_ap.t (id INT PRIMARY KEY, v INT, at DATETIME(6))"); err != nil {
		t.Fatal(err)
	}
	conn, err := n1.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	lastGTID := func() string {
		t.Helper()
		var g string
		if err := conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	// A node-local table in the node's own domain (wsrep off for the session).
	exec("SET SESSION wsrep_on=0")
	exec("CREATE TABLE IF NOT EXISTS pitr_ap.loc (id INT PRIMARY KEY)")
	exec("SET SESSION wsrep_on=1")
	flush(t, n1)
	mustGB(t, "binlog", "archive", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")
	mustGB(t, "backup", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")

	// After the backup: A, local write, B (multi-statement), local write,
	// C, D, E (GTIDs: B and C in the wsrep domain, adjacent in it). The server clock is polled so that B commits in an earlier
	// second than C (a time target at C's second then keeps B whole).
	exec("INSERT INTO pitr_ap.t VALUES (1, 1, NOW(6))")
	exec("SET SESSION wsrep_on=0")
	exec("INSERT INTO pitr_ap.loc VALUES (1)")
	localGTID := lastGTID()
	exec("SET SESSION wsrep_on=1")
	exec("BEGIN")
	exec("INSERT INTO pitr_ap.t VALUES (2, 2, NOW(6))")
	exec("INSERT INTO pitr_ap.t VALUES (3, 3, NOW(6))")
	exec("UPDATE pitr_ap.t SET v = 10 WHERE id = 1")
	exec("COMMIT")
	gB := lastGTID()
	exec("SET SESSION wsrep_on=0")
	exec("INSERT INTO pitr_ap.loc VALUES (2)")
	exec("SET SESSION wsrep_on=1")
	var afterB time.Time
	if err := conn.QueryRowContext(ctx, "SELECT NOW(6)").Scan(&afterB); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ { // synchronise on the server's clock: wait for its next second
		var now time.Time
		if err := conn.QueryRowContext(ctx, "SELECT NOW(6)").Scan(&now); err != nil {
			t.Fatal(err)
		}
		if now.Truncate(time.Second).After(afterB.Truncate(time.Second)) {
			break
		}
		if i > 10000 {
			t.Fatal("the server clock did not advance")
		}
		time.Sleep(20 * time.Millisecond)
	}
	exec("INSERT INTO pitr_ap.t VALUES (4, 4, NOW(6))")
	gC := lastGTID()
	var atC time.Time
	if err := conn.QueryRowContext(ctx, "SELECT at FROM pitr_ap.t WHERE id = 4").Scan(&atC); err != nil {
		t.Fatal(err)
	}
	exec("INSERT INTO pitr_ap.t VALUES (5, 5, NOW(6))")
	exec("INSERT INTO pitr_ap.t VALUES (6, 6, NOW(6))")
	t.Logf("B %s, C %s at %s, local %s", gB, gC, atC, localGTID)
	if strings.Split(localGTID, "-")[0] == strings.Split(gB, "-")[0] {
		t.Fatalf("local write %s is in the wsrep domain %s: want two domains", localGTID, gB)
	}
	flush(t, n1)
	mustGB(t, "binlog", "archive", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")

	type state struct{ rows, sumV, loc int }
	for _, tc := range []struct {
		what string
		args []string
		want state
	}{
		{"before the multi-statement transaction", []string{"--pitr-gtid", gB}, state{1, 1, 1}},
		{"right after the multi-statement transaction", []string{"--pitr-gtid", gC}, state{3, 15, 2}},
		{"time equal to C's commit second", []string{"--pitr", atC.Truncate(time.Second).Format("2006-01-02 15:04:05")}, state{3, 15, 2}},
	} {
		for _, mode := range []string{"applier", "client"} {
			dir := filepath.Join(t.TempDir(), "data")
			out := mustGB(t, append([]string{"restore", "--replay", mode, "--target-dir", dir, "--storage", store, "--log-level", "info"}, tc.args...)...)
			summary := regexp.MustCompile(`(?m)^restored .*$`).FindString(out)
			t.Logf("%s (%s): %s", tc.what, mode, summary)
			// Not a terminal: the progress is a log line (the first at
			// once, at the latest at the end of the run), with the
			// transactions of the plan's count.
			planned := regexp.MustCompile(`\+ (\d+) transactions replayed`).FindStringSubmatch(summary)
			lines := regexp.MustCompile(`msg=replay .*transactions=(\d+) transactions_total=(\d+) tx_per_s=\d+ events=\d+`).FindAllStringSubmatch(out, -1)
			if planned == nil || len(lines) == 0 {
				t.Errorf("%s (%s): no replay progress line or summary:\n%s", tc.what, mode, out)
			}
			for _, l := range lines {
				t.Logf("%s (%s): progress %s", tc.what, mode, l[0])
				done, _ := strconv.Atoi(l[1])
				total, _ := strconv.Atoi(l[2])
				if planned != nil && (l[2] != planned[1] || done > total) {
					t.Errorf("%s (%s): progress %s, want at most %s of %s transactions", tc.what, mode, l[0], planned[1], planned[1])
				}
			}
			// The summary gives the replay's rate and the events it read
			// (the SQL thread's Executed_log_entries, mariadb-binlog's
			// events), in both modes.
			if !regexp.MustCompile(`\(` + mode + `, .*\d+ transactions/s, [1-9]\d* events\)`).MatchString(summary) {
				t.Errorf("%s (%s): the summary has no transactions/s and events: %s", tc.what, mode, summary)
			}
			db, stop := gbtest.Standalone(t, dir)
			var got state
			var sum sql.NullInt64
			if err := db.QueryRow("SELECT COUNT(*), SUM(v) FROM pitr_ap.t").Scan(&got.rows, &sum); err != nil {
				t.Fatal(err)
			}
			got.sumV = int(sum.Int64)
			if err := db.QueryRow("SELECT COUNT(*) FROM pitr_ap.loc").Scan(&got.loc); err != nil {
				t.Fatal(err)
			}
			var slaves int
			if err := db.QueryRow("SELECT COUNT(*) FROM mysql.gtid_slave_pos").Scan(&slaves); err != nil {
				t.Fatal(err)
			}
			stop()
			if got != tc.want || slaves != 0 {
				t.Errorf("%s (%s): restored %+v (gtid_slave_pos rows %d), want %+v and no replica state", tc.what, mode, got, slaves, tc.want)
			}
		}
	}
}

// TestPITRApplierSQLError: a binlog the SQL thread cannot apply (a row
// event on a table the backup does not have: it was created without
// binlogging) fails the restore with the server's error and the archived
// position, and leaves the existing target byte for byte as it was.
func TestPITRApplierSQLError(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	store := t.TempDir()
	n1 := clu.Node(1)
	conn, err := n1.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE DATABASE IF NOT EXISTS pitr_err")
	exec("CREATE TABLE IF NOT EXISTS pitr_err.t (id INT PRIMARY KEY)")
	flush(t, n1)
	mustGB(t, "binlog", "archive", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")
	mustGB(t, "backup", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")
	exec("SET SESSION wsrep_on=0")
	exec("SET SESSION sql_log_bin=0")
	exec("CREATE TABLE pitr_err.hidden (id INT PRIMARY KEY)")
	exec("SET SESSION sql_log_bin=1")
	exec("INSERT INTO pitr_err.hidden VALUES (1)")
	exec("SET SESSION wsrep_on=1")
	exec("INSERT INTO pitr_err.t VALUES (1)")
	exec("INSERT INTO pitr_err.t VALUES (2)")
	var last string
	if err := conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&last); err != nil {
		t.Fatal(err)
	}
	flush(t, n1)
	mustGB(t, "binlog", "archive", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")

	target := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "keep"), []byte("the operator's data"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := gb(t, "restore", "--force", "--target-dir", target, "--storage", store, "--log-level", "warn", "--pitr-gtid", last)
	t.Logf("exit %d:\n%s", code, out)
	if code == 0 || !strings.Contains(out, "replication applier stopped with error 1146") || !strings.Contains(out, "mysql-bin.") {
		t.Fatalf("want a failed restore naming the SQL thread's error 1146 and the archived file, got exit %d:\n%s", code, out)
	}
	entries, err := os.ReadDir(target)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(target, "keep"))
	if len(entries) != 1 || string(data) != "the operator's data" {
		t.Fatalf("the target changed: %v", entries)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(target), ".data.gosst-restore-*"))
	if len(left) != 0 {
		t.Fatalf("staging directory left behind: %v", left)
	}
}
