package scheduletest

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/gosst/gosst/schedule"
	"github.com/gosst/gosst/test/cluster"
)

// Stress test for issue #14: one full test run once saw two nodes' claims
// of the same run both report a win. First a fresh cluster (nodes 2 and 3
// have just joined by SST), then each cycle stops one node cleanly, writes
// while it is away (so it rejoins by IST), restarts it and, while it is
// joining and again as soon as it is Synced, has all three nodes claim the
// same run at the same instant, twice per round:
//
//   - raw: the claim transaction as SQLLeases.Claim ran it before it read
//     its claim back (no Synced check, no read-back), on connections opened
//     beforehand so that the three transactions race as tightly as
//     possible. Two OKs from COMMIT in one round are logged (RAW DOUBLE
//     COMMIT) with the cluster's commit counter before and after; MariaDB
//     10.11.19 gives them about once in 100 races when the statement
//     before COMMIT is a prepared one (GOSST_LEASE_TEXT_SELECT=1 sends it
//     as text: none seen). The row is compared on every node: a
//     certification miss would leave them different, and fails the test.
//   - SQLLeases.Claim itself: more than one winner fails the test.
//
// It takes minutes (node restarts), so it runs only when named by -run:
//
//	go test -count=1 -timeout 30m -run TestScheduleLeaseClaimsAcrossIST ./test/scheduletest/
//
// GOSST_LEASE_RESTARTS (default 5) and GOSST_LEASE_ROUNDS (default 20,
// rounds after each rejoin) size it; GOSST_LEASE_SST=1 makes every other
// rejoin a full SST (wiped datadir); GOSST_LEASE_LOAD=N has every other
// running node commit N single-row inserts while each race runs (apply lag
// on the rejoined node, and Galera's commit-cut reports, which it sends
// every ~127 write sets and which purge the certification index).
func TestScheduleLeaseClaimsAcrossIST(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a cluster")
	}
	if f := flag.Lookup("test.run"); f == nil || !strings.Contains(f.Value.String(), "TestScheduleLeaseClaimsAcrossIST") {
		t.Skip("stress test: runs only when named by -run")
	}
	restarts, rounds := envInt(t, "GOSST_LEASE_RESTARTS", 5), envInt(t, "GOSST_LEASE_ROUNDS", 20)
	load := 0
	if os.Getenv("GOSST_LEASE_LOAD") != "" {
		load = envInt(t, "GOSST_LEASE_LOAD", 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 28*time.Minute)
	defer cancel()
	for _, n := range clu.Nodes {
		if err := n.WaitSynced(ctx, 3*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	ls := []*schedule.SQLLeases{leasesFor(1), leasesFor(2), leasesFor(3)}
	if err := ls[0].Init(ctx, "ist-raw", "slot:ist-raw", "ist-claim", "slot:ist-claim"); err != nil {
		t.Fatal(err)
	}
	if load > 0 {
		if err := clu.Node(1).ExecCausal(ctx, "CREATE TABLE IF NOT EXISTS gosst.lease_stress_load (id BIGINT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(16)) ENGINE=InnoDB"); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = clu.Node(1).ExecCausal(context.Background(), "DROP TABLE IF EXISTS gosst.lease_stress_load")
		}()
	}
	st := &istStress{t: t, ls: ls, load: load, slot: time.Now().UTC().Truncate(time.Second)}
	// The cluster as TestMain left it: nodes 2 and 3 have just joined by SST.
	for i := 0; i < rounds; i++ {
		st.round(ctx, "fresh", clu.Node(3))
	}
	for cycle := 0; cycle < restarts; cycle++ {
		n := clu.Node(cycle%3 + 1)
		sst := os.Getenv("GOSST_LEASE_SST") != "" && cycle%2 == 1
		if err := n.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if sst {
			if err := n.Wipe(); err != nil {
				t.Fatal(err)
			}
		}
		// Writes while it is away: it rejoins by IST.
		for i := 0; i < 5; i++ {
			st.round(ctx, "down", n)
		}
		if err := n.StartNoWait(ctx); err != nil {
			t.Fatal(err)
		}
		if err := answers(ctx, n); err != nil {
			t.Fatal(err)
		}
		// While it joins (bounded: a rejoin by IST takes a few rounds).
		for i := 0; i < 4*rounds && !st.synced(ctx, n); i++ {
			st.round(ctx, "joining", n)
		}
		if err := n.WaitSynced(ctx, 5*time.Minute); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < rounds; i++ {
			st.round(ctx, "synced", n)
		}
		if t.Failed() {
			break
		}
	}
	t.Logf("%d rejoins; raw claim rounds: %v (the rejoining node took part in %v, won %v); raw losses %v; SQLLeases.Claim rounds: %v; double commits %d, phantom commits %d, double wins %d, diverged rows %d",
		restarts, st.rawRounds, st.joinedIn, st.joinedWon, st.losses, st.claimRounds, st.doubleCommits, st.phantoms, st.doubleWins, st.diverged)
	// The raw races measure the server: two OKs from COMMIT for one run
	// (one of them rolled back) are a known MariaDB behaviour, logged
	// above. What gosst promises is checked: one winner through Claim, and
	// the same row on every node.
	if st.doubleWins+st.diverged > 0 {
		t.Errorf("%d rounds with two winners through SQLLeases.Claim, %d with rows that differ between nodes", st.doubleWins, st.diverged)
	}
}

type istStress struct {
	t                      *testing.T
	ls                     []*schedule.SQLLeases
	slot                   time.Time
	load                   int
	rawRounds, claimRounds map[string]int
	// raw rounds the restarted node took part in, and those it won, by its
	// state (wsrep_local_state_comment) before the round
	joinedIn, joinedWon                 map[string]int
	losses                              map[string]int // how raw claims lost
	doubleCommits, doubleWins, diverged int
	phantoms                            int
}

// answers waits until n answers SQL (it may still be joining); the
// timeout is a safety net.
func answers(ctx context.Context, n *cluster.Node) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := n.Status(ctx, "wsrep_local_state_comment"); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not answer: %w", n.Name, ctx.Err())
		case <-tick.C:
		}
	}
}

