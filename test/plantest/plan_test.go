// Package plantest checks galera-backup plan against what Galera then
// does: in a real 3-node cluster with a small gcache and gosst as the SST
// method, node3 is stopped (or killed, or wiped), plan predicts IST or SST
// and the donor, node3 is started, and its error log must show that
// transfer from that donor; a full SST into a node that had data must log
// why when it can tell (the server was started with
// --wsrep_start_position), and never claim it had data when it had none.
package plantest

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/cli"
	"github.com/gosst/gosst/test/cluster"
)

var clu *cluster.Cluster

// gcacheSize is small so that a few MiB of writes roll it over.
const gcacheSize = "8M"

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping test/plantest in -short mode: it starts a 3-node cluster")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := cluster.CheckInstalled(); err != nil {
		fmt.Println("skipping test/plantest:", err)
		return 0
	}
	dir, err := os.MkdirTemp("", "gosst-plan-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", bin+"/", "github.com/gosst/gosst/cmd/wsrep_sst_gosst").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build wsrep_sst_gosst: %v\n%s", err, out)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{Nodes: 3, Dir: filepath.Join(dir, "c"), GcacheSize: gcacheSize,
		SSTMethod: "gosst", BinDir: bin})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	clu = c
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS pt", "CREATE TABLE IF NOT EXISTS pt.t (id INT AUTO_INCREMENT PRIMARY KEY, b LONGBLOB)"} {
		if err := c.Node(1).Exec(ctx, q); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, c.Tails(40))
	}
	return code
}

// write commits count rows of size bytes through node1.
func write(t *testing.T, ctx context.Context, count, size int) {
	t.Helper()
	for i := 0; i < count; i++ {
		if err := clu.Node(1).Exec(ctx, "INSERT INTO pt.t (b) VALUES (REPEAT('x', ?))", size); err != nil {
			t.Fatal(err)
		}
	}
}

type planJSON struct {
	Transfer string   `json:"transfer"`
	Donor    string   `json:"donor"`
	Reason   string   `json:"reason"`
	Bytes    int64    `json:"bytes"`
	ETA      *float64 `json:"eta_seconds"`
}

// plan runs galera-backup plan for the stopped node j against the others.
func plan(t *testing.T, j *cluster.Node) planJSON {
	t.Helper()
	args := []string{"plan", "--json", "--log-level", "error", "--defaults-file", j.ConfigFile}
	for _, n := range clu.Nodes {
		if n != j {
			args = append(args, "--node", n.DSN())
		}
	}
	var out, errOut strings.Builder
	if code := cli.Main(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("plan: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	var p planJSON
	if err := json.Unmarshal([]byte(out.String()), &p); err != nil {
		t.Fatalf("plan --json: %v\n%s", err, out.String())
	}
	eta := "none"
	if p.ETA != nil {
		eta = fmt.Sprintf("%.1fs", *p.ETA)
	}
	t.Logf("plan: %s from %s (%d bytes, ETA %s): %s", p.Transfer, p.Donor, p.Bytes, eta, p.Reason)
	return p
}

// observed starts node n3 and reads from its error log which transfer
// Galera performed and from which donor.
func observed(t *testing.T, ctx context.Context, n3 *cluster.Node) (transfer, donor string) {
	transfer, donor, _ = observedLog(t, ctx, n3)
	return transfer, donor
}

// fullReason is how the gosst joiner starts the line explaining a full
// SST into a node that had data.
const fullReason = "full SST although this node had"

func observedLog(t *testing.T, ctx context.Context, n3 *cluster.Node) (transfer, donor, log string) {
	t.Helper()
	selectedRE := regexp.MustCompile(`\(` + n3.Name + `\) requested state transfer from '[^']*'\. Selected \d+\.\d+ \(([^)]+)\)`)
	off := int64(0)
	if fi, err := os.Stat(n3.ErrorLog); err == nil {
		off = fi.Size()
	}
	if err := n3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(n3.ErrorLog)
	if err != nil {
		t.Fatal(err)
	}
	log = string(b[off:])
	if m := selectedRE.FindStringSubmatch(log); m != nil {
		donor = m[1]
	}
	// gosst's joiner logs the donor's IST marker (--bypass), or the
	// summary of the full copy it received.
	switch {
	case strings.Contains(log, "donor reports IST (--bypass)"):
		transfer = "IST"
	case strings.Contains(log, "received and verified"):
		transfer = "SST"
	default:
		t.Fatalf("cannot tell IST from SST in %s's log:\n%s", n3.Name, tail(log, 60))
	}
	t.Logf("Galera: %s from %s", transfer, donor)
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, fullReason) {
			t.Logf("joiner: %s", l)
		}
	}
	return transfer, donor, log
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func check(t *testing.T, p planJSON, transfer, donor, wantTransfer string) {
	t.Helper()
	if p.Transfer != wantTransfer {
		t.Errorf("plan predicted %s, the scenario needs %s (reason: %s)", p.Transfer, wantTransfer, p.Reason)
	}
	if transfer != p.Transfer {
		t.Errorf("plan predicted %s, Galera did %s", p.Transfer, transfer)
	}
	if donor != p.Donor {
		t.Errorf("plan predicted donor %s, Galera chose %s", p.Donor, donor)
	}
	if p.Reason == "" || p.Bytes <= 0 {
		t.Errorf("plan lacks a reason or a size: %+v", p)
	}
}

func TestPlanStoppedInsideISTWindow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	n3 := clu.Node(3)
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	write(t, ctx, 5, 1000)
	p := plan(t, n3)
	transfer, donor := observed(t, ctx, n3)
	check(t, p, transfer, donor, "IST")
}

