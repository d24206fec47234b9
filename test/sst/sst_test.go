package sst_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosst/gosst/test/cluster"
)

// writer inserts rows with known ids on one node until stopped and
// remembers which inserts the node acknowledged.
type writer struct {
	node   *cluster.Node
	next   atomic.Int64
	mu     sync.Mutex
	ok     []int64
	failed int
	stop   chan struct{}
	done   chan struct{}
}

func startWriter(ctx context.Context, n *cluster.Node, table string, firstID int64) *writer {
	w := &writer{node: n, stop: make(chan struct{}), done: make(chan struct{})}
	w.next.Store(firstID)
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-ctx.Done():
				return
			default:
			}
			id := w.next.Add(1)
			err := n.Exec(ctx, fmt.Sprintf("INSERT INTO %s (id, node, v) VALUES (?, ?, REPEAT('w', 200))", table), id, n.Name)
			w.mu.Lock()
			if err == nil {
				w.ok = append(w.ok, id)
			} else {
				w.failed++
			}
			w.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return w
}

// waitRows waits until n more rows have committed: the test needs rows
// written before and after a step, not a time to have passed.
func (w *writer) waitRows(t *testing.T, n int) {
	t.Helper()
	count := func() int { w.mu.Lock(); defer w.mu.Unlock(); return len(w.ok) }
	want := count() + n
	if !waitFor(5*time.Minute, func() bool { return count() >= want }) {
		w.mu.Lock()
		failed := w.failed
		w.mu.Unlock()
		t.Fatalf("the writer committed %d rows in 5 min, want %d (%d failed)", count(), want, failed)
	}
}

func (w *writer) finish() []int64 {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.ok...)
}

// converge waits until every node has want rows in table and the same
// CHECKSUM TABLE, and returns the checksum.
func converge(t *testing.T, ctx context.Context, table string, want int) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for {
		var counts, sums []string
		for _, n := range shared.Nodes {
			c, err := n.QueryString(ctx, "SELECT COUNT(*) FROM "+table)
			if err != nil {
				c = err.Error()
			}
			var name, sum string
			if err := n.DB().QueryRowContext(ctx, "CHECKSUM TABLE "+table).Scan(&name, &sum); err != nil {
				sum = err.Error()
			}
			counts = append(counts, c)
			sums = append(sums, sum)
		}
		last = fmt.Sprintf("counts %v checksums %v", counts, sums)
		same := true
		for i := range shared.Nodes {
			if counts[i] != fmt.Sprint(want) || sums[i] != sums[0] {
				same = false
			}
		}
		if same {
			return sums[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes did not converge on %s: want %d rows; %s", table, want, last)
		}
		time.Sleep(time.Second)
	}
}