func (s *istStress) synced(ctx context.Context, n *cluster.Node) bool {
	v, err := n.Status(ctx, "wsrep_local_state_comment")
	return err == nil && v == "Synced"
}

// states returns each node's state, last committed seqno and receive queue.
func states(ctx context.Context) string {
	var b strings.Builder
	for _, n := range clu.Nodes {
		st, _ := n.Status(ctx, "wsrep_local_state_comment")
		lc, _ := n.Status(ctx, "wsrep_last_committed")
		q, _ := n.Status(ctx, "wsrep_local_recv_queue")
		fmt.Fprintf(&b, " %s=%s/lc=%s/q=%s", n.Name, st, lc, q)
	}
	return b.String()
}

// round: one raw race and one race of SQLLeases.Claim, each for a new slot.
// restarted is the node that rejoins (phase says where it is).
func (s *istStress) round(ctx context.Context, phase string, restarted *cluster.Node) {
	t := s.t
	if s.rawRounds == nil {
		s.rawRounds, s.claimRounds = map[string]int{}, map[string]int{}
		s.joinedIn, s.joinedWon, s.losses = map[string]int{}, map[string]int{}, map[string]int{}
	}
	before := states(ctx)
	rstate, _ := restarted.Status(ctx, "wsrep_local_state_comment")

	// Raw race.
	s.slot = s.slot.Add(time.Minute)
	type rawRes struct {
		node  int
		won   bool
		epoch int64
		err   error
	}
	var conns []*sql.Conn
	var nodes []int
	for i, n := range clu.Nodes {
		if !n.Running() {
			continue
		}
		c, err := n.DB().Conn(ctx)
		if err == nil {
			_, err = c.ExecContext(ctx, "SET SESSION wsrep_sync_wait = 1")
		}
		if err != nil {
			if c != nil {
				c.Close()
			}
			continue // joining: not accepting queries yet
		}
		conns = append(conns, c)
		nodes = append(nodes, i+1)
	}
	res := make([]rawRes, len(conns))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, n := range clu.Nodes {
		if s.load == 0 || n == restarted || !n.Running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for j := 0; j < s.load; j++ {
				if _, err := n.DB().ExecContext(ctx, "INSERT INTO gosst.lease_stress_load (node) VALUES (?)", n.Name); err != nil {
					t.Logf("load on node%d: %v", i+1, err)
					return
				}
			}
		}()
	}
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			won, epoch, err := rawClaim(ctx, c, clu.Node(nodes[i]).Name, s.slot)
			res[i] = rawRes{nodes[i], won, epoch, err}
		}()
	}
	close(start)
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	var winners []rawRes
	for _, r := range res {
		if r.node == restarted.Index {
			s.joinedIn[phase+"/"+rstate]++
			if r.won {
				s.joinedWon[phase+"/"+rstate]++
			}
		}
		if r.err != nil {
			s.losses[lossKind(r.err)]++
		}
		if r.err != nil && !isDeadlock(r.err) && lossKind(r.err) != "mutex held" {
			t.Logf("%s raw: node%d: %v", phase, r.node, r.err)
		}
		if r.won {
			winners = append(winners, r)
		}
	}
	s.rawRounds[phase]++
	if len(winners) > 1 {
		s.doubleCommits++
		t.Logf("%s (node %s rejoining): RAW DOUBLE COMMIT: %d raw claims of slot %s got OK from COMMIT: %+v; states before:%s after:%s",
			phase, restarted.Name, len(winners), s.slot, winners, before, states(ctx))
	}
	// Every running node must end with the same row: a certification miss
	// applies on some nodes what others refused. And the one claim whose
	// COMMIT succeeded must be the row: a COMMIT that reports success for a
	// transaction the cluster aborted would leave another owner there.
	rows := s.rows(ctx, "ist-raw")
	if len(rows) > 1 {
		s.diverged++
		t.Errorf("%s (node %s rejoining): the lease row differs between nodes: %v; states before:%s", phase, restarted.Name, rows, before)
	}
	if len(winners) == 1 && len(rows) == 1 {
		want := fmt.Sprintf("%s@%d", clu.Node(winners[0].node).Name, winners[0].epoch)
		if _, ok := rows[want]; !ok {
			s.phantoms++
			t.Logf("%s (node %s rejoining): RAW PHANTOM COMMIT: node%d's claim got OK from COMMIT as epoch %d but the row is %v; states before:%s",
				phase, restarted.Name, winners[0].node, winners[0].epoch, rows, before)
		}
	}
	for _, w := range winners {
		_ = clu.Node(w.node).ExecCausal(ctx, "UPDATE gosst.writer_lease SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 MICROSECOND WHERE job = 'ist-raw' AND owner = ? AND epoch = ?",
			clu.Node(w.node).Name, w.epoch)
	}

	// SQLLeases.Claim race (refuses a node that is not Synced).
	s.slot = s.slot.Add(time.Minute)
	var (
		mu   sync.Mutex
		won  []*schedule.Lease
		errs []error
	)
	start = make(chan struct{})
	for i, l := range s.ls {
		if !clu.Node(i + 1).Running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, lease, err := l.Claim(ctx, "ist-claim", "ist", s.slot, time.Minute)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && !errors.Is(err, schedule.ErrNotEligible) {
				errs = append(errs, fmt.Errorf("node%d: %w", i+1, err))
			}
			if r.Won {
				won = append(won, lease)
			}
		}()
	}
	close(start)
	wg.Wait()
	s.claimRounds[phase]++
	for _, err := range errs {
		t.Logf("%s claim: %v", phase, err)
	}
	if len(won) > 1 {
		s.doubleWins++
		t.Errorf("%s (node %s rejoining): %d claims of slot %s won; states before:%s", phase, restarted.Name, len(won), s.slot, before)
	}
	for _, w := range won {
		for _, l := range s.ls {
			if l.Node == w.Holder {
				if err := l.Finish(ctx, w, true); err != nil {
					t.Logf("%s: finish: %v", phase, err)
				}
			}
		}
	}
}

