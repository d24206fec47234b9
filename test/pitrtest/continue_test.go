package pitrtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/pitr"
	"github.com/gosst/gosst/test/gbtest"
)

// TestPITRContinue: a restore to X extended by --continue to Z (client
// replay) and then to Y (applier replay) gives the same table, by
// CHECKSUM TABLE, as a direct restore to Y. --continue is refused, leaving
// the directory as it was, backward, at the same point, on a directory
// that is not a PITR result, after a server was started on it, and after
// a --continue killed while replaying.
func TestPITRContinue(t *testing.T) {
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
	exec("CREATE DATABASE IF NOT EXISTS pitr_cont")
	exec("CREATE TABLE IF NOT EXISTS pitr_cont.t (id INT PRIMARY KEY, v INT)")
	flush(t, n1)
	mustGB(t, "binlog", "archive", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")
	mustGB(t, "backup", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")
	// After the backup: 12 transactions; gtids[i] is transaction i+1's.
	var gtids []string
	for i := 1; i <= 12; i++ {
		switch i {
		case 6:
			exec("UPDATE pitr_cont.t SET v = v * 10 WHERE id < 104")
		case 9:
			exec("DELETE FROM pitr_cont.t WHERE id = 102")
		default:
			exec(fmt.Sprintf("INSERT INTO pitr_cont.t VALUES (%d, %d)", 100+i, i))
		}
		var g string
		if err := conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&g); err != nil {
			t.Fatal(err)
		}
		if len(gtids) > 0 && g == gtids[len(gtids)-1] {
			t.Fatalf("transaction %d wrote no binlog event (GTID still %s)", i, g)
		}
		gtids = append(gtids, g)
	}
	// A time target after the last transaction's commit second: wait on
	// the server's clock until it has passed, so that the archived file
	// closes at or after it.
	var last time.Time
	if err := conn.QueryRowContext(ctx, "SELECT NOW(6)").Scan(&last); err != nil {
		t.Fatal(err)
	}
	at := last.Truncate(time.Second).Add(time.Second)
	for i := 0; ; i++ {
		var now time.Time
		if err := conn.QueryRowContext(ctx, "SELECT NOW(6)").Scan(&now); err != nil {
			t.Fatal(err)
		}
		if !now.Before(at) {
			break
		}
		if i > 10000 {
			t.Fatal("the server clock did not advance")
		}
		time.Sleep(20 * time.Millisecond)
	}
	atArg := at.Format("2006-01-02 15:04:05")
	flush(t, n1)
	mustGB(t, "binlog", "archive", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")
	x, z, y := gtids[3], gtids[6], gtids[10] // before transactions 4, 7 and 11

	restore := func(args ...string) string {
		t.Helper()
		out := mustGB(t, append([]string{"restore", "--storage", store, "--log-level", "warn"}, args...)...)
		t.Logf("restore %s: %s", strings.Join(args, " "), strings.TrimSpace(out))
		return out
	}
	refused := func(want string, args ...string) {
		t.Helper()
		out, code := gb(t, append([]string{"restore", "--storage", store, "--log-level", "warn"}, args...)...)
		t.Logf("restore %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(out))
		if code == 0 || !strings.Contains(out, want) {
			t.Fatalf("restore %s: exit %d, want a refusal with %q:\n%s", strings.Join(args, " "), code, want, out)
		}
	}
	checksum := func(dir string) string {
		t.Helper()
		db, stop := gbtest.Standalone(t, dir)
		defer stop()
		var name, sum string
		if err := db.QueryRow("CHECKSUM TABLE pitr_cont.t").Scan(&name, &sum); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM pitr_cont.t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s rows=%d", sum, n)
	}

	dir := filepath.Join(t.TempDir(), "data")
	restore("--pitr-gtid", x, "--target-dir", dir)
	if _, err := os.Stat(filepath.Join(dir, pitr.MarkerFile)); err != nil {
		t.Fatalf("the PITR result has no marker: %v", err)
	}
	before := gbtest.TreeHash(t, dir)
	// Backward and the same point: refused, nothing changed.
	refused("only moves forward", "--pitr-gtid", gtids[1], "--continue", dir)
	refused("the same point", "--pitr-gtid", x, "--continue", dir)
	if gbtest.TreeHash(t, dir) != before {
		t.Fatal("a refused --continue changed the directory")
	}
	restore("--replay", "client", "--pitr-gtid", z, "--continue", dir)
	refused("only moves forward", "--pitr-gtid", x, "--continue", dir)
	restore("--replay", "applier", "--pitr-gtid", y, "--continue", dir)

	direct := filepath.Join(t.TempDir(), "data")
	restore("--pitr-gtid", y, "--target-dir", direct)
	got, want := checksum(dir), checksum(direct)
	if got != want {
		t.Fatalf("--continue X→Z→Y gives %s, a direct restore to Y %s", got, want)
	}
	if !strings.HasSuffix(got, "rows=7") {
		t.Fatalf("restore to Y: %s, want 7 rows", got)
	}
	t.Logf("both: %s", got)

	// checksum started a server on dir: no longer exactly the PITR result.
	refused("was started as a server", "--pitr-gtid", gtids[11], "--continue", dir)

	// Not a PITR result at all.
	plain := t.TempDir()
	if err := os.WriteFile(filepath.Join(plain, "ibdata1"), []byte("not a pitr"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused("is not a gosst PITR result", "--pitr-gtid", y, "--continue", plain)

	// A time target: X then --continue to the time after the last
	// transaction equals a direct restore to that time (all 12
	// transactions: 10 inserts, one deleted).
	timed := filepath.Join(t.TempDir(), "data")
	restore("--pitr-gtid", x, "--target-dir", timed)
	restore("--pitr", atArg, "--continue", timed)
	refused("the same point", "--pitr", atArg, "--continue", timed)
	refused("only moves forward", "--pitr-gtid", gtids[11], "--continue", timed)
	directTime := filepath.Join(t.TempDir(), "data")
	restore("--pitr", atArg, "--target-dir", directTime)
	if got, want := checksum(timed), checksum(directTime); got != want || !strings.HasSuffix(got, "rows=9") {
		t.Fatalf("--continue X→%s gives %s, a direct restore to it %s (want 9 rows)", atArg, got, want)
	}

	// A --continue killed after marking the directory, before its replay:
	// the next one is refused, with the reason.
	killed := filepath.Join(t.TempDir(), "data")
	restore("--pitr-gtid", x, "--target-dir", killed)
	out := gbtest.RunKilledAt(t, "continue-marked", "restore", "--storage", store, "--log-level", "warn", "--pitr-gtid", y, "--continue", killed)
	t.Logf("killed continue: %s", out)
	refused("did not finish", "--pitr-gtid", y, "--continue", killed)
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".data.gosst-continue-*")); len(left) != 0 {
		t.Fatalf("scratch directory left behind by a finished --continue: %v", left)
	}
}