func clusterSynced(t *testing.T, ctx context.Context) {
	t.Helper()
	// A node an earlier, failed test left down would fail every later
	// test of the package too: start it again (that test has failed
	// already and said why).
	for _, n := range shared.Nodes {
		if !n.Running() {
			t.Logf("%s is not running (an earlier test left it down): starting it", n.Name)
			recoverNodes(t, ctx, n)
		}
	}
	for _, n := range shared.Nodes {
		if err := n.WaitSynced(ctx, 3*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFullSSTUnderLoad wipes node 3 and brings it back by full gosst SST
// while node 1 keeps inserting rows; afterwards every acknowledged row is
// on every node and CHECKSUM TABLE agrees.
func TestFullSSTUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n1, n3 := shared.Node(1), shared.Node(3)
	clusterSynced(t, ctx)
	mustExec(t, ctx, n1, "CREATE DATABASE IF NOT EXISTS sstload")
	mustExec(t, ctx, n1, "CREATE TABLE sstload.t (id BIGINT PRIMARY KEY, node VARCHAR(16), v VARCHAR(255)) ENGINE=InnoDB")
	mustExec(t, ctx, n1, "CREATE TABLE sstload.a (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=Aria")
	// Galera does not replicate Aria DML: put the row on both possible
	// donors, so node 3 has it only if the SST copied Aria tables.
	mustExec(t, ctx, n1, "INSERT INTO sstload.a VALUES (1, 'aria row')")
	if err := shared.Node(2).ExecCausal(ctx, "INSERT INTO sstload.a VALUES (1, 'aria row')"); err != nil {
		t.Fatal(err)
	}
	// ~20k seed rows (a few MB) so there is something to copy.
	mustExec(t, ctx, n1, "INSERT INTO sstload.t (id, node, v) SELECT seq, 'seed', REPEAT(MD5(seq), 6) FROM sstload.seq_1_to_20000")

	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.Wipe(); err != nil {
		t.Fatal(err)
	}
	offs := []int64{shared.Node(1).LogSize(), shared.Node(2).LogSize(), n3.LogSize()}
	off := offs[2]
	w := startWriter(ctx, n1, "sstload.t", 1_000_000)
	w.waitRows(t, 10)
	start := time.Now()
	err := n3.Start(ctx)
	sstTime := time.Since(start)
	w.waitRows(t, 20) // keep writing after the join
	ok := w.finish()
	if err != nil {
		t.Fatalf("node3 did not rejoin by gosst SST: %v", err)
	}
	t.Logf("node3 rejoined by full gosst SST in %s (start to Synced), writer committed %d rows meanwhile (%d failed)", sstTime.Round(100*time.Millisecond), len(ok), w.failed)
	log3 := n3.LogSince(off)
	if l := cluster.GrepLines(log3, "gosst: joiner: received and verified"); len(l) == 0 {
		t.Fatalf("node3's log shows no gosst full SST:\n%s", cluster.Tail(log3, 40))
	} else {
		t.Logf("%s", strings.Join(l, "\n"))
	}
	for _, l := range cluster.GrepLines(log3, "gosst: joiner: finished in") {
		t.Logf("%s", l)
	}
	if len(cluster.GrepLines(log3, "mariabackup --prepare: ")) == 0 {
		t.Errorf("node3 did not run mariabackup --prepare")
	}
	var donorLines []string
	for i, n := range shared.Nodes[:2] {
		donorLines = append(donorLines, cluster.GrepLines(n.LogSince(offs[i]), "gosst: donor: sent ")...)
	}
	t.Logf("donor summary: %s", strings.Join(donorLines, "\n"))
	// Both summaries name the stage that limited the transfer.
	var donorLimit []string
	for i, n := range shared.Nodes[:2] {
		donorLimit = append(donorLimit, cluster.GrepLines(n.LogSince(offs[i]), "gosst: donor: limited by ")...)
	}
	joinerLimit := cluster.GrepLines(log3, "gosst: joiner: limited by ")
	sstLimit := cluster.GrepLines(log3, "gosst: joiner: this SST was limited by ")
	if len(donorLimit) != 1 || len(joinerLimit) != 1 || len(sstLimit) != 1 {
		t.Errorf("want one limiter line from the donor and two from the joiner; donor %q, joiner %q %q", donorLimit, joinerLimit, sstLimit)
	}
	t.Logf("limiters:\n%s", strings.Join(append(append(donorLimit, joinerLimit...), sstLimit...), "\n"))
	for i, n := range shared.Nodes[:2] {
		if p := providerPause(n.LogSince(offs[i])); p != "" {
			t.Logf("%s (donor): %s", n.Name, p)
		}
	}

	want := 20000 + len(ok)
	sum := converge(t, ctx, "sstload.t", want)
	// Galera does not replicate Aria (wsrep_mode REPLICATE_ARIA is off),
	// so only the physical copy can have brought this row to node3.
	if v, err := n3.QueryString(ctx, "SELECT v FROM sstload.a WHERE id = 1"); err != nil || v != "aria row" {
		t.Errorf("node3: Aria table not transferred: %q, %v", v, err)
	}
	t.Logf("all 3 nodes hold %d rows, CHECKSUM TABLE %s", want, sum)
	for _, id := range []int64{ok[0], ok[len(ok)-1]} {
		v, err := n3.QueryString(ctx, "SELECT node FROM sstload.t WHERE id = ?", id)
		if err != nil || v != "node1" {
			t.Errorf("node3: row %d: %q, %v", id, v, err)
		}
	}
	// The joiner started a fresh binlog and knows the cluster's GTIDs.
	for _, n := range shared.Nodes {
		g, _ := n.QueryString(ctx, "SELECT @@gtid_binlog_pos")
		t.Logf("%s gtid_binlog_pos %s", n.Name, g)
	}
}

// TestISTBypass stops node 2 cleanly, writes on node 1, and restarts node
// 2: it must catch up by IST, with gosst's donor running --bypass and the
// joiner leaving its datadir alone.
func TestISTBypass(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n1, n2 := shared.Node(1), shared.Node(2)
	clusterSynced(t, ctx)
	mustExec(t, ctx, n1, "CREATE DATABASE IF NOT EXISTS sstist")
	mustExec(t, ctx, n1, "CREATE TABLE IF NOT EXISTS sstist.t (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB")
	if err := n2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 50; i++ {
		mustExec(t, ctx, n1, "INSERT INTO sstist.t VALUES (?, 'missed by node2')", i)
	}
	offs := make([]int64, len(shared.Nodes))
	for i, n := range shared.Nodes {
		offs[i] = n.LogSize()
	}
	start := time.Now()
	if err := n2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("node2 rejoined in %s", time.Since(start).Round(100*time.Millisecond))
	log2 := n2.LogSince(offs[1])
	if l := cluster.GrepLines(log2, "gosst: joiner: donor reports IST"); len(l) == 0 {
		t.Fatalf("node2's log shows no gosst IST:\n%s", cluster.Tail(log2, 40))
	}
	if l := cluster.GrepLines(log2, "gosst: joiner: receiving"); len(l) > 0 {
		t.Errorf("node2 took a full SST instead of IST: %s", l)
	}
	bypass := false
	for i, n := range shared.Nodes {
		if i != 1 && len(cluster.GrepLines(n.LogSince(offs[i]), "gosst: donor: IST bypass")) > 0 {
			bypass = true
			t.Logf("%s donated by --bypass", n.Name)
		}
	}
	if !bypass {
		t.Errorf("no donor logged gosst's IST bypass")
	}
	converge(t, ctx, "sstist.t", 50)
}

// providerPause reports how long mariabackup's BACKUP STAGE BLOCK_DDL kept
// the donor's provider paused (docs/sst.md, "Desyncing and pausing").
func providerPause(log string) string {
	var from, to time.Time
	for _, l := range strings.Split(log, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		ts, err := time.Parse("2006-01-02 15:04:05", f[0]+" "+f[1])
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(l, "Desyncing and pausing the provider"):
			from = ts
		case strings.Contains(l, "Resuming and resyncing the provider") && !from.IsZero():
			to = ts
		}
	}
	if from.IsZero() || to.IsZero() {
		return ""
	}
	return fmt.Sprintf("provider paused by BACKUP STAGE BLOCK_DDL..END for about %s (log has 1 s resolution)", to.Sub(from))
}