// rawClaim is SQLLeases.Claim's transaction without its Synced check and
// read-back: it reports whether the claim committed.
func rawClaim(ctx context.Context, c *sql.Conn, node string, slot time.Time) (bool, int64, error) {
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return false, 0, err
	}
	defer tx.Rollback()
	r, err := tx.ExecContext(ctx, `UPDATE gosst.writer_lease SET holder = ?, owner = ?, epoch = epoch + 1,
		expires_at = UTC_TIMESTAMP(6) + INTERVAL 60 SECOND WHERE job = 'ist-raw' AND expires_at < UTC_TIMESTAMP(6)`, node, node)
	if err != nil {
		return false, 0, stageErr{"update mutex", err}
	}
	if n, _ := r.RowsAffected(); n != 1 {
		return false, 0, stageErr{"mutex held", nil}
	}
	r, err = tx.ExecContext(ctx, `UPDATE gosst.writer_lease SET slot = ?, done = 0, holder = ?, owner = ?, attempts = attempts + 1
		WHERE job = 'slot:ist-raw' AND (slot < ? OR (slot = ? AND done = 0))`, slot, node, node, slot, slot)
	if err != nil {
		return false, 0, stageErr{"update slot", err}
	}
	if n, _ := r.RowsAffected(); n != 1 {
		return false, 0, nil
	}
	var epoch int64
	// With an argument, as Claim does: the driver prepares, executes and
	// closes the statement (binary protocol) right before COMMIT.
	// GOSST_LEASE_TEXT_SELECT=1 sends it as plain text instead (A/B).
	q, args := "SELECT epoch FROM gosst.writer_lease WHERE job = ?", []any{"ist-raw"}
	if os.Getenv("GOSST_LEASE_TEXT_SELECT") != "" {
		q, args = "SELECT epoch FROM gosst.writer_lease WHERE job = 'ist-raw'", nil
	}
	if err := tx.QueryRowContext(ctx, q, args...).Scan(&epoch); err != nil {
		return false, 0, stageErr{"select", err}
	}
	if err := tx.Commit(); err != nil {
		return false, 0, stageErr{"commit", err}
	}
	return true, epoch, nil
}

