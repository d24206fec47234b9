package sst_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/gosst/gosst/test/cluster"
)

// TestNetworkCutBeyondWindow: after 4 MiB the link drops everything, the
// reconnects too, for longer than resume-window (5 s): the SST fails
// cleanly as without resumption: the joiner installs nothing, the donor
// fails naming the window and returns to Synced, and a later start of the
// joiner succeeds.
func TestNetworkCutBeyondWindow(t *testing.T) {
	const at = 4 << 20
	ctx, n3 := wipedJoiner(t)
	for _, n := range shared.Nodes {
		editConfig(t, n, addSST("idle-timeout=10", "resume-window=5"))
	}
	p, restore := proxiedJoiner(t, n3, at, blackhole)
	offs := []int64{shared.Node(1).LogSize(), shared.Node(2).LogSize(), n3.LogSize()}
	log3 := expectFailedJoin(t, ctx, n3, offs[2])
	if !p.faulted() {
		t.Fatalf("the stream ended before the proxy's fault at byte %d: the test proved nothing", at)
	}
	t.Logf("joiner: %s", strings.Join(cluster.GrepLines(log3, "gosst: joiner: failed after"), "\n"))
	assertNotInstalled(t, n3.DataDir)
	donorsBackToSynced(t, ctx, offs[:2])
	dfail := donorFailures(offs[:2])
	t.Logf("donor: %s", strings.Join(dfail, "\n"))
	if len(dfail) == 0 {
		t.Errorf("no donor reported the failure")
	} else if !strings.Contains(dfail[0], "exit 110") || !strings.Contains(dfail[0], "resume window") {
		t.Errorf("donor: want exit 110 naming the resume window, got %s", dfail[0])
	}
	restore()
	rejoin(t, ctx, n3)
}

// TestNetworkCutResumed breaks the SST's connection after 4 MiB of the
// stream, as TestNetworkCutMidStream does, but with resumption on (the
// default): by RST, by FIN, or by a blackhole that keeps both sockets
// open until the idle timeout (10 s) notices. The proxy forwards every
// later connection whole, so the donor's reconnect gets through: the SST
// completes without starting over, both sides log the resumption, and
// every node ends with the same rows.
func TestNetworkCutResumed(t *testing.T) {
	const at = 4 << 20
	for _, mode := range []faultMode{cutReset, cutClose, blackholeOnce} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, n3 := wipedJoiner(t)
			for _, n := range shared.Nodes {
				editConfig(t, n, addSST("idle-timeout=10", "resume-window=60"))
			}
			p, restore := proxiedJoiner(t, n3, at, mode)
			defer restore()
			offs := []int64{shared.Node(1).LogSize(), shared.Node(2).LogSize(), n3.LogSize()}
			if err := n3.Start(ctx); err != nil {
				t.Fatalf("%s did not join through a resumed SST: %v\n%s", n3.Name, err, shared.Tails(40))
			}
			if !p.faulted() {
				t.Fatalf("the stream ended before the proxy's fault at byte %d: the test proved nothing", at)
			}
			log3 := n3.LogSince(offs[2])
			if r := cluster.GrepLines(log3, "gosst: joiner: resumed after"); len(r) == 0 {
				t.Errorf("joiner did not log a resumption:\n%s", cluster.Tail(log3, 40))
			} else {
				t.Logf("joiner: %s", strings.Join(r, "\n"))
			}
			var resumed []string
			for i, n := range shared.Nodes[:2] {
				resumed = append(resumed, cluster.GrepLines(n.LogSince(offs[i]), "resumed each time")...)
			}
			if len(resumed) == 0 {
				t.Errorf("no donor logged the resumption")
			} else {
				t.Logf("donor: %s", strings.Join(resumed, "\n"))
			}
			clusterSynced(t, ctx)
			want, err := shared.Node(1).QueryString(ctx, "SELECT COUNT(*) FROM sstfault.t")
			if err != nil {
				t.Fatal(err)
			}
			w, _ := strconv.Atoi(want)
			converge(t, ctx, "sstfault.t", w)
		})
	}
}
