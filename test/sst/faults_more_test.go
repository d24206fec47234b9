package sst_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gosst/gosst/test/cluster"
)

// faultMode is what a faultProxy does once it has forwarded its byte
// budget from the donor to the joiner.
type faultMode int

const (
	// cutReset aborts both connections with a TCP RST (SO_LINGER 0).
	cutReset faultMode = iota
	// cutClose closes both connections normally (FIN).
	cutClose
	// blackhole stops forwarding in both directions but keeps every
	// socket open: the peers see a silent, idle connection. Later
	// connections are held open and get nothing either.
	blackhole
	// pause stops forwarding until the test closes resume, then forwards
	// the rest unchanged.
	pause
	// blackholeOnce is blackhole for the connection that faulted only:
	// later connections are forwarded whole (a flow that a NAT or a
	// firewall dropped, while a new flow gets through).
	blackholeOnce
)

func (m faultMode) String() string {
	return [...]string{"reset", "close", "blackhole", "pause", "blackhole-once"}[m]
}

// faultProxy sits between the donor and the joiner on loopback and acts
// after exactly `at` bytes of the donor→joiner stream (TLS records
// included): the fault lands at a byte offset, not at a moment in time.
type faultProxy struct {
	l      net.Listener
	target string
	at     int64
	mode   faultMode
	hit    chan struct{} // closed when the fault happened
	resume chan struct{} // pause: closed by the test to forward the rest
	done   chan struct{} // closed by close()
	g      errgroup.Group
	mu     sync.Mutex
	conns  []net.Conn
	once   sync.Once
}

// startFaultProxy listens on listenAddr and forwards every connection to
// target. The proxy is closed when the test ends at the latest.
func startFaultProxy(t *testing.T, listenAddr, target string, at int64, mode faultMode) *faultProxy {
	t.Helper()
	l, err := net.Listen("tcp", listenAddr)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{l: l, target: target, at: at, mode: mode,
		hit: make(chan struct{}), resume: make(chan struct{}), done: make(chan struct{})}
	p.g.Go(p.serve)
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		c.Close()
		return false
	default:
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *faultProxy) serve() error {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return nil
		}
		if !p.track(c) {
			return nil
		}
		if p.mode == blackhole && p.faulted() {
			// The link still drops everything: a reconnect is held open
			// and gets nothing, whether or not the joiner still listens.
			// (Dialling through would close it at once once the joiner's
			// script has given up, and the donor would fail on that EOF
			// instead of its resume window: a race of the test, not of a
			// real blackhole.)
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(u) {
			return nil
		}
		hole := new(atomic.Bool) // this connection is blackholed
		p.g.Go(func() error { p.forward(c, u, hole); return nil })
		p.g.Go(func() error { p.backward(u, c, hole); return nil })
	}
}

// faulted reports whether the fault has happened.
func (p *faultProxy) faulted() bool {
	select {
	case <-p.hit:
		return true
	default:
		return false
	}
}

