// Package statetest runs galera-backup recover and bootstrap against a real
// 3-node Galera cluster taken down completely: stopped cleanly one after the
// other, then SIGKILLed, and brought back from the node bootstrap chose with
// no committed row lost.
package statetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/cli"
	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/test/cluster"
	"github.com/gosst/gosst/test/gbtest"
)

var clu *cluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(gbtest.Main(m, "state", func(c *cluster.Cluster, _ string) { clu = c }))
}

var (
	gb     = gbtest.GB
	mustGB = gbtest.MustGB
)

// rows tracks the rows whose INSERT returned OK: committed by the cluster.
type rows struct{ committed int }

func (r *rows) insert(t *testing.T, ctx context.Context, n *cluster.Node, count int) {
	t.Helper()
	for i := 0; i < count; i++ {
		// Causal: the DDL and earlier rows may come from another node.
		if err := n.ExecCausal(ctx, "INSERT INTO st.t (node) VALUES (?)", n.Name); err != nil {
			t.Fatal(err)
		}
		r.committed++
	}
}

// checkAll asserts every node holds exactly the committed rows.
func (r *rows) checkAll(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, n := range clu.Nodes {
		got, err := n.QueryString(ctx, "SELECT COUNT(*) FROM st.t")
		if err != nil {
			t.Fatal(err)
		}
		if got != strconv.Itoa(r.committed) {
			t.Fatalf("%s has %s rows, %d were committed", n.Name, got, r.committed)
		}
	}
}

func recoverJSON(t *testing.T, n *cluster.Node) ist.NodeState {
	t.Helper()
	out := mustGB(t, "recover", "--defaults-file", n.ConfigFile, "--json", "--log-level", "error")
	var st ist.NodeState
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("recover --json: %v\n%s", err, out)
	}
	return st
}

func bootstrapJSON(t *testing.T, args ...string) cli.BootstrapResult {
	t.Helper()
	out := mustGB(t, append([]string{"bootstrap", "--json", "--log-level", "error"}, args...)...)
	var res cli.BootstrapResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bootstrap --json: %v\n%s", err, out)
	}
	return res
}