// rollOver writes through node1 until no running member's gcache holds
// seqno+1 any more.
func rollOver(t *testing.T, ctx context.Context, seqno int64) {
	t.Helper()
	for batch := 0; ; batch++ {
		lowest := int64(-1)
		for _, n := range clu.Nodes {
			if !n.Running() {
				continue
			}
			v, err := n.Status(ctx, "wsrep_local_cached_downto")
			if err != nil {
				t.Fatal(err)
			}
			c, _ := strconv.ParseInt(v, 10, 64)
			if lowest < 0 || c < lowest {
				lowest = c
			}
		}
		if lowest > seqno+1 {
			t.Logf("gcache rolled over: lowest cached seqno %d, node at %d, after %d batches", lowest, seqno, batch)
			return
		}
		if batch == 40 { // 40 × 1.6 MiB: 8 times the gcache; a safety net
			t.Fatalf("gcache still holds %d after %d batches", lowest, batch)
		}
		write(t, ctx, 100, 16<<10)
	}
}

func TestPlanStoppedAfterGcacheRollover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	n3 := clu.Node(3)
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	gs, err := n3.Grastate()
	if err != nil {
		t.Fatal(err)
	}
	rollOver(t, ctx, gs.Seqno)
	p := plan(t, n3)
	if !strings.Contains(p.Reason, "gcache starts at") {
		t.Errorf("reason %q does not name the donor's gcache start", p.Reason)
	}
	transfer, donor := observed(t, ctx, n3)
	check(t, p, transfer, donor, "SST")
}

func TestPlanKilledNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	n3 := clu.Node(3)
	write(t, ctx, 3, 1000)
	if err := n3.Kill(); err != nil {
		t.Fatal(err)
	}
	if gs, err := n3.Grastate(); err != nil || gs.Seqno != -1 {
		t.Fatalf("after SIGKILL grastate.dat: %+v, %v; want seqno -1", gs, err)
	}
	write(t, ctx, 3, 1000)
	p := plan(t, n3) // plan runs --wsrep-recover
	transfer, donor := observed(t, ctx, n3)
	check(t, p, transfer, donor, "IST")
}

