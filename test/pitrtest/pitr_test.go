package pitrtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/pitr"
	"github.com/gosst/gosst/test/cluster"
	"github.com/gosst/gosst/test/gbtest"
)

type row struct {
	id int
	at time.Time
}

// waitLease waits until the archiver lease names node.
func waitLease(t *testing.T, store, node string) {
	t.Helper()
	for i := 0; i < 1200; i++ {
		files, _ := filepath.Glob(filepath.Join(store, "binlogs", "*", "archiver.json"))
		for _, f := range files {
			var l pitr.Lease
			if data, err := os.ReadFile(f); err == nil && json.Unmarshal(data, &l) == nil && l.Node == node {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the archiver lease never named %s", node)
}

func flush(t *testing.T, n *cluster.Node) {
	t.Helper()
	if err := n.Exec(context.Background(), "FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
}

func segments(t *testing.T, store string) []*pitr.Segment {
	t.Helper()
	out := mustGB(t, "binlog", "list", "--json", "--storage", store, "--log-level", "error")
	var segs []*pitr.Segment
	if err := json.Unmarshal([]byte(out), &segs); err != nil {
		t.Fatalf("binlog list --json: %v\n%s", err, out)
	}
	return segs
}

func coverage(t *testing.T, store string) *pitr.Coverage {
	t.Helper()
	out := mustGB(t, "list", "--pitr", "--json", "--storage", store, "--log-level", "error")
	var cov pitr.Coverage
	if err := json.Unmarshal([]byte(out), &cov); err != nil {
		t.Fatalf("list --pitr --json: %v\n%s", err, out)
	}
	return &cov
}

// checkArchive: segments contiguous, no overlap, no duplicate, ending at last.
func checkArchive(t *testing.T, segs []*pitr.Segment, last uint64) {
	t.Helper()
	if len(segs) == 0 {
		t.Fatal("the archive is empty")
	}
	var desc []string
	for i, s := range segs {
		desc = append(desc, fmt.Sprintf("%s/%s (%d,%d] from %d", s.Node, s.File, s.From, s.To, s.ReplayFrom))
		if i > 0 && s.From != segs[i-1].To {
			t.Fatalf("archive not contiguous at segment %d:\n%s", i, strings.Join(desc, "\n"))
		}
	}
	if got := segs[len(segs)-1].To; got != last {
		t.Fatalf("archive ends at %d, last committed transaction is %d:\n%s", got, last, strings.Join(desc, "\n"))
	}
	t.Logf("archive: %d segments, contiguous:\n%s", len(segs), strings.Join(desc, "\n"))
}

// TestPITR: a writer on node 2 across binlog rotations, a backup of node 3
// in the middle, an archiver on node 3 killed and restarted twice, node 3
// stopped and archiving continued on node 1; then PITR to random time and
// GTID targets is checked row by row, and targets outside the window or
// across a deleted binlog object are refused with the window printed.
func TestPITR(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	store := t.TempDir()
	n1, n2, n3 := clu.Node(1), clu.Node(2), clu.Node(3)
	w := gbtest.StartWriter(t, n2, "pitr.rows", 15*time.Millisecond)
	// Archivers on node 3 and node 1 share a lease: node 3's archives,
	// node 1's stands by.
	standby := []string{"--standby-after", "3s"}
	a := startArchiver(t, store, n3, "1s", standby...)
	waitLease(t, store, n3.Name)
	b := startArchiver(t, store, n1, "1s", standby...)
	b.waitOutput(t, "standing by", 1)
	flush(t, n3)
	a.waitOutput(t, "archived binlog", 1)
	mustGB(t, "backup", "--storage", store, "--socket", n3.Socket, "--user", "root", "--log-level", "warn")
	// Account statements in the replayed range (the temporary server
	// must accept them).
	if err := n1.Exec(ctx, "CREATE USER IF NOT EXISTS pitr_app@localhost IDENTIFIED BY 'x-Pw-1'; GRANT SELECT ON pitr.* TO pitr_app@localhost"); err != nil {
		t.Fatal(err)
	}
	// The archiver dies (kill -9) twice and is restarted: once after it
	// archived more of the writer's rows since the backup, once right
	// after a binlog rotation (while it archives the closed binlog).
	a.waitOutput(t, "archived binlog", a.archived()+1)
	a.kill()
	a = startArchiver(t, store, n3, "1s", standby...)
	a.waitOutput(t, "archived binlog", 1)
	flush(t, n3)
	a.kill()
	a = startArchiver(t, store, n3, "1s", standby...)
	a.waitOutput(t, "archived binlog", 1)
	// The archived node goes away: node 1's archiver takes over.
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitLease(t, store, n1.Name)
	b.waitOutput(t, "archived binlog", 1) // node 1's archiver has archived since it took over
	a.kill()
	t.Logf("archiver on node3:\n%s", a.output())
	w.Finish(t)
	seqs := w.Seqs()
	restarted := make(chan error, 1)
	go func() { restarted <- n3.Start(ctx) }()
	defer func() {
		if err := <-restarted; err != nil {
			t.Errorf("restart node3: %v", err)
		}
	}()
	b.kill()
	t.Logf("archiver on node1:\n%s", b.output())
	if !strings.Contains(b.output(), "taking over binlog archiving") {
		t.Fatalf("node1's archiver did not take over")
	}
	flush(t, n1)
	out := mustGB(t, "binlog", "archive", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")
	t.Logf("final pass: %s", out)
	last := seqs[len(seqs)-1]
	segs := segments(t, store)
	checkArchive(t, segs, last)
	nodes := map[string]bool{}
	for _, s := range segs {
		nodes[s.Node] = true
	}
	if !nodes[n3.Name] || !nodes[n1.Name] {
		t.Fatalf("archive should hold segments of %s and %s: %v", n3.Name, n1.Name, nodes)
	}

	// The source of truth: every row with its commit time.
	var rows []row
	rs, err := n2.DB().QueryContext(ctx, "SELECT id, at FROM pitr.rows ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.id, &r.at); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	rs.Close()
	if len(rows) != len(seqs) {
		t.Fatalf("%d rows, writer recorded %d", len(rows), len(seqs))
	}

	cov := coverage(t, store)
	if len(cov.Windows) != 1 || len(cov.Gaps) != 0 {
		t.Fatalf("want one window without gaps: %+v", cov)
	}
	win := cov.Windows[0]
	t.Logf("window: %d..%d, %s .. %s, %d rows", win.FromSeq, win.ToSeq, win.FromTime, win.ToTime, len(rows))

	type target struct {
		args []string
		want int // rows 1..want
		what string
	}
	var targets []target
	gtidTarget := func(seq uint64) target {
		n := 0
		for _, s := range seqs {
			if s < seq {
				n++
			}
		}
		return target{[]string{"--pitr-gtid", fmt.Sprintf("7-11-%d", seq)}, n, fmt.Sprintf("gtid 7-11-%d", seq)}
	}
	timeTarget := func(at time.Time) target {
		// Only transactions certainly committed before the target: the
		// binlog's commit times have 1 s resolution.
		n := 0
		for _, r := range rows {
			if r.at.Before(at.Truncate(time.Second)) {
				n++
			}
		}
		return target{[]string{"--pitr", at.UTC().Format(time.RFC3339Nano)}, n, "time " + at.UTC().Format(time.RFC3339Nano)}
	}
	seed := time.Now().UnixNano()
	rnd := rand.New(rand.NewSource(seed))
	t.Logf("random seed %d", seed)
	var after []uint64
	for _, s := range seqs {
		if s > win.FromSeq+1 {
			after = append(after, s)
		}
	}
	first := win.FromTime.Truncate(time.Second).Add(time.Second)
	span := int64(win.ToTime.Sub(first) / time.Second)
	if len(after) < 10 || span < 3 {
		t.Fatalf("window too small: %d rows after the backup, %d s", len(after), span)
	}
	targets = append(targets,
		gtidTarget(win.FromSeq+1), // the backup alone
		gtidTarget(last),          // everything but the last row
		timeTarget(win.ToTime),    // the newest restorable time
	)
	for i := 0; i < 3; i++ { // with the three above and the one below: 10 targets
		targets = append(targets, gtidTarget(after[rnd.Intn(len(after))]))
		targets = append(targets, timeTarget(first.Add(time.Duration(rnd.Int63n(span+1))*time.Second)))
	}
	targets = append(targets, timeTarget(first.Add(time.Duration(rnd.Int63n(span))*time.Second+time.Duration(rnd.Int63n(1e9)))))
	for i, tg := range targets {
		dir := filepath.Join(t.TempDir(), "data")
		out := mustGB(t, append([]string{"restore", "--target-dir", dir, "--storage", store, "--log-level", "warn"}, tg.args...)...)
		t.Logf("target %d (%s): %s", i, tg.what, strings.TrimSpace(out))
		db, stop := gbtest.Standalone(t, dir)
		rs, err := db.Query("SELECT id, at FROM pitr.rows ORDER BY id")
		if err != nil {
			t.Fatalf("target %s: %v", tg.what, err)
		}
		n := 0
		for rs.Next() {
			var r row
			if err := rs.Scan(&r.id, &r.at); err != nil {
				t.Fatal(err)
			}
			if n >= len(rows) || r.id != rows[n].id || !r.at.Equal(rows[n].at) {
				t.Fatalf("target %s: restored row %d is (%d, %s), want row %d (%v)", tg.what, n, r.id, r.at, n+1, rows[min(n, len(rows)-1)])
			}
			n++
		}
		rs.Close()
		stop()
		if n != tg.want {
			t.Fatalf("target %s: restored %d rows, want exactly %d (row %d committed %s)", tg.what, n, tg.want, tg.want+1, rows[min(tg.want, len(rows)-1)].at)
		}
		t.Logf("target %s: exactly %d rows, row by row", tg.what, n)
	}

	t.Run("refused outside the window", func(t *testing.T) {
		for _, args := range [][]string{
			{"--pitr-gtid", fmt.Sprintf("7-11-%d", win.FromSeq)},
			{"--pitr", win.FromTime.Add(-5 * time.Second).Format(time.RFC3339)},
			{"--pitr-gtid", fmt.Sprintf("7-11-%d", win.ToSeq+1)},
			{"--pitr", win.ToTime.Add(2 * time.Second).Format(time.RFC3339)},
			{"--pitr-gtid", fmt.Sprintf("0-11-%d", win.ToSeq)},
		} {
			dir := filepath.Join(t.TempDir(), "data")
			out, code := gb(t, append([]string{"restore", "--target-dir", dir, "--storage", store}, args...)...)
			if code == 0 || !strings.Contains(out, "outside the restorable window") || !strings.Contains(out, "restorable windows:") ||
				!strings.Contains(out, fmt.Sprintf("7-*-%d", win.ToSeq)) {
				t.Fatalf("restore %v: exit %d\n%s", args, code, out)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Fatalf("a refused restore created %s", dir)
			}
		}
	})

	// replayedMid is a segment the restore to win.ToSeq must replay: the
	// middle one of those after the backup's position. (The middle of all
	// segments lies before the backup when the archiver rotated often
	// before it, under load; the restore then rightly succeeds.)
	replayedMid := func(t *testing.T) *pitr.Segment {
		var after []*pitr.Segment
		for _, s := range segs {
			if s.From >= win.FromSeq {
				after = append(after, s)
			}
		}
		if len(after) == 0 {
			t.Fatalf("no archived segment after the backup's position %d", win.FromSeq)
		}
		return after[len(after)/2]
	}

	t.Run("deleted binlog object is a gap", func(t *testing.T) {
		mid := replayedMid(t)
		obj := filepath.Join(store, mid.Object.Key)
		aside := filepath.Join(t.TempDir(), "aside")
		if err := os.Rename(obj, aside); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(aside, obj)
		cov := coverage(t, store)
		if len(cov.Gaps) != 1 || cov.Gaps[0].After != mid.From || cov.Gaps[0].Through != mid.To || !strings.Contains(cov.Gaps[0].Reason, "missing") {
			t.Fatalf("want one gap (%d,%d]: %+v", mid.From, mid.To, cov)
		}
		out := mustGB(t, "list", "--pitr", "--storage", store)
		if !strings.Contains(out, "gap:") || !strings.Contains(out, mid.Object.Key) {
			t.Fatalf("list --pitr does not show the gap:\n%s", out)
		}
		dir := filepath.Join(t.TempDir(), "data")
		out, code := gb(t, "restore", "--pitr-gtid", fmt.Sprintf("7-11-%d", win.ToSeq), "--target-dir", dir, "--storage", store)
		if code == 0 || !strings.Contains(out, "outside the restorable window") || !strings.Contains(out, "gap:") {
			t.Fatalf("restore across a deleted object: exit %d\n%s", code, out)
		}
		t.Logf("refused:\n%s", out)
	})

	t.Run("damaged binlog object is refused", func(t *testing.T) {
		mid := replayedMid(t)
		obj := filepath.Join(store, mid.Object.Key)
		data, err := os.ReadFile(obj)
		if err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(obj, data, 0o600)
		bad := append([]byte(nil), data...)
		bad[len(bad)/2] ^= 0x01
		if err := os.WriteFile(obj, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "data")
		out, code := gb(t, "restore", "--pitr-gtid", fmt.Sprintf("7-11-%d", win.ToSeq), "--target-dir", dir, "--storage", store)
		if code == 0 || !strings.Contains(out, mid.Object.Key) {
			t.Fatalf("restore over a damaged binlog object: exit %d\n%s", code, out)
		}
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			t.Fatalf("a refused restore wrote into %s", dir)
		}
		t.Logf("refused: %s", out)
	})

	t.Run("interrupted upload is redone once", func(t *testing.T) {
		// A crash between data and index: the index is missing. The next
		// pass writes the same segment again, nothing else.
		lastSeg := segs[len(segs)-1]
		if lastSeg.Node != n1.Name {
			t.Skipf("last segment is from %s", lastSeg.Node)
		}
		if err := os.Remove(filepath.Join(store, lastSeg.Key(), "index.json")); err != nil {
			t.Fatal(err)
		}
		mustGB(t, "binlog", "archive", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")
		again := segments(t, store)
		checkArchive(t, again, last)
		if len(again) != len(segs) || again[len(again)-1].Key() != lastSeg.Key() {
			t.Fatalf("after re-archiving: %d segments (was %d)", len(again), len(segs))
		}
	})
}