func grastate(t *testing.T, n *cluster.Node) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(n.DataDir, "grastate.dat"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func allConfigs(order ...int) []string {
	var args []string
	for _, i := range order {
		args = append(args, "--defaults-file", clu.Node(i).ConfigFile)
	}
	return args
}

func restart(t *testing.T, ctx context.Context, first int, others ...int) {
	t.Helper()
	if err := clu.Node(first).StartNewCluster(ctx); err != nil {
		t.Fatalf("bootstrap %s: %v\n%s", clu.Node(first).Name, err, clu.Tails(30))
	}
	for _, i := range others {
		if err := clu.Node(i).Start(ctx); err != nil {
			t.Fatalf("rejoin %s: %v\n%s", clu.Node(i).Name, err, clu.Tails(30))
		}
	}
}

// TestBootstrapAfterFullOutage takes the whole cluster down twice, in
// sequence on one cluster: a clean stop of every node, then SIGKILL of
// every node. Each time bootstrap must pick the most advanced node, the
// cluster must come back from it with every committed row.
func TestBootstrapAfterFullOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real 3-node cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	n1, n2, n3 := clu.Node(1), clu.Node(2), clu.Node(3)
	if err := n1.Exec(ctx, "CREATE DATABASE IF NOT EXISTS st"); err != nil {
		t.Fatal(err)
	}
	if err := n1.Exec(ctx, "CREATE TABLE IF NOT EXISTS st.t (id INT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(16))"); err != nil {
		t.Fatal(err)
	}
	r := &rows{}
	r.insert(t, ctx, n1, 5)

	t.Run("recover refuses a running node", func(t *testing.T) {
		out, code := gb(t, "recover", "--defaults-file", n1.ConfigFile)
		if code == 0 || !strings.Contains(out, "server is running") || !strings.Contains(out, "stop the server first") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})

	t.Run("stopped in sequence", func(t *testing.T) {
		// node1 leaves first, then node3; node2 is the last to leave and
		// the only one with every row.
		if err := n1.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		r.insert(t, ctx, n2, 5)
		if err := n3.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		r.insert(t, ctx, n2, 5)
		if err := n2.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		s1, s2, s3 := recoverJSON(t, n1), recoverJSON(t, n2), recoverJSON(t, n3)
		for _, s := range []ist.NodeState{s1, s2, s3} {
			if s.Source != ist.SourceGrastate || s.UUID != s1.UUID || !strings.HasPrefix(s.ClusterAddress, "gcomm://") {
				t.Fatalf("recover: %+v", s)
			}
		}
		if !(s1.Seqno < s3.Seqno && s3.Seqno < s2.Seqno) || !s2.SafeToBootstrap || s1.SafeToBootstrap || s3.SafeToBootstrap {
			t.Fatalf("positions: %+v %+v %+v", s1, s2, s3)
		}
		res := bootstrapJSON(t, allConfigs(1, 2, 3)...)
		if res.Chosen == nil || res.Chosen.Name != n2.Name || res.NeedsSafeFlag || res.ExpectNodes != 3 {
			t.Fatalf("bootstrap chose %+v", res)
		}
		// The text form names the node and the command.
		out := mustGB(t, append([]string{"bootstrap"}, allConfigs(1, 2, 3)...)...)
		if !strings.Contains(out, "Bootstrap from "+n2.Name) || !strings.Contains(out, "galera_new_cluster") {
			t.Fatalf("bootstrap output:\n%s", out)
		}
		restart(t, ctx, 2, 1, 3)
		r.checkAll(t, ctx)
	})

	t.Run("all killed", func(t *testing.T) {
		r.insert(t, ctx, n1, 5)
		if err := n3.Kill(); err != nil {
			t.Fatal(err)
		}
		r.insert(t, ctx, n1, 5) // node1 and node2 still form a primary component
		if err := n2.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := n1.Kill(); err != nil {
			t.Fatal(err)
		}
		before := map[int][]byte{1: grastate(t, n1), 2: grastate(t, n2), 3: grastate(t, n3)}
		filesBefore := map[int][]string{}
		for i := 1; i <= 3; i++ {
			filesBefore[i] = names(t, clu.Node(i).Dir, clu.Node(i).DataDir)
		}

		// A missing datadir: refused, naming it.
		moved := n2.DataDir + ".away"
		if err := os.Rename(n2.DataDir, moved); err != nil {
			t.Fatal(err)
		}
		out, code := gb(t, append([]string{"bootstrap"}, allConfigs(3, 2, 1)...)...)
		if err := os.Rename(moved, n2.DataDir); err != nil {
			t.Fatal(err)
		}
		if code == 0 || !strings.Contains(out, n2.DataDir) || !strings.Contains(out, "every node's position is needed") {
			t.Fatalf("missing datadir: exit %d\n%s", code, out)
		}

		// A node left out (only the others' JSON): one of the missing could
		// be ahead, since nobody left cleanly.
		dir := t.TempDir()
		var from []string
		for _, n := range []*cluster.Node{n1, n3} {
			s := recoverJSON(t, n)
			if s.Source != ist.SourceWsrepRecover || s.SafeToBootstrap {
				t.Fatalf("recover after kill: %+v", s)
			}
			p := filepath.Join(dir, n.Name+".json")
			data, _ := json.Marshal(s)
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			from = append(from, "--from", p)
		}
		out, code = gb(t, append([]string{"bootstrap"}, from...)...)
		if code == 0 || !strings.Contains(out, "2 of 3 nodes given") {
			t.Fatalf("node left out: exit %d\n%s", code, out)
		}

		// All three. Write-sets are applied asynchronously on the other
		// nodes, so node1 (where the rows were written) can be ahead of
		// node2; node3 is behind both. The most advanced node must be
		// chosen, the first listed on a tie. Nothing changes without --apply.
		order := []int{3, 2, 1}
		res := bootstrapJSON(t, allConfigs(order...)...)
		if res.Chosen == nil || !res.NeedsSafeFlag || res.Applied || len(res.Nodes) != 3 {
			t.Fatalf("bootstrap: %+v", res)
		}
		best, chosen := int64(-1), 0
		for k, s := range res.Nodes {
			if s.Source != ist.SourceWsrepRecover || s.SafeToBootstrap || s.UUID != res.Chosen.UUID {
				t.Fatalf("recovered state after kill: %+v", s)
			}
			if s.Seqno > best {
				best, chosen = s.Seqno, order[k]
			}
		}
		c := clu.Node(chosen)
		t.Logf("positions: %s %d, %s %d, %s %d; chosen %s", res.Nodes[0].Name, res.Nodes[0].Seqno,
			res.Nodes[1].Name, res.Nodes[1].Seqno, res.Nodes[2].Name, res.Nodes[2].Seqno, res.Chosen.Name)
		if res.Chosen.Name != c.Name || res.Chosen.Seqno != best || chosen == 3 {
			t.Fatalf("bootstrap chose %s at %d; most advanced (first listed) is %s at %d", res.Chosen.Name, res.Chosen.Seqno, c.Name, best)
		}
		for i, b := range before {
			if !bytes.Equal(b, grastate(t, clu.Node(i))) {
				t.Fatalf("node%d grastate.dat changed without --apply", i)
			}
			// --wsrep-recover ran on every node: its socket, pid file and
			// error log went elsewhere; only the server's own crash recovery
			// may add files (binlog XA recovery, the DDL log's backup copy).
			after := names(t, clu.Node(i).Dir, clu.Node(i).DataDir)
			for _, f := range after {
				base := filepath.Base(f)
				if !slices.Contains(filesBefore[i], f) && !strings.HasPrefix(base, "mysql-bin.") && base != "ddl_recovery-backup.log" {
					t.Errorf("node%d: recover left %s (before: %q)", i, f, filesBefore[i])
				}
			}
		}

		res = bootstrapJSON(t, append(allConfigs(order...), "--apply")...)
		if !res.Applied || res.Chosen.Name != c.Name {
			t.Fatalf("--apply: %+v", res)
		}
		want, err := ist.SetSafeToBootstrap(before[chosen], true)
		if err != nil {
			t.Fatal(err)
		}
		if got := grastate(t, c); !bytes.Equal(got, want) {
			t.Fatalf("grastate.dat after --apply:\n%s\nwant:\n%s", got, want)
		}
		var others []int
		for _, i := range []int{1, 2, 3} {
			if i == chosen {
				continue
			}
			others = append(others, i)
			if !bytes.Equal(before[i], grastate(t, clu.Node(i))) {
				t.Fatalf("node%d grastate.dat changed by --apply on %s", i, c.Name)
			}
		}
		restart(t, ctx, chosen, others...)
		r.checkAll(t, ctx)
		fmt.Fprintf(os.Stderr, "all killed: %d rows back on every node\n", r.committed)

		// --apply on a running node is refused.
		out, code = gb(t, "bootstrap", "--defaults-file", c.ConfigFile, "--apply")
		if code == 0 || !strings.Contains(out, "server is running") {
			t.Fatalf("--apply on a running node: exit %d\n%s", code, out)
		}
	})
	t.Run("running cluster lost quorum", func(t *testing.T) {
		dsns := []string{"--node", n1.DSN(), "--node", n2.DSN(), "--node", n3.DSN()}
		out, code := gb(t, append([]string{"bootstrap"}, dsns...)...)
		if code == 0 || !strings.Contains(out, "has quorum") {
			t.Fatalf("healthy cluster: exit %d\n%s", code, out)
		}
		r.insert(t, ctx, n1, 5)
		if err := n2.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := n3.Kill(); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, ctx, n1, "non-Primary")
		out, code = gb(t, append([]string{"bootstrap"}, dsns...)...)
		if code == 0 || !strings.Contains(out, "did not answer") {
			t.Fatalf("dead nodes listed: exit %d\n%s", code, out)
		}
		out, code = gb(t, "bootstrap", "--node", n1.DSN())
		if code == 0 || !strings.Contains(out, "1 of 3 nodes given") {
			t.Fatalf("one node given: exit %d\n%s", code, out)
		}
		out = mustGB(t, "bootstrap", "--node", n1.DSN(), "--expect-nodes", "1", "--json")
		var res cli.QuorumResult
		if err := json.Unmarshal([]byte(out), &res); err != nil || !strings.HasPrefix(res.Chosen, n1.Name) {
			t.Fatalf("bootstrap --node: %v\n%s", err, out)
		}
		if err := n1.Exec(ctx, res.Statement); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, ctx, n1, "Primary")
		r.insert(t, ctx, n1, 5)
		for _, n := range []*cluster.Node{n2, n3} {
			if err := n.Start(ctx); err != nil {
				t.Fatalf("rejoin %s: %v\n%s", n.Name, err, clu.Tails(30))
			}
		}
		r.checkAll(t, ctx)
	})
}

// waitStatus polls until the node reports wsrep_cluster_status want; the
// context is only a safety net (Galera evicts dead peers after
// evs.suspect_timeout, 5 s in the harness).
func waitStatus(t *testing.T, ctx context.Context, n *cluster.Node, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		got, err := n.Status(ctx, "wsrep_cluster_status")
		if err == nil && got == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: wsrep_cluster_status %q (%v), want %q", n.Name, got, err, want)
		case <-tick.C:
		}
	}
}

// names lists the entries of the given directories (not recursive).
func names(t *testing.T, dirs ...string) []string {
	t.Helper()
	var out []string
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			out = append(out, filepath.Join(d, e.Name()))
		}
	}
	return out
}
