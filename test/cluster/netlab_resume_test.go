package cluster_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gosst/gosst/test/cluster"
)

// TestNetlabResume is the acceptance test of SST resumption on a real
// link: node 3 alone on side B of a shaped veth, so its SST crosses it,
// and the link itself goes down (ip link set down: no reset, no FIN, every
// packet of every connection stalls, gcomm's included).
//
//   - resumed: with the link at 8 Mbit/s, the link is cut for 10 s when
//     side A has sent ~30 % of the SST's bytes, and again at ~80 %. The
//     SST completes without starting over: the joiner and the donor log
//     the resumptions, the donor ran mariabackup once, and CHECKSUM TABLE
//     agrees on every node.
//   - beyond window: with resume-window=5, the link is cut at ~30 % and
//     stays down until the donor has given up. The SST fails cleanly: the
//     donor exits 110 naming the resume window and returns to Synced, the
//     joiner installs nothing.
//
// The SST's size is measured first, by one unshaped SST of the same data
// (bytes sent by side A), so the cut points are fractions of the bytes
// the joiner has received, not of time. gosst's idle-timeout is 5 s so
// that a 10 s outage breaks the connection (a shorter one is absorbed by
// TCP); Galera's evs timeouts are raised above the outage, as on a WAN,
// so that the joiner stays a member of the group while the link is down.
func TestNetlabResume(t *testing.T) {
	bin := netlabSSTBin(t, 3)
	c := cluster.StartForTest(t, cluster.Options{
		Nodes: 3, SSTMethod: "gosst", BinDir: bin, Netlab: true,
		ProviderOptions: []string{"evs.suspect_timeout=PT40S", "evs.inactive_timeout=PT60S"},
		// compression=none: compression=auto adapts to the link (plain
		// unshaped, S2/zstd at 8 Mbit/s), so the shaped SST could be far
		// smaller on the wire than the measured one and a cut point never
		// be reached; without a codec both SSTs are the same bytes.
		SSTConfig: []string{"compression=none", "idle-timeout=5", "sst-initial-timeout=120"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	n1, n3 := c.Node(1), c.Node(3)
	if po, err := n3.QueryString(ctx, "SELECT @@wsrep_provider_options"); err != nil || !strings.Contains(po, "evs.suspect_timeout = PT40S") {
		t.Fatalf("node 3's evs.suspect_timeout is not the test's PT40S (%v): %.300s", err, po)
	}
	mustExec(t, n1, ctx, "CREATE DATABASE lab")
	mustExec(t, n1, ctx, "CREATE TABLE lab.r (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(255)) ENGINE=InnoDB")
	const rows = 10000
	mustExec(t, n1, ctx, fmt.Sprintf("INSERT INTO lab.r (v) SELECT REPEAT(MD5(seq), 6) FROM lab.seq_1_to_%d", rows))

	start := time.Now()
	total := measuredSST(t, ctx, c)
	t.Logf("unshaped SST of the data: side A sent %d bytes in %s", total, time.Since(start).Round(time.Millisecond))
	if err := c.Link.SetRate(ctx, "8mbit"); err != nil {
		t.Fatal(err)
	}

	t.Run("resumed", func(t *testing.T) {
		start := time.Now()
		offs := logSizes(c)
		err := sstWithCuts(t, ctx, c, total, []cut{{at: 0.3, hold: 10 * time.Second}, {at: 0.8, hold: 10 * time.Second}})
		t.Logf("SST with two 10 s cuts took %s", time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Fatalf("node 3 did not join through the resumed SST: %v", err)
		}
		log3 := n3.LogSince(offs[2])
		if r := cluster.GrepLines(log3, "gosst: joiner: resumed after"); len(r) < 2 {
			t.Errorf("joiner logged %d resumptions, want one per cut:\n%s", len(r), cluster.Tail(log3, 40))
		} else {
			t.Logf("joiner: %s", strings.Join(r, "\n"))
		}
		var resumed, backups []string
		for i, n := range c.Nodes[:2] {
			l := n.LogSince(offs[i])
			resumed = append(resumed, cluster.GrepLines(l, "resumed each time")...)
			backups = append(backups, cluster.GrepLines(l, "gosst: donor: streaming to joiner")...)
		}
		if len(resumed) != 1 {
			t.Errorf("donor summaries of resumption: %q, want one", resumed)
		} else if m := regexp.MustCompile(`lost (\d+) time`).FindStringSubmatch(resumed[0]); m == nil || atoi(m[1]) != 2 {
			// More breaks than cuts: a connection that broke by itself.
			t.Errorf("donor: %s; want exactly one break per cut (2)", resumed[0])
		} else {
			t.Logf("donor: %s", resumed[0])
		}
		if len(backups) != 1 {
			t.Errorf("mariabackup ran %d times for one SST, want once (no restart from byte 0): %q", len(backups), backups)
		}
		sameChecksums(t, ctx, c, "lab.r", rows)
	})

	t.Run("beyond window", func(t *testing.T) {
		for _, n := range c.Nodes {
			appendConfig(t, n, "resume-window=5\n")
		}
		start := time.Now()
		offs := logSizes(c)
		// The link stays down until a donor's script has given up.
		donorFailed := func() bool {
			for i, n := range c.Nodes[:2] {
				if len(cluster.GrepLines(n.LogSince(offs[i]), "gosst: donor: failed")) > 0 {
					return true
				}
			}
			return false
		}
		err := sstWithCuts(t, ctx, c, total, []cut{{at: 0.3, until: donorFailed}})
		t.Logf("SST with a cut beyond the window ended after %s", time.Since(start).Round(time.Millisecond))
		if err == nil {
			t.Fatal("node 3 joined although the link was down for longer than resume-window")
		}
		var fails []string
		for i, n := range c.Nodes[:2] {
			fails = append(fails, cluster.GrepLines(n.LogSince(offs[i]), "gosst: donor: failed")...)
		}
		t.Logf("donor: %s", strings.Join(fails, "\n"))
		if len(fails) == 0 || !strings.Contains(fails[0], "exit 110") || !strings.Contains(fails[0], "resume window") {
			t.Errorf("donor: want exit 110 naming the resume window, got %q", fails)
		}
		for _, n := range c.Nodes[:2] {
			if err := n.WaitSynced(ctx, 3*time.Minute); err != nil {
				t.Errorf("donor side did not return to Synced: %v", err)
			}
		}
		if n3.Running() {
			// A failed SST makes mariadbd abort; galera-4 26.4.23 can hang
			// in that abort, as an operator's systemd would, kill it.
			t.Logf("node 3 still running after its failed SST: killing it")
			if err := n3.Kill(); err != nil {
				t.Fatal(err)
			}
		}
		if !waitGone(ctx, func() bool { return len(joinerScripts(n3)) == 0 }) {
			t.Errorf("node 3's joiner script outlived its mariadbd: %v", joinerScripts(n3))
		}
		assertNothingInstalled(t, n3.DataDir)
	})
}

// wipeNode3 stops node 3 and wipes its datadir, so that its next start
// joins by SST, and returns how many bytes side A has sent so far.
func wipeNode3(t *testing.T, ctx context.Context, c *cluster.Cluster) uint64 {
	t.Helper()
	n3 := c.Node(3)
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.Wipe(); err != nil {
		t.Fatal(err)
	}
	sent, err := c.Link.TxBytes(ctx, cluster.SideA)
	if err != nil {
		t.Fatal(err)
	}
	return sent
}

// measuredSST wipes node 3 and lets it join by SST across the unshaped
// link, returning how many bytes side A sent meanwhile: the SST's size on
// the wire, plus a little Galera traffic.
func measuredSST(t *testing.T, ctx context.Context, c *cluster.Cluster) uint64 {
	t.Helper()
	n3 := c.Node(3)
	before := wipeNode3(t, ctx, c)
	if err := n3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := c.Link.TxBytes(ctx, cluster.SideA)
	if err != nil {
		t.Fatal(err)
	}
	return after - before
}

// cut takes the link down once side A has sent the fraction at of the
// SST's bytes, for hold, or until until() holds.
type cut struct {
	at    float64
	hold  time.Duration
	until func() bool
}

// sstWithCuts wipes node 3 and starts it, cutting the link as told while
// its SST runs; it returns node 3's start result (Synced or not). The
// link is always up again when it returns. A planned cut that never
// happened (node 3 synced or failed first) fails the test.
func sstWithCuts(t *testing.T, ctx context.Context, c *cluster.Cluster, total uint64, cuts []cut) error {
	t.Helper()
	n3 := c.Node(3)
	base := wipeNode3(t, ctx, c)
	if err := n3.StartNoWait(ctx); err != nil {
		t.Fatal(err)
	}
	// The cutter stops waiting for its cut points once node 3's start
	// has ended: a cut point not reached by then never will be.
	cutCtx, stopCuts := context.WithCancel(ctx)
	defer stopCuts()
	g, gctx := errgroup.WithContext(cutCtx)
	g.Go(func() error {
		for _, k := range cuts {
			want := base + uint64(k.at*float64(total))
			if !pollUntil(gctx, 50*time.Millisecond, func() bool {
				sent, err := c.Link.TxBytes(gctx, cluster.SideA)
				return err == nil && sent >= want || !n3.Running()
			}) {
				return fmt.Errorf("planned cut at %.0f %% of the SST never happened: side A did not send that much before node 3's start ended", 100*k.at)
			}
			if !n3.Running() {
				return fmt.Errorf("node 3 exited before %.0f %% of the SST", 100*k.at)
			}
			sent, _ := c.Link.TxBytes(gctx, cluster.SideA)
			t.Logf("cutting the link at %d of ~%d bytes (%.0f %%)", sent-base, total, 100*float64(sent-base)/float64(total))
			if err := c.Link.Cut(gctx); err != nil {
				return err
			}
			down := time.Now()
			if k.until != nil {
				// Not gctx: node 3's start may end before the condition
				// holds (its own side gives up too); bounded instead.
				uctx, ucancel := context.WithTimeout(ctx, 3*time.Minute)
				held := pollUntil(uctx, 100*time.Millisecond, k.until)
				ucancel()
				if !held {
					_ = c.Link.Restore(context.WithoutCancel(gctx))
					return fmt.Errorf("the condition to restore the link never held")
				}
			} else {
				select {
				case <-time.After(k.hold): // the outage itself, not a wait for an event
				case <-gctx.Done():
				}
			}
			if err := c.Link.Restore(context.WithoutCancel(gctx)); err != nil {
				return err
			}
			t.Logf("link restored after %s", time.Since(down).Round(time.Millisecond))
		}
		return nil
	})
	startErr := n3.WaitSynced(ctx, 5*time.Minute)
	stopCuts()
	if err := g.Wait(); err != nil {
		t.Errorf("%v", err)
	}
	return startErr
}

// pollUntil checks cond every d until it holds (true) or ctx ends (false).
func pollUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return cond()
		case <-tick.C:
		}
	}
	return true
}

