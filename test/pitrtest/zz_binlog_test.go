package pitrtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/binlog"
)

// TestIndexMatchesMariadbBinlog: for every closed binlog of node 1, the
// native reader finds the same transactions at the same offsets as
// mariadb-binlog, and the index's first/last GTID and end agree.
func TestIndexMatchesMariadbBinlog(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	n1 := clu.Node(1)
	if err := n1.Exec(context.Background(), "FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(n1.DataDir, "mysql-bin.[0-9]*"))
	if err != nil || len(files) < 2 {
		t.Fatalf("binlogs of node1: %v %v", files, err)
	}
	files = files[:len(files)-1] // the active one
	at := regexp.MustCompile(`^# at ([0-9]+)$`)
	gtid := regexp.MustCompile(`\sGTID ([0-9]+-[0-9]+-[0-9]+)`)
	total := 0
	for _, f := range files {
		out, err := exec.Command("mariadb-binlog", "--no-defaults", f).Output()
		if err != nil {
			t.Fatalf("mariadb-binlog %s: %v", f, err)
		}
		var want []string
		var off string
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			l := sc.Text()
			if m := at.FindStringSubmatch(l); m != nil {
				off = m[1]
			} else if m := gtid.FindStringSubmatch(l); m != nil && strings.HasPrefix(l, "#") {
				want = append(want, off+" "+m[1])
			}
		}
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if _, err := binlog.Scan(fh, func(tx binlog.Tx) bool {
			got = append(got, strconv.FormatInt(tx.Offset, 10)+" "+tx.GTID.String())
			return true
		}); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		fh.Seek(0, 0)
		x, err := binlog.Index(fh, binlog.IndexOptions{})
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: transactions differ from mariadb-binlog\nours:\n%s\nmariadb-binlog:\n%s", f, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if x.Transactions != len(want) || x.End != binlog.EndRotate {
			t.Fatalf("%s: index %+v, %d transactions by mariadb-binlog", f, x, len(want))
		}
		if len(want) > 0 {
			d7, _ := x.Domain(7)
			if fmt.Sprintf("%d %s", x.FirstTxOffset, d7.First) != want[0] || !strings.HasSuffix(want[len(want)-1], " "+d7.Last.String()) {
				t.Fatalf("%s: first/last %d %s … %s, mariadb-binlog %s … %s", f, x.FirstTxOffset, d7.First, d7.Last, want[0], want[len(want)-1])
			}
		}
		total += len(want)
	}
	t.Logf("%d files, %d transactions: offsets and GTIDs identical to mariadb-binlog", len(files), total)
}

// TestCrashRejoinedNode: node 3 is killed and restarted the way the harness
// (and galera_recovery) does it: --wsrep-recover, then
// --wsrep_start_position. binlog-pitr.md §5 saw such a node log the
// cluster's transactions under its own server id afterwards. If that
// happens, archiving from it must be refused; if not, it must archive
// without a gap.
func TestCrashRejoinedNode(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	store := t.TempDir()
	n1, n3 := clu.Node(1), clu.Node(3)
	mustGB(t, "binlog", "archive", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")
	if err := n3.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := n3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n1.Exec(ctx, "CREATE DATABASE IF NOT EXISTS pitr; CREATE TABLE IF NOT EXISTS pitr.split (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		if err := n1.Exec(ctx, "INSERT INTO pitr.split VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until node 3 has applied every row before it rotates.
	for i := 0; ; i++ {
		n, _ := n3.QueryString(ctx, "SELECT COUNT(*) FROM pitr.split")
		if n == "20" {
			break
		}
		if i > 600 {
			t.Fatalf("node3 has %s of 20 rows", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cp, err := n3.Status(ctx, "wsrep_se_checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	pos, _ := n3.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	if err := n3.Exec(ctx, "FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	if err := n1.Exec(ctx, "FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	split := !strings.Contains(cp, " 7-11-")
	t.Logf("node3 after kill -9 and recovery: wsrep_se_checkpoint %q, gtid_binlog_pos %q, split=%v", cp, pos, split)
	out, code := gb(t, "binlog", "archive", "--storage", store, "--socket", n3.Socket, "--user", "root", "--log-level", "warn")
	if split {
		if code == 0 || !strings.Contains(out, "GTID split") {
			t.Fatalf("a split node was archived: exit %d\n%s", code, out)
		}
		t.Logf("refused: %s", out)
		return
	}
	if code != 0 {
		t.Fatalf("archive from node3: exit %d\n%s", code, out)
	}
	segs := segments(t, store)
	last, _ := n1.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	var seq uint64
	for _, p := range strings.Split(last, ",") {
		if strings.HasPrefix(p, "7-") {
			seq, _ = strconv.ParseUint(p[strings.LastIndex(p, "-")+1:], 10, 64)
		}
	}
	checkArchive(t, segs, seq)
	t.Logf("no split this time; node3 continued the archive: %s", out)
}

// TestArchiverReportsGap: node 2 purges a binlog nobody archived; archiving
// from it reports the missing GTIDs (exit 3), still archives what follows,
// and list --pitr shows the gap.
func TestArchiverReportsGap(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	store := t.TempDir()
	n1, n2 := clu.Node(1), clu.Node(2)
	if err := n1.Exec(ctx, "FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	mustGB(t, "binlog", "archive", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")
	if err := n1.Exec(ctx, "CREATE DATABASE IF NOT EXISTS pitr; CREATE TABLE IF NOT EXISTS pitr.gap (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	insert := func(from int) {
		for i := from; i < from+10; i++ {
			// The table was created on node 1: wait for node 2 to have
			// applied that (wsrep_sync_wait 4 covers INSERT), or the
			// INSERT can lose certification against the DDL (error 1213).
			if err := n2.Exec(ctx, fmt.Sprintf("SET STATEMENT wsrep_sync_wait=4 FOR INSERT INTO pitr.gap VALUES (%d)", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	insert(1)
	if err := n2.Exec(ctx, "FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	insert(11)
	var file string
	if err := n2.DB().QueryRowContext(ctx, "SHOW MASTER STATUS").Scan(&file, new(any), new(any), new(any)); err != nil {
		t.Fatal(err)
	}
	if err := n2.Exec(ctx, "FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	// Drop every file before the one holding rows 11..20: rows 1..10 (and
	// the CREATE TABLE) exist in no binlog of node 2 any more.
	if err := n2.Exec(ctx, "PURGE BINARY LOGS TO '"+file+"'"); err != nil {
		t.Fatal(err)
	}
	out, code := gb(t, "binlog", "archive", "--storage", store, "--socket", n2.Socket, "--user", "root", "--log-level", "warn")
	if code != 3 || !strings.Contains(out, "GAP") {
		t.Fatalf("archive across purged binlogs: exit %d\n%s", code, out)
	}
	t.Logf("archive from node2: exit %d\n%s", code, out)
	out = mustGB(t, "list", "--pitr", "--storage", store)
	if !strings.Contains(out, "gap:") || !strings.Contains(out, "not archived") {
		t.Fatalf("list --pitr does not show the gap:\n%s", out)
	}
	t.Logf("list --pitr:\n%s", out)
}
