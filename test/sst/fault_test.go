package sst_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gosst/gosst/test/cluster"
)

// editConfig rewrites a node's my.cnf (read again by wsrep_sst_gosst on
// every run, and by mariadbd on its next start) and restores it when the
// test ends.
func editConfig(t *testing.T, n *cluster.Node, edit func(string) string) {
	t.Helper()
	orig, err := os.ReadFile(n.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.ConfigFile, []byte(edit(string(orig))), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(n.ConfigFile, orig, 0o600) })
}

// addSST appends lines to the [sst] group (the last group in the file).
func addSST(lines ...string) func(string) string {
	return func(s string) string { return s + strings.Join(lines, "\n") + "\n" }
}

// sstProcs returns the pids of wsrep_sst_gosst processes of the given
// role that belong to this cluster: started by one of our mariadbd
// processes, recognised by a node's datadir on their command line (a
// script whose mariadbd died has been reparented, so the parent chain
// cannot tell).
func sstProcs(role string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if filepath.Base(args[0]) != "wsrep_sst_gosst" || !strings.Contains(string(cmd), "--role\x00"+role) {
			continue
		}
		for _, n := range shared.Nodes {
			if strings.Contains(string(cmd), "\x00"+n.DataDir+"/\x00") {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// waitFor polls cond every 100 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}

// expectFailedJoin starts n and expects mariadbd to abort because the
// SST failed, with no position reported by gosst.
func expectFailedJoin(t *testing.T, ctx context.Context, n *cluster.Node, off int64) string {
	t.Helper()
	err := n.Start(ctx)
	if err == nil {
		t.Fatalf("%s joined although the SST should have failed", n.Name)
	}
	if !waitFor(30*time.Second, func() bool { return len(sstProcs("joiner")) == 0 }) {
		t.Errorf("a joiner script outlived its mariadbd: %v", sstProcs("joiner"))
	}
	log := n.LogSince(off)
	if len(cluster.GrepLines(log, "gosst: joiner: failed after")) == 0 {
		t.Errorf("%s: joiner did not report its failure:\n%s", n.Name, cluster.Tail(log, 30))
	}
	if l := cluster.GrepLines(log, "SST succeeded for position"); len(l) > 0 && !strings.Contains(l[0], "00000000-0000-0000-0000-000000000000:-1") {
		t.Errorf("%s: a position was reported after a failure: %s", n.Name, l)
	}
	return log
}

// rejoin restarts n after a failure and checks the data.
func rejoin(t *testing.T, ctx context.Context, n *cluster.Node) {
	t.Helper()
	// After a failed SST mariadbd aborts; galera-4 26.4.23 sometimes
	// deadlocks in that abort and never exits (seen in CI). An operator's
	// systemd kills it after TimeoutStopSec; so do we.
	if n.Running() {
		t.Logf("%s: mariadbd still running after its failed SST (pid %d): killing it", n.Name, n.PID())
		if err := n.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Start(ctx); err != nil {
		t.Fatalf("%s: restart after the failure: %v", n.Name, err)
	}
	clusterSynced(t, ctx)
	want, err := shared.Node(1).QueryString(ctx, "SELECT COUNT(*) FROM sstfault.t")
	if err != nil {
		t.Fatal(err)
	}
	w, _ := strconv.Atoi(want)
	converge(t, ctx, "sstfault.t", w)
}

// wipedJoiner is every fault test's start: a synced cluster with a table
// to check afterwards, and node 3 stopped and wiped so that its next start
// needs a full SST. The context bounds the test (10 minutes).
func wipedJoiner(t *testing.T) (context.Context, *cluster.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	clusterSynced(t, ctx)
	faultTable(t, ctx)
	n3 := shared.Node(3)
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.Wipe(); err != nil {
		t.Fatal(err)
	}
	return ctx, n3
}

func faultTable(t *testing.T, ctx context.Context) {
	t.Helper()
	n1 := shared.Node(1)
	mustExec(t, ctx, n1, "CREATE DATABASE IF NOT EXISTS sstfault")
	mustExec(t, ctx, n1, "CREATE TABLE IF NOT EXISTS sstfault.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(255)) ENGINE=InnoDB")
	mustExec(t, ctx, n1, "INSERT INTO sstfault.t (v) SELECT REPEAT(MD5(seq), 7) FROM sstfault.seq_1_to_5000")
}

// TestTLSWrongCA gives node 3 a certificate and CA from another CA: both
// sides refuse the handshake with a clear message, nothing is sent, and
// node 3 rejoins once its certificates are fixed.
func TestTLSWrongCA(t *testing.T) {
	ctx, n3 := wipedJoiner(t)
	editConfig(t, n3, func(s string) string {
		s = strings.Replace(s, "tca="+certs.CA, "tca="+certs.OtherCA, 1)
		s = strings.Replace(s, "tcert="+certs.Cert, "tcert="+certs.OtherCert, 1)
		return strings.Replace(s, "tkey="+certs.Key, "tkey="+certs.OtherKey, 1)
	})
	offs := []int64{shared.Node(1).LogSize(), shared.Node(2).LogSize(), n3.LogSize()}
	log3 := expectFailedJoin(t, ctx, n3, offs[2])
	refused := cluster.GrepLines(log3, "TLS handshake failed")
	if len(refused) == 0 {
		t.Errorf("joiner did not log the refused handshake:\n%s", cluster.Tail(log3, 30))
	}
	t.Logf("joiner: %s", strings.Join(refused, "\n"))
	var donorMsg []string
	for i, n := range shared.Nodes[:2] {
		donorMsg = append(donorMsg, cluster.GrepLines(n.LogSince(offs[i]), "gosst: donor: failed")...)
	}
	if len(donorMsg) == 0 || !strings.Contains(strings.Join(donorMsg, ""), "nothing sent") {
		t.Errorf("donor did not report the refused handshake: %q", donorMsg)
	}
	t.Logf("donor: %s", strings.Join(donorMsg, "\n"))
	entries, _ := os.ReadDir(n3.DataDir)
	for _, e := range entries {
		if e.Name() == ".gosst-sst" || e.Name() == "ibdata1" {
			t.Errorf("data arrived despite the refused handshake: %s", e.Name())
		}
	}
	// Fix the certificates; the next start succeeds.
	_ = os.WriteFile(n3.ConfigFile, []byte(strings.NewReplacer(
		"tca="+certs.OtherCA, "tca="+certs.CA, "tcert="+certs.OtherCert, "tcert="+certs.Cert, "tkey="+certs.OtherKey, "tkey="+certs.Key,
	).Replace(mustRead(t, n3.ConfigFile))), 0o600)
	rejoin(t, ctx, n3)
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// throttleDonors makes every possible donor stream slowly, so a test can
// act while the transfer runs.
func throttleDonors(t *testing.T) {
	t.Helper()
	for _, n := range shared.Nodes[:2] {
		editConfig(t, n, addSST("rlimit=2M"))
	}
}

// receivingInto matches the joiner's log line naming its staging directory.
var receivingInto = regexp.MustCompile(`gosst: joiner: receiving xbstream, .*, into (\S+) \(donor estimates`)

// streaming waits until n's joiner script (logging after offset) has
// received data: its staging directory holds bytes of the backup. The
// donor's data is then flowing (throttled by throttleDonors): the moment
// the mid-stream fault tests strike, chosen by what happened, not by time.
func streaming(t *testing.T, n *cluster.Node, offset int64) {
	t.Helper()
	var staging string
	if !waitFor(2*time.Minute, func() bool {
		m := receivingInto.FindStringSubmatch(n.LogSince(offset))
		if m != nil {
			staging = m[1]
		}
		return m != nil
	}) {
		t.Fatalf("%s's joiner never started receiving:\n%s", n.Name, shared.Tails(30))
	}
	if !waitFor(2*time.Minute, func() bool { return dirBytes(t, staging, func(string) bool { return true }) > 0 }) {
		t.Fatalf("%s's joiner received no data into %s:\n%s", n.Name, staging, shared.Tails(30))
	}
}

// TestDonorKilledMidStream kills the donor's wsrep_sst_gosst while it
// streams: the joiner reports failure without a position, the donor node
// returns to Synced, and a later restart of the joiner succeeds.
func TestDonorKilledMidStream(t *testing.T) {
	ctx, n3 := wipedJoiner(t)
	throttleDonors(t)
	off := n3.LogSize()
	donorOffs := []int64{shared.Node(1).LogSize(), shared.Node(2).LogSize()}
	if err := n3.StartNoWait(ctx); err != nil {
		t.Fatal(err)
	}
	var donors []int
	if !waitFor(60*time.Second, func() bool { donors = sstProcs("donor"); return len(donors) > 0 }) {
		t.Fatalf("no donor script appeared:\n%s", shared.Tails(30))
	}
	streaming(t, n3, off)
	for _, pid := range donors {
		t.Logf("killing donor script pid %d", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := n3.WaitSynced(ctx, 2*time.Minute); err == nil {
		t.Fatal("node3 reached Synced although its donor was killed")
	}
	log3 := n3.LogSince(off)
	// The joiner reports its failure; or, with resumption (the default),
	// it waits for the donor to reconnect, and Galera's report of the
	// donor's failure makes mariadbd abort first, taking the script's
	// last log line with it.
	resumeWait := len(cluster.GrepLines(log3, "gosst: joiner: connection lost")) > 0 && len(cluster.GrepLines(log3, "Will never receive state")) > 0
	if len(cluster.GrepLines(log3, "gosst: joiner: failed after")) == 0 && !resumeWait {
		t.Errorf("joiner did not report failure:\n%s", cluster.Tail(log3, 30))
	}
	if !waitFor(30*time.Second, func() bool { return len(sstProcs("joiner")) == 0 }) {
		t.Errorf("joiner script outlived its mariadbd")
	}
	for _, l := range cluster.GrepLines(log3, "gosst: joiner: failed") {
		t.Logf("%s", l)
	}
	// Each possible donor ends Synced in a primary component, or exits, or
	// loses its primary component because the other one died.
	var broken, lost []*cluster.Node
	for i, n := range shared.Nodes[:2] {
		var state, status string
		waitFor(time.Minute, func() bool {
			if !n.Running() {
				return true
			}
			state, status = quickStatus(ctx, n, "wsrep_local_state_comment"), quickStatus(ctx, n, "wsrep_cluster_status")
			return state == "Synced" && status == "Primary" || status == "non-Primary"
		})
		switch {
		case !n.Running():
			state, status = "mariadbd exited", "no cluster status"
		case state == "Synced" && status == "Primary":
			continue
		case status == "non-Primary":
			// Quorum lost to the other node's crash: recoverNodes
			// bootstraps it once that crash is understood below.
			t.Logf("%s: %s, %s (the other possible donor died)", n.Name, state, status)
			lost = append(lost, n)
			continue
		}
		// Only the galera failure below is excused: the donation must have
		// failed by our SIGKILL of the script (exit 137), as every node logs.
		if len(cluster.GrepLines(n.LogSince(donorOffs[i]), "failed: Unknown error 137")) == 0 {
			t.Fatalf("%s: %s, %s after its SST script was killed:\n%s", n.Name, state, status, n.ErrorLogTail(60))
		}
		// galera-4 26.4.23 sometimes mishandles a donation that failed
		// because the SST script died by SIGKILL (mysqld reports "Unknown
		// error 137"): the donor's mariadbd aborts inside libgalera ("FSM:
		// no such a transition JOINED -> JOINED", after the JOIN of the
		// failed donation and the JOIN of the resync when the script's
		// BACKUP STAGE connection drops), or stays Joined and never
		// returns to Synced. Seen in CI runs, never when the script exits
		// by itself. The other node holds every row; an operator restarts
		// the node, and so do we, loudly. The checks on gosst (the joiner
		// failed without a position, its script exited, the restart
		// succeeds with every row) stay.
		t.Logf("GALERA: %s: %s, %s after its SST script was killed; error log:\n%s", n.Name, state, status,
			strings.Join(append(cluster.GrepLines(n.LogSince(donorOffs[i]), "): State transfer to "), cluster.GrepLines(n.LogSince(donorOffs[i]), "FSM: no such a transition")...), "\n"))
		broken = append(broken, n)
	}
	if len(broken) > 0 {
		// With resumption the joiner's mariadbd aborts in the same second
		// as the donor's ("Will never receive state"): neither leaves the
		// group, and the one node left loses quorum 5-10 s later, when
		// galera suspects them. recoverNodes waits for that before it
		// bootstraps the survivor and restarts the donor. The joiner is
		// restarted last, by rejoin.
		if n3.Running() {
			t.Logf("%s: mariadbd still running after its failed SST (pid %d): killing it", n3.Name, n3.PID())
			if err := n3.Kill(); err != nil {
				t.Fatal(err)
			}
		}
		recoverNodes(t, ctx, broken...)
	} else if len(lost) > 0 {
		t.Fatalf("%s lost its primary component although no donor failed:\n%s", lost[0].Name, shared.Tails(30))
	}
	rejoin(t, ctx, n3)
}

// TestJoinerKilledMidStream kills the joiner's mariadbd while data flows:
// the joiner script stops at once (it watches --parent), the donor fails
// and returns to Synced well within its idle timeout, and the next start
// succeeds.
func TestJoinerKilledMidStream(t *testing.T) {
	ctx, n3 := wipedJoiner(t)
	throttleDonors(t)
	offs := []int64{shared.Node(1).LogSize(), shared.Node(2).LogSize()}
	off := n3.LogSize()
	if err := n3.StartNoWait(ctx); err != nil {
		t.Fatal(err)
	}
	if !waitFor(60*time.Second, func() bool { return len(sstProcs("donor")) > 0 }) {
		t.Fatalf("no donor script appeared:\n%s", shared.Tails(30))
	}
	streaming(t, n3, off)
	if err := n3.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if !waitFor(10*time.Second, func() bool { return len(sstProcs("joiner")) == 0 }) {
		t.Errorf("joiner script still running 10 s after its mariadbd died")
	}
	if !waitFor(60*time.Second, func() bool { return len(sstProcs("donor")) == 0 }) {
		t.Fatalf("donor script still running 60 s after the joiner died")
	}
	// The joiner's mariadbd leaves the group at once, so the donor's
	// failure report can meet galera-4's race (docs/sst.md §6): a donor
	// galera leaves Joined or aborted after its failed donation is
	// restarted, as an operator must; everything else must be Synced.
	donorsBackToSynced(t, ctx, offs)
	t.Logf("donor back to Synced %s after the joiner's mariadbd was killed", time.Since(killed).Round(100*time.Millisecond))
	var donorMsg []string
	for i, n := range shared.Nodes[:2] {
		donorMsg = append(donorMsg, cluster.GrepLines(n.LogSince(offs[i]), "gosst: donor: failed")...)
	}
	if len(donorMsg) == 0 {
		t.Errorf("donor did not report the failure")
	}
	t.Logf("%s", strings.Join(donorMsg, "\n"))
	rejoin(t, ctx, n3)
}

// flipProxy listens on listenAddr, forwards one connection to target and
// flips one bit of the byte at offset flipAt of the client→server stream.
// The returned function closes it.
func flipProxy(t *testing.T, listenAddr, target string, flipAt int64) func() {
	t.Helper()
	l, err := net.Listen("tcp", listenAddr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		u, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer u.Close()
		go func() { _, _ = io.Copy(c, u); c.Close() }()
		buf := make([]byte, 32<<10)
		var off int64
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if flipAt >= off && flipAt < off+int64(n) {
					buf[flipAt-off] ^= 0x10
				}
				off += int64(n)
				if _, werr := u.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return func() { l.Close() }
}

// TestByteFlippedOnWire routes the SST through a proxy that flips one bit:
// the joiner refuses the data (here TLS's record authentication catches it
// first; without TLS the stream checksums do, see sst.TestFlippedByte),
// reports no position, keeps its datadir, and a later restart succeeds.
func TestByteFlippedOnWire(t *testing.T) {
	ctx, n3 := wipedJoiner(t)
	orig := mustRead(t, n3.ConfigFile)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	innerAddr := inner.Addr().String()
	inner.Close()
	// Without resumption: with it, the joiner would wait for a reconnect
	// (which this one-connection proxy never lets through) instead of
	// failing on the flipped byte.
	editConfig(t, n3, addSST("listen-address="+innerAddr, "resume-window=0"))
	closeProxy := flipProxy(t, fmt.Sprintf("127.0.0.1:%d", n3.SSTPort), innerAddr, 300000)
	off := n3.LogSize()
	log3 := expectFailedJoin(t, ctx, n3, off)
	closeProxy()
	for _, l := range cluster.GrepLines(log3, "gosst: joiner: failed") {
		t.Logf("%s", l)
	}
	if err := os.WriteFile(n3.ConfigFile, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	rejoin(t, ctx, n3)
}

// TestDonorNeverConnects makes node 3 listen where no donor can reach it:
// its joiner gives up after sst-initial-timeout with exit 110 and no
// position, the donor gives up after its connect-timeout and returns to
// Synced, and node 3 then rejoins normally.
func TestDonorNeverConnects(t *testing.T) {
	ctx, n3 := wipedJoiner(t)
	orig := mustRead(t, n3.ConfigFile)
	unused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := unused.Addr().String()
	unused.Close()
	editConfig(t, n3, addSST("listen-address="+elsewhere, "sst-initial-timeout=5"))
	for _, n := range shared.Nodes[:2] {
		editConfig(t, n, addSST("connect-timeout=10"))
	}
	off := n3.LogSize()
	start := time.Now()
	log3 := expectFailedJoin(t, ctx, n3, off)
	if l := cluster.GrepLines(log3, "no donor connected within sst-initial-timeout"); len(l) == 0 || !strings.Contains(l[0], "exit 110") {
		t.Errorf("joiner did not time out with exit 110:\n%s", cluster.Tail(log3, 20))
	} else {
		t.Logf("after %s: %s", time.Since(start).Round(100*time.Millisecond), l[0])
	}
	// The donor must give up too before node 3 asks again, or mysqld could
	// pin its late failure report on the next transfer.
	if !waitFor(30*time.Second, func() bool { return len(sstProcs("donor")) == 0 }) {
		t.Fatalf("donor script still running long after its connect-timeout")
	}
	for _, n := range shared.Nodes[:2] {
		if err := n.WaitSynced(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(n3.ConfigFile, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	rejoin(t, ctx, n3)
}