func TestPlanOtherClusterUUID(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	n3 := clu.Node(3)
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// The node's data claims another history at a seqno the cluster's
	// gcache still holds: only the UUID rules IST out.
	path := filepath.Join(n3.DataDir, "grastate.dat")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := n3.Grastate()
	if err != nil {
		t.Fatal(err)
	}
	foreign := "0c779d86-e947-11f1-b506-2f33047b60b8"
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), gs.UUID, foreign, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := plan(t, n3)
	if !strings.Contains(p.Reason, foreign) {
		t.Errorf("reason %q does not name the node's history", p.Reason)
	}
	transfer, donor := observed(t, ctx, n3)
	check(t, p, transfer, donor, "SST")
}

func TestPlanEmptyNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	n3 := clu.Node(3)
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.Wipe(); err != nil {
		t.Fatal(err)
	}
	p := plan(t, n3)
	transfer, donor, log := observedLog(t, ctx, n3)
	check(t, p, transfer, donor, "SST")
	if strings.Contains(log, fullReason) {
		t.Errorf("an empty node's SST is explained as if it had data")
	}
	if p.ETA != nil {
		t.Errorf("ETA %v for a wiped node, which has no SST history", *p.ETA)
	}
}

// The joiner's wsrep_sst_donor names a member whose gcache lacks the range
// (node3, freshly SSTed while node2 was down); without a trailing comma.
// Galera still takes IST from a member that has it.
func TestPlanNamedDonorWithoutRange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	n2, n3 := clu.Node(2), clu.Node(3)
	if err := n2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	gs, err := n2.Grastate()
	if err != nil {
		t.Fatal(err)
	}
	// node3 takes a full SST now. Its gcache then starts at the
	// certification-index preload, a few hundred write-sets back at most:
	// write enough first that this is after node2's seqno.
	write(t, ctx, 400, 1000)
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.Wipe(); err != nil {
		t.Fatal(err)
	}
	if err := n3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	write(t, ctx, 3, 1000)
	v, err := n3.Status(ctx, "wsrep_local_cached_downto")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := strconv.ParseInt(v, 10, 64); c <= gs.Seqno+1 {
		t.Fatalf("precondition: node3's gcache starts at %d, node2 is at %d: node3 still has the range", c, gs.Seqno)
	}
	f, err := os.OpenFile(n2.ConfigFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\n[mysqld]\nwsrep_sst_donor=node3\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	p := plan(t, n2)
	if !strings.Contains(p.Reason, "node3") {
		t.Errorf("reason %q does not explain the donor list", p.Reason)
	}
	transfer, donor := observed(t, ctx, n2)
	check(t, p, transfer, donor, "IST")
	if donor == "node3" {
		t.Errorf("Galera took the named donor without the range")
	}
}

// A SIGKILLed node whose gap has rolled out of every gcache: plan recovers
// its position and predicts SST; the node is started with the recovered
// position (as galera_recovery does), so the gosst joiner can say why it
// got a full SST.
func TestPlanKilledNodeAfterRollover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	n3 := clu.Node(3)
	write(t, ctx, 3, 1000)
	if err := n3.Kill(); err != nil {
		t.Fatal(err)
	}
	seqno, err := clu.Node(1).Status(ctx, "wsrep_last_committed")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := strconv.ParseInt(seqno, 10, 64)
	rollOver(t, ctx, s)
	p := plan(t, n3)
	// node3 took full SSTs in the tests before: its history gives an ETA.
	if p.ETA == nil || !(*p.ETA > 0) {
		t.Errorf("no ETA although node3 received gosst SSTs before: %+v", p)
	}
	transfer, donor, log := observedLog(t, ctx, n3)
	check(t, p, transfer, donor, "SST")
	if !strings.Contains(log, fullReason+" position") || !strings.Contains(log, "no longer holds write-set") {
		t.Errorf("the joiner did not log why it got a full SST although it had a position")
	}
}
