package cluster_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/cli"
	"github.com/gosst/gosst/test/cluster"
)

// TestSmoke forms a real 3-node cluster with the stock mariabackup SST
// method, checks multi-master replication, wipes node 3 so it must rejoin
// through a full SST, and compares table checksums on all nodes.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts a 3-node cluster")
	}
	c := cluster.StartForTest(t, cluster.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)

	for _, n := range c.Nodes {
		size, err := n.Status(ctx, "wsrep_cluster_size")
		if err != nil {
			t.Fatal(err)
		}
		if size != "3" {
			t.Fatalf("%s: wsrep_cluster_size = %s, want 3", n.Name, size)
		}
	}

	mustExec(t, n2, ctx, "CREATE DATABASE smoke; CREATE TABLE smoke.t (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB")
	mustExec(t, n2, ctx, "INSERT INTO smoke.t VALUES (1, 'written on node2')")
	for _, n := range []*cluster.Node{n3, n1} {
		// A causal read: galera applies remote writes asynchronously, and
		// without wsrep_sync_wait a read right after the commit elsewhere
		// may not see it yet (seen once in CI).
		v, err := n.QueryString(ctx, "SET STATEMENT wsrep_sync_wait=1 FOR SELECT v FROM smoke.t WHERE id = 1")
		if err != nil || v != "written on node2" {
			t.Fatalf("%s: read row written on node2: %q, %v", n.Name, v, err)
		}
	}
	mustExec(t, n1, ctx, "INSERT INTO smoke.t VALUES (2, 'written on node1')")
	if err := n3.ExecCausal(ctx, "INSERT INTO smoke.t VALUES (3, 'written on node3')"); err != nil {
		t.Fatal(err)
	}
	// A write on one node right after DDL on another must wait for the
	// DDL (or retry error 1213) as an application must: without a causal
	// wait the table may not exist there yet, or the replayed DDL aborts
	// the write.
	for i := range 5 {
		mustExec(t, n1, ctx, fmt.Sprintf("CREATE TABLE smoke.ddl%d (id INT PRIMARY KEY) ENGINE=InnoDB", i))
		if err := n2.ExecCausal(ctx, fmt.Sprintf("INSERT INTO smoke.ddl%d VALUES (1)", i)); err != nil {
			t.Fatalf("write on node2 right after DDL on node1: %v", err)
		}
		if err := n3.ExecCausal(ctx, fmt.Sprintf("UPDATE smoke.ddl%d SET id = 2 WHERE id = 1", i)); err != nil {
			t.Fatalf("write on node3 right after a write on node2: %v", err)
		}
		v, err := n1.QueryString(ctx, fmt.Sprintf("SET STATEMENT wsrep_sync_wait=1 FOR SELECT id FROM smoke.ddl%d", i))
		if err != nil || v != "2" {
			t.Fatalf("node1: smoke.ddl%d holds %q, %v; want the row node3 updated", i, v, err)
		}
	}
	for i := 0; i < 50; i++ {
		mustExec(t, n1, ctx, fmt.Sprintf("INSERT INTO smoke.t VALUES (%d, REPEAT('x', 60))", 100+i))
	}

	out, code := status(ctx, c)
	if code != 0 || strings.Count(out, "Synced") != 3 {
		t.Fatalf("galera-backup status: exit %d, want 0 and three Synced rows:\n%s", code, out)
	}

	// Full SST: wipe node 3 and bring it back.
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	out, code = status(ctx, c)
	if code != cli.ExitPartial || strings.Count(out, "Synced") != 2 || !strings.Contains(out, n3.Socket+"  ERROR: connect") {
		t.Fatalf("galera-backup status with node3 down: exit %d, want %d, two Synced rows and an error row for node3:\n%s", code, cli.ExitPartial, out)
	}
	if err := n3.Wipe(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, n2, ctx, "INSERT INTO smoke.t VALUES (4, 'written while node3 was away')")
	if err := n3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(n3.ErrorLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "SST succeeded") && !strings.Contains(string(log), "SST received") {
		t.Fatalf("node3 rejoined without an SST after its datadir was wiped\n%s", n3.ErrorLogTail(60))
	}

	want, err := n1.QueryString(ctx, "SELECT COUNT(*) FROM smoke.t")
	if err != nil {
		t.Fatal(err)
	}
	if want != "54" {
		t.Fatalf("node1 has %s rows, want 54", want)
	}
	sameChecksums(t, ctx, c, "smoke.t", 54)
}

// status runs `galera-backup status` over every node's socket.
func status(ctx context.Context, c *cluster.Cluster) (string, int) {
	args := []string{"status", "--timeout", "5s"}
	for _, n := range c.Nodes {
		args = append(args, "--socket", n.Socket)
	}
	var out, errOut strings.Builder
	code := cli.Main(ctx, args, &out, &errOut)
	return out.String() + errOut.String(), code
}

func mustExec(t *testing.T, n *cluster.Node, ctx context.Context, q string) {
	t.Helper()
	if err := n.Exec(ctx, q); err != nil {
		t.Fatal(err)
	}
}

// TestStartFailureShowsErrorLog proves that a node that cannot reach
// Synced fails loudly, with its error-log tail in the error.
func TestStartFailureShowsErrorLog(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts mariadbd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{
		Nodes:       1,
		Dir:         cluster.TempDir(t),
		ExtraConfig: []string{"gosst_no_such_option=1"},
		SyncTimeout: time.Minute,
	})
	if err == nil {
		c.Close()
		t.Fatal("cluster with a bad option started")
	}
	msg := err.Error()
	for _, want := range []string{"error log tail", "unknown variable 'gosst_no_such_option=1'"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
}
