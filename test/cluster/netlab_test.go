package cluster_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gosst/gosst/test/cluster"
)

func needNetlab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the network lab needs root (network namespaces, tc)")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the network lab needs %s (apt-get install iproute2)", tool)
		}
	}
}

// netlabSSTBin skips an integration test of a nodes-node cluster in the
// network lab under -short or where the lab cannot run, and otherwise
// builds wsrep_sst_gosst into a directory for cluster.Options.BinDir.
func netlabSSTBin(t *testing.T, nodes int) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("integration test: starts a %d-node cluster in network namespaces", nodes)
	}
	needNetlab(t)
	bin := filepath.Join(cluster.TempDir(t), "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "wsrep_sst_gosst"), "github.com/gosst/gosst/cmd/wsrep_sst_gosst")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build wsrep_sst_gosst: %v\n%s", err, out)
	}
	return bin
}

// newLink creates a link for one test and removes it in t.Cleanup,
// checking that its namespaces are gone.
func newLink(t *testing.T, ctx context.Context) *cluster.Link {
	t.Helper()
	l, err := cluster.NewLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		assertNamespacesGone(t, l)
	})
	return l
}

func assertNamespacesGone(t *testing.T, l *cluster.Link) {
	t.Helper()
	for _, ns := range l.NS {
		if _, err := os.Stat("/run/netns/" + ns); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still exists after Close (stat: %v)", ns, err)
		}
	}
}

// copyRate sends size bytes from side A to side B over the link and
// returns the receiver's measured rate in bytes/s (first byte sent to the
// last byte received).
func copyRate(t *testing.T, ctx context.Context, l *cluster.Link, size int64) float64 {
	t.Helper()
	ln, err := l.Listen(ctx, cluster.SideB, net.JoinHostPort(l.Addr[cluster.SideB], "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := l.Dial(ctx, cluster.SideA, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	g, gctx := errgroup.WithContext(ctx)
	var received int64
	var start time.Time
	g.Go(func() error {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		defer c.Close()
		stop := context.AfterFunc(gctx, func() { c.Close() })
		defer stop()
		received, err = io.Copy(io.Discard, c)
		return err
	})
	g.Go(func() error {
		defer conn.Close()
		stop := context.AfterFunc(gctx, func() { conn.Close() })
		defer stop()
		start = time.Now()
		_, err := io.CopyN(conn, rand.Reader, size)
		return err
	})
	if err := g.Wait(); err != nil {
		t.Fatalf("copy across the link: %v", err)
	}
	elapsed := time.Since(start)
	if received != size {
		t.Fatalf("received %d bytes, sent %d", received, size)
	}
	return float64(size) / elapsed.Seconds()
}

// TestLinkShapesRate shapes the link to 100 Mbit/s and to 1 Gbit/s and
// measures a bulk TCP copy across it at each setting. It needs no MariaDB
// and takes a few seconds.
func TestLinkShapesRate(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: creates network namespaces")
	}
	needNetlab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := newLink(t, ctx)

	const size = 16 << 20
	if err := l.SetRate(ctx, "100mbit"); err != nil {
		t.Fatal(err)
	}
	slow := copyRate(t, ctx, l, size)
	if err := l.SetRate(ctx, "1gbit"); err != nil {
		t.Fatal(err)
	}
	fast := copyRate(t, ctx, l, size)
	t.Logf("100mbit: %.1f MB/s, 1gbit: %.1f MB/s", slow/1e6, fast/1e6)
	// tbf never lets more than the rate (plus one burst) through: an
	// upper bound that a slow machine cannot break.
	if limit := 1.5 * 100e6 / 8; slow > limit {
		t.Errorf("at 100mbit the copy ran at %.1f MB/s, above 1.5x the shaped rate (%.1f MB/s)", slow/1e6, limit/1e6)
	}
	// How fast the 1gbit copy runs depends on the machine; that the
	// shaping changed does not.
	for side := range 2 {
		q, err := l.Qdisc(ctx, side)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(q, "tbf") || !strings.Contains(q, "rate 1Gbit") {
			t.Errorf("side %d after SetRate(1gbit): %q, want a tbf at rate 1Gbit", side, q)
		}
	}
	if err := l.SetRate(ctx, ""); err != nil {
		t.Fatalf("remove shaping: %v", err)
	}
}

// TestLinkRemovesStaleNamespaces: a lab namespace whose creating process
// is gone (a crashed run) is removed by the next NewLink; one of a live
// process is not.
func TestLinkRemovesStaleNamespaces(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: creates network namespaces")
	}
	needNetlab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// A PID that certainly is gone: a child that has exited and been reaped.
	child := exec.Command("true")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	dead := child.Process.Pid
	if _, err := os.Stat("/proc/" + strconv.Itoa(dead)); err == nil {
		t.Skipf("pid %d was reused at once", dead)
	}
	// A live process other than this one: the parent (go test).
	live := os.Getppid()
	stale := fmt.Sprintf("gosst-lab-%d-1-a", dead)
	alive := fmt.Sprintf("gosst-lab-%d-999-a", live)
	for _, ns := range []string{stale, alive} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() {
			if _, err := os.Stat("/run/netns/" + ns); err == nil {
				_ = exec.Command("ip", "netns", "del", ns).Run()
			}
		})
	}
	newLink(t, ctx)
	if _, err := os.Stat("/run/netns/" + stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale namespace %s of dead pid %d survived NewLink (stat: %v)", stale, dead, err)
	}
	if _, err := os.Stat("/run/netns/" + alive); err != nil {
		t.Errorf("namespace %s of live pid %d was removed: %v", alive, live, err)
	}
}