// rows reads the lease row causally on every node that answers and
// returns the distinct values seen (node names per value).
func (s *istStress) rows(ctx context.Context, job string) map[string][]string {
	seen := map[string][]string{}
	for _, n := range clu.Nodes {
		if !s.synced(ctx, n) {
			continue
		}
		v, err := causalRow(ctx, n, job)
		if err != nil {
			s.t.Logf("read %s on %s: %v", job, n.Name, err)
			continue
		}
		seen[v] = append(seen[v], n.Name)
	}
	return seen
}

func causalRow(ctx context.Context, n *cluster.Node, job string) (string, error) {
	c, err := n.DB().Conn(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "SET SESSION wsrep_sync_wait = 1"); err != nil {
		return "", err
	}
	var owner string
	var epoch int64
	err = c.QueryRowContext(ctx, "SELECT owner, epoch FROM gosst.writer_lease WHERE job = ?", job).Scan(&owner, &epoch)
	_, _ = c.ExecContext(context.WithoutCancel(ctx), "SET SESSION wsrep_sync_wait = DEFAULT")
	return fmt.Sprintf("%s@%d", owner, epoch), err
}

// stageErr says where a raw claim lost: err nil means it found the
// mutex held.
type stageErr struct {
	stage string
	err   error
}

func (e stageErr) Error() string {
	if e.err == nil {
		return e.stage
	}
	return e.stage + ": " + e.err.Error()
}
func (e stageErr) Unwrap() error { return e.err }

// lossKind names how a raw claim lost, for the summary.
func lossKind(err error) string {
	var se stageErr
	if !errors.As(err, &se) {
		return "other"
	}
	var me *mysql.MySQLError
	if errors.As(se.err, &me) {
		return fmt.Sprintf("%s/%d", se.stage, me.Number)
	}
	if se.err != nil {
		return se.stage + "/error"
	}
	return se.stage
}

func isDeadlock(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1213
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}
