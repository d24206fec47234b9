package sst_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/test/cluster"
)

// TestTwoNodesCrashAtOnce pins the recovery the fault tests rely on when
// Galera aborts a donor node in the same second as its joiner (see
// TestDonorKilledMidStream): node 1 and node 3 die by SIGKILL at once, so
// node 2 is left alone and, once Galera notices, without quorum. Node 1 is
// restarted as soon as both are gone, as the test's old recovery did; it
// must reach Synced with every row, and node 3 after it.
func TestTwoNodesCrashAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	clusterSynced(t, ctx)
	faultTable(t, ctx)
	n1, n3 := shared.Node(1), shared.Node(3)
	for _, n := range []*cluster.Node{n1, n3} {
		if err := n.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	recoverNodes(t, ctx, n1)
	rejoin(t, ctx, n3)
}

// recoverNodes is an operator's recovery of a cluster some of whose nodes
// crashed (mariadbd exited) or were left stuck by galera (running, but not
// Synced): it stops the stuck ones, waits until galera on every node still
// running has noticed who is gone, bootstraps the survivors' component if
// it lost quorum, and only then starts the given nodes again.
//
// The order matters. A node that dies without leaving the group (abort,
// SIGKILL) stays in the survivors' view until galera suspects it:
// evs.suspect_timeout and the install timeout, 5-10 s here. Until then a
// survivor still reports Synced and Primary, although it is about to fall
// to non-Primary (1 of 3, or 1 of 2, is no quorum). A crashed node started
// again in that window comes back with a new identity, which does not
// count towards quorum ("No nodes coming from primary view, primary view
// is not possible"): it and the survivor form a non-primary component and
// both wait forever (TestDonorKilledMidStream hung so, 3 minutes of
// "Failed to establish connection" from the restarted node).
//
// Every step is logged, with the error log tail of each node it concerns.
func recoverNodes(t *testing.T, ctx context.Context, nodes ...*cluster.Node) {
	t.Helper()
	for _, n := range nodes {
		if !n.Running() {
			t.Logf("recover: %s: mariadbd is not running; error log tail:\n%s", n.Name, n.ErrorLogTail(30))
			continue
		}
		t.Logf("recover: %s: stopping it (pid %d); error log tail:\n%s", n.Name, n.PID(), n.ErrorLogTail(30))
		if err := n.Stop(ctx); err != nil {
			t.Logf("recover: %s: %v", n.Name, err)
		}
	}
	var up []*cluster.Node
	for _, o := range shared.Nodes {
		if o.Running() {
			up = append(up, o)
		}
	}
	if len(up) == 0 {
		b := bootstrapCandidate(nodes)
		t.Logf("recover: no node is running: bootstrapping a new primary component on %s", b.Name)
		if err := b.StartNewCluster(ctx); err != nil {
			t.Fatalf("recover: %s: bootstrap: %v", b.Name, err)
		}
		up = append(up, b)
	}
	// Wait until every survivor's view holds exactly the running nodes.
	var states string
	settled := func() bool {
		ok := true
		var b strings.Builder
		for _, o := range up {
			size, status := quickStatus(ctx, o, "wsrep_cluster_size"), quickStatus(ctx, o, "wsrep_cluster_status")
			fmt.Fprintf(&b, "%s: cluster size %s, %s; ", o.Name, size, status)
			ok = ok && size == strconv.Itoa(len(up))
		}
		states = b.String()
		return ok
	}
	if !waitFor(3*time.Minute, settled) {
		t.Fatalf("recover: the running nodes' views never settled to the %d running nodes: %s\n%s", len(up), states, shared.Tails(30))
	}
	t.Logf("recover: survivors settled: %s", states)
	for _, o := range up {
		if quickStatus(ctx, o, "wsrep_cluster_status") == "Primary" {
			continue
		}
		t.Logf("recover: %s: lost its primary component; pc.bootstrap=YES", o.Name)
		if err := o.Exec(ctx, "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'"); err != nil {
			t.Fatalf("recover: %s: %v", o.Name, err)
		}
		break // one bootstrap makes the whole component primary
	}
	for _, o := range up {
		if err := o.WaitSynced(ctx, time.Minute); err != nil {
			t.Fatalf("recover: %v", err)
		}
	}
	for _, n := range nodes {
		if n.Running() {
			continue // the bootstrap node
		}
		t.Logf("recover: %s: starting it again", n.Name)
		if err := n.Start(ctx); err != nil {
			t.Fatalf("recover: %s: restart: %v\n%s", n.Name, err, shared.Tails(30))
		}
	}
}

// quickStatus is n's status variable, or the error, asked with a short
// timeout: a survivor busy changing views must not stall recoverNodes.
func quickStatus(ctx context.Context, n *cluster.Node, name string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := n.Status(ctx, name)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return v
}

// bootstrapCandidate picks, after a full outage, the node to bootstrap:
// the first of nodes whose datadir holds data (a wiped joiner holds none).
func bootstrapCandidate(nodes []*cluster.Node) *cluster.Node {
	for _, n := range append(append([]*cluster.Node{}, nodes...), shared.Nodes...) {
		if _, err := os.Stat(filepath.Join(n.DataDir, "ibdata1")); err == nil {
			return n
		}
	}
	return nodes[0]
}