// TestNetlabCluster starts a 2-node cluster with node 2 on the far side
// of a 100 Mbit/s link, so its gosst SST, and all Galera traffic, crosses
// the shaped link; then cuts the link, sees node 1 lose node 2, restores
// it and sees the cluster whole again; restarts node 2 so it catches up by
// IST, also across the link. Closing the cluster removes the
// namespaces.
func TestNetlabCluster(t *testing.T) {
	bin := netlabSSTBin(t, 2)
	c := cluster.StartForTest(t, cluster.Options{
		Nodes: 2, SSTMethod: "gosst", BinDir: bin,
		Netlab: true, LinkRate: "100mbit",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n1, n2 := c.Node(1), c.Node(2)
	if n1.Addr == n2.Addr || n2.Side != cluster.SideB {
		t.Fatalf("node addresses %s and %s, node 2 on side %d: want node 2 alone on side B", n1.Addr, n2.Addr, n2.Side)
	}
	// The SST (a whole datadir, tens of MB) went from node 1 to node 2
	// over the link.
	sent, err := c.Link.TxBytes(ctx, cluster.SideA)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("side A sent %d bytes over the link while node 2 joined", sent)
	if sent < 8<<20 {
		t.Errorf("side A sent %d bytes over the link; an SST across it sends the datadir", sent)
	}
	grep, _ := os.ReadFile(n2.ErrorLog)
	if want := fmt.Sprintf("%s:%d", n2.Addr, n2.SSTPort); !strings.Contains(string(grep), want) {
		t.Errorf("node 2's error log never mentions its SST address %s", want)
	}
	mustExec(t, n1, ctx, "CREATE DATABASE lab; CREATE TABLE lab.t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO lab.t VALUES (1)")
	if v, err := n2.QueryString(ctx, "SET STATEMENT wsrep_sync_wait=1 FOR SELECT COUNT(*) FROM lab.t"); err != nil || v != "1" {
		t.Fatalf("node 2 reads %q, %v; want the row written on node 1", v, err)
	}

	if err := c.Link.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, ctx, n1, "wsrep_cluster_size", "1")
	waitStatus(t, ctx, n2, "wsrep_cluster_size", "1")
	if err := c.Link.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		waitStatus(t, ctx, n, "wsrep_cluster_size", "2")
		if err := n.WaitSynced(ctx, 5*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := n2.ExecCausal(ctx, "INSERT INTO lab.t VALUES (2)"); err != nil {
		t.Fatalf("write on node 2 after the link came back: %v", err)
	}

	// IST across the link: node 2 misses writes while down and catches up
	// from node 1's gcache at its namespace's ist.recv_addr.
	if err := n2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, n1, ctx, "INSERT INTO lab.t VALUES (3), (4)")
	logBefore, _ := os.ReadFile(n2.ErrorLog)
	if err := n2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	logAll, _ := os.ReadFile(n2.ErrorLog)
	if !strings.Contains(string(logAll[len(logBefore):]), "IST received") {
		t.Errorf("node 2 rejoined without an IST:\n%s", n2.ErrorLogTail(40))
	}
	if v, err := n2.QueryString(ctx, "SELECT COUNT(*) FROM lab.t"); err != nil || v != "4" {
		t.Fatalf("node 2 after IST holds %q rows, %v; want 4", v, err)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	assertNamespacesGone(t, c.Link)
}

// waitStatus polls a status variable of a running node until it has the
// wanted value (bounded by a generous safety net).
func waitStatus(t *testing.T, ctx context.Context, n *cluster.Node, name, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		v, err := n.Status(ctx, name)
		if err == nil && v == want {
			return
		}
		last = fmt.Sprintf("%q, %v", v, err)
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %s never became %q (last: %s)", n.Name, name, want, last)
		case <-tick.C:
		}
	}
}

// TestNetlabStartFailureRemovesNamespaces: when a node cannot start, Start
// fails with the node's error and leaves no namespace behind.
func TestNetlabStartFailureRemovesNamespaces(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: creates network namespaces and runs mariadb-install-db")
	}
	needNetlab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	before := ownNamespaces(t)
	_, err := cluster.Start(ctx, cluster.Options{
		Nodes: 2, Dir: cluster.TempDir(t), Netlab: true, LinkRate: "1gbit",
		NodeConfig: map[int][]string{1: {"no_such_option_for_the_test=1"}},
	})
	if err == nil {
		t.Fatal("Start succeeded with an unknown server option on node 1")
	}
	if !strings.Contains(err.Error(), "node1") {
		t.Errorf("Start's error does not name the failed node: %v", err)
	}
	if after := ownNamespaces(t); len(after) != len(before) {
		t.Errorf("namespaces of this process before Start %v, after the failed Start %v", before, after)
	}
}

// ownNamespaces lists the lab namespaces of this test process.
func ownNamespaces(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var own []string
	prefix := fmt.Sprintf("gosst-lab-%d-", os.Getpid())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			own = append(own, e.Name())
		}
	}
	return own
}