func logSizes(c *cluster.Cluster) []int64 {
	offs := make([]int64, len(c.Nodes))
	for i, n := range c.Nodes {
		offs[i] = n.LogSize()
	}
	return offs
}

// sameChecksums checks that CHECKSUM TABLE agrees on every node and that
// node 3 holds rows rows of table.
func sameChecksums(t *testing.T, ctx context.Context, c *cluster.Cluster, table string, rows int) {
	t.Helper()
	var sums []string
	for _, n := range c.Nodes {
		var tbl, sum string
		if err := n.DB().QueryRowContext(ctx, "CHECKSUM TABLE "+table).Scan(&tbl, &sum); err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		sums = append(sums, sum)
	}
	for _, s := range sums[1:] {
		if s != sums[0] {
			t.Fatalf("CHECKSUM TABLE %s differs between nodes: %v", table, sums)
		}
	}
	if v, err := c.Node(3).QueryString(ctx, "SELECT COUNT(*) FROM "+table); err != nil || v != strconv.Itoa(rows) {
		t.Errorf("node 3 holds %s rows of %s (%v), want %d", v, table, err, rows)
	}
	t.Logf("CHECKSUM TABLE %s: %s on every node", table, sums[0])
}

func atoi(s string) int { v, _ := strconv.Atoi(s); return v }