// forward copies donor→joiner and acts at offset p.at.
func (p *faultProxy) forward(c, u net.Conn, hole *atomic.Bool) {
	buf := make([]byte, 32<<10)
	var off int64
	for {
		if off == p.at && !p.faulted() {
			close(p.hit)
			switch p.mode {
			case cutReset:
				for _, x := range []net.Conn{c, u} {
					_ = x.(*net.TCPConn).SetLinger(0)
					x.Close()
				}
				return
			case cutClose:
				c.Close()
				u.Close()
				return
			case blackhole, blackholeOnce:
				hole.Store(true)
				<-p.done
				return
			case pause:
				select {
				case <-p.resume:
				case <-p.done:
					return
				}
			}
		}
		want := len(buf)
		if off < p.at {
			want = int(min(int64(want), p.at-off))
		}
		n, err := c.Read(buf[:want])
		if n > 0 {
			off += int64(n)
			if _, werr := u.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if tc, ok := u.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

// backward copies joiner→donor until the fault (blackhole: nothing after it).
func (p *faultProxy) backward(u, c net.Conn, hole *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := u.Read(buf)
		if p.mode == blackhole && p.faulted() || hole.Load() {
			<-p.done
			return
		}
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

// close closes the listener and every connection and joins the goroutines.
func (p *faultProxy) close() {
	p.once.Do(func() {
		p.mu.Lock()
		close(p.done)
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.l.Close()
		_ = p.g.Wait()
	})
}

// proxiedJoiner makes n listen on a private address and puts a faultProxy
// on the SST port it announces, where the donor connects. It returns a
// function that closes the proxy and restores n's configuration.
func proxiedJoiner(t *testing.T, n *cluster.Node, at int64, mode faultMode) (*faultProxy, func()) {
	t.Helper()
	orig := mustRead(t, n.ConfigFile)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	innerAddr := inner.Addr().String()
	inner.Close()
	editConfig(t, n, addSST("listen-address="+innerAddr))
	p := startFaultProxy(t, fmt.Sprintf("127.0.0.1:%d", n.SSTPort), innerAddr, at, mode)
	return p, func() {
		p.close()
		if err := os.WriteFile(n.ConfigFile, []byte(orig), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// donorFailures returns the donors' "gosst: donor: failed" lines since offs.
func donorFailures(offs []int64) []string {
	var out []string
	for i, n := range shared.Nodes[:2] {
		out = append(out, cluster.GrepLines(n.LogSince(offs[i]), "gosst: donor: failed")...)
	}
	return out
}

// donorsBackToSynced waits until no donor script runs and both possible
// donors are Synced; the bounds are safety nets far above the timeouts
// the tests configure (and far below gosst's 300 s defaults). offs are
// the donors' error-log sizes before the fault.
func donorsBackToSynced(t *testing.T, ctx context.Context, offs []int64) {
	t.Helper()
	if !waitFor(2*time.Minute, func() bool { return len(sstProcs("donor")) == 0 }) {
		t.Fatalf("donor script still running 2 minutes after the fault: %v\n%s", sstProcs("donor"), shared.Tails(30))
	}
	for i, n := range shared.Nodes[:2] {
		err := n.WaitSynced(ctx, time.Minute)
		if err == nil {
			continue
		}
		// Only this galera failure is excused: galera-4 26.4.23 drops the
		// donor's failure report when it reaches the group while the failed
		// joiner's mariadbd is leaving it ("JOIN message from member … in
		// non-primary configuration. Ignored."; the donor logs "State
		// transfer to -1.-1 (left the group) failed"). The donor then stays
		// Joined with wsrep_desync_count 1 until it is restarted, or it
		// aborts in galera's applier ("FSM: no such a transition JOINED ->
		// JOINED"). gosst's joiner waits for its donor to hang up before it
		// exits, which makes the race rare, but a full CI run on two busy
		// cores still saw one donor abort after "State transfer to 2.0
		// (node3) failed". So: excused only for a node in one of those two
		// states whose log shows that its donation failed; gosst's script
		// had exited with its errno code, and the checks on gosst stay.
		state, _ := n.Status(ctx, "wsrep_local_state_comment")
		if !n.Running() {
			state = "aborted"
		}
		log := n.LogSince(offs[i])
		failedDonation := false
		for _, l := range cluster.GrepLines(log, "): State transfer to ") {
			failedDonation = failedDonation || strings.Contains(l, " failed")
		}
		if (state != "Joined" && state != "aborted") || !failedDonation {
			t.Fatal(err)
		}
		desync, _ := n.Status(ctx, "wsrep_desync_count")
		t.Logf("%s: GALERA: %s (wsrep_desync_count %s) after a failed donation:\n%s\nrestarting it, as an operator must",
			n.Name, state, desync, strings.Join(append(append(cluster.GrepLines(log, "in non-primary configuration. Ignored"), cluster.GrepLines(log, "): State transfer to ")...), cluster.GrepLines(log, "FSM: no such a transition")...), "\n"))
		recoverNodes(t, ctx, n)
	}
}

// reportedWhileMember checks that the donor's failure reached Galera
// while the failed joiner was still in the group ("State transfer to 2.0
// (node3) failed"), not while it was leaving ("to -1.-1 (left the group)
// failed"), which galera-4 26.4.23 can mishandle (docs/sst.md). gosst's
// joiner ensures it when it could tell the donor why it failed: it waits
// for the donor to hang up before it exits.
func reportedWhileMember(t *testing.T, joiner *cluster.Node, offs []int64) {
	t.Helper()
	var lines []string
	for i, n := range shared.Nodes[:2] {
		lines = append(lines, cluster.GrepLines(n.LogSince(offs[i]), "): State transfer to ")...)
	}
	for _, l := range lines {
		if strings.Contains(l, "failed") && strings.Contains(l, "("+joiner.Name+")") {
			t.Logf("donor's report: %s", l)
			return
		}
	}
	t.Errorf("no donor reported the failure while %s was still in the group: %q", joiner.Name, lines)
}

// assertNotInstalled checks that a joiner whose SST failed installed
// nothing into its (wiped) datadir: no server files, no sst_in_progress
// marker. Galera's own files and gosst's lock may be there; so may the
// staging directory, although gosst removes it.
func assertNotInstalled(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		switch name := e.Name(); {
		case name == "sst_in_progress":
			t.Errorf("%s left behind after a failure before the install", name)
		case name == "ibdata1", name == "ib_logfile0", name == "mysql", name == "sstfault", name == "xtrabackup_checkpoints":
			t.Errorf("half-installed datadir: %s is in %s", name, dir)
		}
	}
	t.Logf("joiner's datadir after the failure: %v", names)
}

// TestNetworkCutMidStream routes the SST through a proxy that breaks the
// connection after 4 MiB of the stream: by RST, by FIN, or by a silent
// blackhole that keeps both sockets open (an SST lost to an idle TCP
// connection). The joiner fails without a position and installs nothing,
// the donor fails too (the blackhole: both by their idle timeout, here 10
// s) and returns to Synced, and a later start of the joiner succeeds with
// matching checksums.
func TestNetworkCutMidStream(t *testing.T) {
	const at = 4 << 20
	for _, tc := range []struct {
		mode faultMode
		// exit codes each side must report (exit 32: broken transfer,
		// 110: idle timeout).
		joinerExit, donorExit string
	}{
		{cutReset, "exit 32", "exit 32"},
		{cutClose, "exit 32", "exit 32"},
		{blackhole, "exit 110", "exit 110"},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			ctx, n3 := wipedJoiner(t)
			// Without resumption: a broken connection fails the SST
			// (TestNetworkCutResumed has the same faults resumed).
			for _, n := range shared.Nodes {
				editConfig(t, n, addSST("idle-timeout=10", "resume-window=0"))
			}
			p, restore := proxiedJoiner(t, n3, at, tc.mode)
			offs := []int64{shared.Node(1).LogSize(), shared.Node(2).LogSize(), n3.LogSize()}
			log3 := expectFailedJoin(t, ctx, n3, offs[2])
			if !p.faulted() {
				t.Fatalf("the stream ended before the proxy's fault at byte %d: the test proved nothing", at)
			}
			failed := cluster.GrepLines(log3, "gosst: joiner: failed after")
			t.Logf("joiner: %s", strings.Join(failed, "\n"))
			if len(failed) > 0 && !strings.Contains(failed[0], tc.joinerExit) {
				t.Errorf("joiner: want %s, got %s", tc.joinerExit, failed[0])
			}
			if tc.mode == blackhole && len(failed) > 0 && !strings.Contains(failed[0], "nothing could be received for 10s") {
				t.Errorf("joiner did not fail by its idle timeout: %s", failed[0])
			}
			assertNotInstalled(t, n3.DataDir)
			// The donor must fail by itself: the blackhole keeps its
			// socket open, so only its idle timeout can end it.
			donorsBackToSynced(t, ctx, offs[:2])
			dfail := donorFailures(offs[:2])
			t.Logf("donor: %s", strings.Join(dfail, "\n"))
			if len(dfail) == 0 {
				t.Errorf("no donor reported the failure")
			} else if !strings.Contains(dfail[0], tc.donorExit) {
				t.Errorf("donor: want %s, got %s", tc.donorExit, dfail[0])
			}
			restore()
			rejoin(t, ctx, n3)
		})
	}
}

// hashTree returns the SHA-256 of every regular file under dir, by
// relative path, skipping the top-level entries skip accepts.
func hashTree(t *testing.T, dir string, skip func(string) bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if top, _, _ := strings.Cut(rel, string(filepath.Separator)); skip(top) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			out[rel+"/"] = "dir"
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		out[rel] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffTrees(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "removed "+k)
		} else if w != v {
			d = append(d, "changed "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	sort.Strings(d)
	return d
}

// galeraOwned are the datadir entries mysqld and Galera rewrite on every
// start whatever the SST does, gosst's lock, and the test's filler files.
func galeraOwned(name string) bool {
	for _, pat := range []string{"grastate.dat", "gvwstate.dat", "galera.cache", "gcache.page.*", "gosst_sst.lock", "*.log", "*.pid", "filler*"} {
		if ok, _ := filepath.Match(pat, name); ok {
			return true
		}
	}
	return false
}

// dirBytes sums the sizes of the regular files under dir whose top-level
// name keep accepts.
func dirBytes(t *testing.T, dir string, keep func(string) bool) int64 {
	t.Helper()
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		top, _, _ := strings.Cut(rel, string(filepath.Separator))
		if !keep(top) {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// fill writes path until the filesystem is full (ENOSPC), or until it
// holds limit bytes when limit > 0.
func fill(t *testing.T, path string, limit int64) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*7 + 1) // not zero: tmpfs stores every page
	}
	var n int64
	for limit <= 0 || n < limit {
		m := len(buf)
		if limit > 0 {
			m = int(min(int64(m), limit-n))
		}
		w, err := f.Write(buf[:m])
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestJoinerDiskFull puts node 3's datadir, holding the data of an earlier
// sync, on a small tmpfs and forces a full SST (grastate.dat removed, as an
// operator does). First the free space is below the donor's estimate: the
// joiner refuses at once with exit 28 ("not enough space"). Then the
// space fills up while the data arrives (the proxy holds the stream after 4
// MiB while the test fills the disk): the joiner fails with exit 28 and
// "no space left on device". Both times the old datadir is unchanged (every
// file hashed before and after), nothing stays in the staging area, and
// the donor returns to Synced. With room again, node 3 rejoins.
func TestJoinerDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a tmpfs on node 3's datadir and needs root (CI runs as root)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	clusterSynced(t, ctx)
	faultTable(t, ctx)
	n1, n3 := shared.Node(1), shared.Node(3)
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// The donor's estimate skips Galera's files and binary logs.
	estimate := dirBytes(t, n1.DataDir, func(name string) bool {
		return !galeraOwned(name) && !strings.HasPrefix(name, "mysql-bin.")
	})
	old := dirBytes(t, n3.DataDir, func(string) bool { return true })

	// Copy the synced datadir onto a tmpfs mounted over it. The disk copy
	// stays underneath and comes back when the test unmounts.
	copyDir := n3.DataDir + ".copy"
	if out, err := exec.Command("cp", "-a", n3.DataDir, copyDir).CombinedOutput(); err != nil {
		t.Fatalf("copy datadir: %v %s", err, out)
	}
	defer os.RemoveAll(copyDir)
	size := old + 3*estimate + 32<<20
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0750", size), "tmpfs", n3.DataDir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v %s", n3.DataDir, err, out)
	}
	t.Cleanup(func() {
		// Leave node 3 Synced on its disk datadir, whatever happened.
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer ccancel()
		if n3.Running() {
			if err := n3.Stop(cctx); err != nil {
				t.Log(err)
			}
		}
		if out, err := exec.Command("umount", n3.DataDir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", n3.DataDir, err, out)
			return
		}
		if err := n3.Start(cctx); err != nil {
			t.Errorf("node3 on its disk datadir again: %v", err)
		}
	})
	if out, err := exec.Command("cp", "-a", copyDir+"/.", n3.DataDir).CombinedOutput(); err != nil {
		t.Fatalf("copy datadir onto the tmpfs: %v %s", err, out)
	}
	for _, n := range shared.Nodes[:2] {
		editConfig(t, n, addSST("idle-timeout=20"))
	}
	before := hashTree(t, n3.DataDir, galeraOwned)
	t.Logf("tmpfs of %d MiB holds node3's old datadir (%d MiB); the donor will send about %d MiB", size>>20, old>>20, estimate>>20)

	checkOld := func(what string) {
		t.Helper()
		if d := diffTrees(before, hashTree(t, n3.DataDir, galeraOwned)); len(d) > 0 {
			t.Errorf("%s: the old datadir changed: %v", what, d)
		}
		for _, name := range []string{"sst_in_progress", ".gosst-sst"} {
			if _, err := os.Stat(filepath.Join(n3.DataDir, name)); err == nil {
				t.Errorf("%s: %s left behind", what, name)
			}
		}
	}
	forceSST := func() {
		t.Helper()
		if n3.Running() {
			t.Logf("node3: mariadbd still running after its failed SST (pid %d): killing it", n3.PID())
			if err := n3.Kill(); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Remove(filepath.Join(n3.DataDir, "grastate.dat")); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}

	// 1. Less free space than the donor's estimate: refused at once.
	forceSST()
	leave := estimate / 3
	limit := freeBytes(t, n3.DataDir) - leave
	if limit <= 0 {
		t.Fatalf("tmpfs too small: %d bytes free", freeBytes(t, n3.DataDir))
	}
	fill(t, filepath.Join(n3.DataDir, "filler1"), limit)
	offs := []int64{n1.LogSize(), shared.Node(2).LogSize(), n3.LogSize()}
	log3 := expectFailedJoin(t, ctx, n3, offs[2])
	l := cluster.GrepLines(log3, "gosst: joiner: failed after")
	if len(l) == 0 || !strings.Contains(l[0], "exit 28") || !strings.Contains(l[0], "not enough space") {
		t.Errorf("joiner did not refuse for lack of space with exit 28:\n%s", cluster.Tail(log3, 20))
	} else {
		t.Logf("joiner: %s", l[0])
	}
	donorsBackToSynced(t, ctx, offs[:2])
	t.Logf("donor: %s", strings.Join(donorFailures(offs[:2]), "\n"))
	reportedWhileMember(t, n3, offs[:2])
	checkOld("refused for lack of space")

	// 2. Enough space at the start, none left after 4 MiB of the stream.
	forceSST()
	if err := os.Remove(filepath.Join(n3.DataDir, "filler1")); err != nil {
		t.Fatal(err)
	}
	p, restore := proxiedJoiner(t, n3, 4<<20, pause)
	offs = []int64{n1.LogSize(), shared.Node(2).LogSize(), n3.LogSize()}
	if err := n3.StartNoWait(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.hit:
	case <-ctx.Done():
		t.Fatalf("the SST never reached 4 MiB:\n%s", shared.Tails(30))
	}
	filled := fill(t, filepath.Join(n3.DataDir, "filler2"), 0)
	t.Logf("stream held at 4 MiB; filled the remaining %d MiB of the tmpfs", filled>>20)
	close(p.resume)
	log3 = expectFailedJoinStarted(t, ctx, n3, offs[2])
	l = cluster.GrepLines(log3, "gosst: joiner: failed after")
	if len(l) == 0 || !strings.Contains(l[0], "exit 28") || !strings.Contains(l[0], "no space left on device") {
		t.Errorf("joiner did not fail with exit 28 and \"no space left on device\":\n%s", cluster.Tail(log3, 20))
	} else {
		t.Logf("joiner: %s", l[0])
	}
	donorsBackToSynced(t, ctx, offs[:2])
	t.Logf("donor: %s", strings.Join(donorFailures(offs[:2]), "\n"))
	reportedWhileMember(t, n3, offs[:2])
	checkOld("disk filled during the transfer")
	restore()

	// 3. Room again: a full SST into the tmpfs succeeds.
	forceSST()
	if err := os.Remove(filepath.Join(n3.DataDir, "filler2")); err != nil {
		t.Fatal(err)
	}
	off := n3.LogSize()
	rejoin(t, ctx, n3)
	if len(cluster.GrepLines(n3.LogSince(off), "gosst: joiner: received and verified")) == 0 {
		t.Errorf("node3 rejoined without a full gosst SST:\n%s", cluster.Tail(n3.LogSince(off), 30))
	}
}

// expectFailedJoinStarted is expectFailedJoin for a node started with
// StartNoWait.
func expectFailedJoinStarted(t *testing.T, ctx context.Context, n *cluster.Node, off int64) string {
	t.Helper()
	if err := n.WaitSynced(ctx, 3*time.Minute); err == nil {
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

// TestConcurrentJoiners wipes nodes 2 and 3 and starts both at once.
// Node 1 is the only possible donor (wsrep_sst_donor=node1 makes sure it
// stays so), and Galera lets a node donate to one joiner at a time. Each joiner's SST runs through a proxy that holds the
// stream after 4 MiB, so the first transfer is still running when the
// second request comes, whatever the machine's speed: Galera refuses that
// request ("it is impossible to select State Transfer donor: No donor
// candidates temporarily available in suitable state") and retries it
// every second while the second joiner's script keeps listening. Once the second joiner has been
// refused, the streams are released. Both joiners end Synced with
// identical checksums, no script fails. (sst-initial-timeout is raised for
// the test; a wait longer than it makes the waiting joiner fail with exit
// 110, see TestDonorNeverConnects for that failure.)
func TestConcurrentJoiners(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	clusterSynced(t, ctx)
	faultTable(t, ctx)
	joiners := []*cluster.Node{shared.Node(2), shared.Node(3)}
	var proxies []*faultProxy
	for _, n := range joiners {
		if err := n.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := n.Wipe(); err != nil {
			t.Fatal(err)
		}
		editConfig(t, n, addSST("sst-initial-timeout=600"))
		// Both must queue for node 1. Left to choose, Galera may serve the
		// second joiner from the node that has just joined, and galera-4
		// 26.4.23 then sometimes sends an IST one write-set short after
		// the SST ("IST didn't contain all write sets"): the joiner stops
		// replicating and needs a restart (docs/sst.md).
		editConfig(t, n, func(s string) string {
			return strings.Replace(s, "[mysqld]\n", "[mysqld]\nwsrep_sst_donor=node1\n", 1)
		})
		p, restore := proxiedJoiner(t, n, 4<<20, pause)
		t.Cleanup(restore)
		proxies = append(proxies, p)
	}
	clearPendingJoin(t, ctx, shared.Node(1))
	offs := make([]int64, len(shared.Nodes))
	for i, n := range shared.Nodes {
		offs[i] = n.LogSize()
	}
	start := time.Now()
	for _, n := range joiners {
		if err := n.StartNoWait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	first, second := 0, 1
	select {
	case <-proxies[0].hit:
	case <-proxies[1].hit:
		first, second = 1, 0
	case <-ctx.Done():
		t.Fatalf("no SST reached 4 MiB:\n%s", shared.Tails(30))
	}
	t.Logf("%s's SST is held at 4 MiB; waiting for %s's request to be refused", joiners[first].Name, joiners[second].Name)
	busy := func() []string {
		return cluster.GrepLines(joiners[second].LogSince(offs[joiners[second].Index-1]), "it is impossible to select State Transfer donor")
	}
	if !waitFor(2*time.Minute, func() bool { return len(busy()) > 0 }) {
		if early := releasedEarly(shared.Node(1).LogSince(offs[0]), joiners[first].Name); early != "" {
			// Not gosst's doing: galera ended the donation by itself
			// (see releasedEarly), so the second request found node1
			// Synced. The checks below still hold: both joiners must
			// get full, verified SSTs and equal data.
			t.Logf("GALERA: node1 was released from DONOR before its SST script finished (%s); %s was served concurrently",
				early, joiners[second].Name)
		} else {
			t.Errorf("%s was never refused a donor while node1 donated to %s:\n%s", joiners[second].Name, joiners[first].Name, shared.Tails(30))
		}
	} else {
		t.Logf("%s: %s", joiners[second].Name, busy()[0])
	}
	for _, p := range proxies {
		close(p.resume)
	}
	var g errgroup.Group
	took := make([]time.Duration, len(joiners))
	for i, n := range joiners {
		g.Go(func() error {
			if err := n.WaitSynced(ctx, 10*time.Minute); err != nil {
				return err
			}
			took[i] = time.Since(start)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("both joiners should end Synced: %v", err)
	}
	for i, n := range joiners {
		log := n.LogSince(offs[n.Index-1])
		if l := cluster.GrepLines(log, "gosst: joiner: failed"); len(l) > 0 {
			t.Errorf("%s: a joiner failed although it only had to wait: %s", n.Name, l)
		}
		if len(cluster.GrepLines(log, "gosst: joiner: received and verified")) == 0 {
			t.Errorf("%s: no full gosst SST in its log:\n%s", n.Name, cluster.Tail(log, 30))
		}
		retries := cluster.GrepLines(log, "Requesting state transfer failed")
		t.Logf("%s Synced %s after the start; %d refused requests; %s", n.Name, took[i].Round(time.Second), len(retries),
			strings.Join(cluster.GrepLines(log, "Requesting state transfer: success"), " "))
		if len(retries) > 0 {
			t.Logf("%s: %s", n.Name, retries[0])
		}
	}
	for i, n := range shared.Nodes {
		if l := cluster.GrepLines(n.LogSince(offs[i]), "gosst: donor: sent"); len(l) > 0 {
			t.Logf("%s donated: %s", n.Name, strings.Join(l, " | "))
		}
		if l := cluster.GrepLines(n.LogSince(offs[i]), "gosst: donor: failed"); len(l) > 0 {
			t.Errorf("%s: a donation failed: %s", n.Name, l)
		}
	}
	want, err := shared.Node(1).QueryString(ctx, "SELECT COUNT(*) FROM sstfault.t")
	if err != nil {
		t.Fatal(err)
	}
	var w int
	if _, err := fmt.Sscan(want, &w); err != nil {
		t.Fatal(err)
	}
	sum := converge(t, ctx, "sstfault.t", w)
	t.Logf("all 3 nodes hold %d rows, CHECKSUM TABLE %s", w, sum)
}

// clearPendingJoin makes n desync and resync with no configuration change
// in between, so that galera's gcs layer clears a JOIN it still holds as
// pending. galera-4 (gcs.cpp) keeps a "need to join" flag that only a
// JOIN delivered back to the node (or becoming primary) clears; a node
// whose last JOIN crossed a configuration change is restored to
// JOINED/SYNCED with the flag still set. When that node later donates and
// any member joins the group, galera re-sends the stale JOIN ("duplicate
// JOIN msg in case we lost it"), and the group takes it as the end of the
// donation: "node1: State transfer to node3 complete" seconds into the
// transfer, with the donor script still streaming. Seen once in a clean
// CI run: node2's request then chose node1 although it was donating.
func clearPendingJoin(t *testing.T, ctx context.Context, n *cluster.Node) {
	t.Helper()
	if err := n.Exec(ctx, "SET GLOBAL wsrep_desync = ON"); err != nil {
		t.Fatalf("%s: desync: %v", n.Name, err)
	}
	if err := n.Exec(ctx, "SET GLOBAL wsrep_desync = OFF"); err != nil {
		t.Fatalf("%s: resync: %v", n.Name, err)
	}
	if err := n.WaitSynced(ctx, time.Minute); err != nil {
		t.Fatalf("%s after a desync/resync: %v", n.Name, err)
	}
}

// releasedEarly reports the galera line that ended donor's donation to
// joiner when it came before the donor told galera its SST was sent
// ("SST sent:", logged when the SST script reports done). An empty string
// means the donation ended as it should, or has not ended.
func releasedEarly(donorLog, joiner string) string {
	for _, l := range strings.Split(donorLog, "\n") {
		if strings.Contains(l, "WSREP: SST sent:") {
			return ""
		}
		if strings.Contains(l, "): State transfer to ") && strings.Contains(l, "("+joiner+") complete") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func TestReleasedEarly(t *testing.T) {
	const (
		sent  = "2026-12-05  2:39:53 0 [Note] WSREP: SST sent: 1c5c9ce4-f053-11f1-82dc-1e175b83b458:1046"
		done3 = "2026-12-05  2:32:12 0 [Note] WSREP: 2.0 (node1): State transfer to 0.0 (node3) complete."
		done2 = "2026-12-05  2:32:12 0 [Note] WSREP: 2.0 (node1): State transfer to 1.0 (node2) complete."
		fail3 = "2026-12-05  2:32:12 0 [Warning] WSREP: 2.0 (node1): State transfer to 0.0 (node3) failed: -110 (Connection timed out)"
	)
	for _, tc := range []struct {
		name, log, joiner, want string
	}{
		{"galera ended it first", "a\n" + done3 + "\n" + sent + "\n", "node3", done3},
		{"script ended it", "a\n" + sent + "\n" + done3 + "\n", "node3", ""},
		{"other joiner's end", done2 + "\n" + sent + "\n", "node3", ""},
		{"failure is not a release", fail3 + "\n", "node3", ""},
		{"not ended yet", "a\nb\n", "node3", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := releasedEarly(tc.log, tc.joiner); got != tc.want {
				t.Errorf("releasedEarly = %q, want %q", got, tc.want)
			}
		})
	}
}
