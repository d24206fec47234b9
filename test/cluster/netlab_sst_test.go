package cluster_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gosst/gosst/test/cluster"
)

// TestNetlabZeroConfSST runs gosst SSTs across the network lab's veth with
// no certificate configured anywhere (zero-config encryption) and
// compression off, capturing the SST port's traffic on the joiner's end of
// the link:
//
//   - encrypted: node 3 joins by full SST; the capture saw more bytes than
//     the marker table holds and never the marker, and node 3 has every
//     marker row.
//   - mitm: a relay with another (self-signed) certificate answers on the
//     joiner's announced address and forwards to the joiner's real
//     listener; the donor refuses it (pin mismatch, logged), nothing of the
//     data crosses the link, the SST fails, the donors return to Synced and
//     node 3's datadir holds nothing installed.
//   - cleartext control: with [gosst] encrypt=off on every node the same
//     capture sees the marker, so the capture would have seen it above.
func TestNetlabZeroConfSST(t *testing.T) {
	bin := netlabSSTBin(t, 3)
	c := cluster.StartForTest(t, cluster.Options{
		Nodes: 3, SSTMethod: "gosst", BinDir: bin,
		Netlab: true, LinkRate: "100mbit",
		// No tca/tcert/tkey/ssl-*: zero-config encryption. Uncompressed,
		// so that a cleartext SST would show the rows on the wire.
		SSTConfig: []string{"compression=none", "sst-initial-timeout=60"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	n1, n3 := c.Node(1), c.Node(3)
	if n3.Side != cluster.SideB {
		t.Fatalf("node 3 on side %d, want it alone on side B", n3.Side)
	}
	var rb [12]byte
	_, _ = rand.Read(rb[:])
	marker := "gosst-netlab-marker-" + hex.EncodeToString(rb[:])
	const rows = 20000
	mustExec(t, n1, ctx, "CREATE DATABASE lab")
	mustExec(t, n1, ctx, "CREATE TABLE lab.m (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(255)) ENGINE=InnoDB")
	mustExec(t, n1, ctx, fmt.Sprintf("INSERT INTO lab.m (v) SELECT CONCAT('%s-', seq) FROM lab.seq_1_to_%d", marker, rows))
	fi, err := os.Stat(filepath.Join(n1.DataDir, "lab", "m.ibd"))
	if err != nil {
		t.Fatal(err)
	}
	dataset := fi.Size()
	t.Logf("marker table: %d rows, %d bytes", rows, dataset)

	markerRows := func() string {
		v, err := n3.QueryString(ctx, "SELECT COUNT(*) FROM lab.m WHERE v LIKE ?", marker+"-%")
		if err != nil {
			return err.Error()
		}
		return v
	}

	t.Run("encrypted", func(t *testing.T) {
		res := captureFullSST(t, ctx, c, []byte(marker))
		if res.ToPort+res.FromPort <= dataset {
			t.Errorf("the capture saw %d bytes of SST traffic, not more than the %d bytes of the marker table: the SST did not cross the link", res.ToPort+res.FromPort, dataset)
		}
		if res.Found[0] {
			t.Errorf("the marker %q crossed the link in cleartext", marker)
		}
		if got := markerRows(); got != strconv.Itoa(rows) {
			t.Errorf("node 3 holds %s marker rows, want %d", got, rows)
		}
	})

	t.Run("mitm", func(t *testing.T) {
		mitmRefused(t, ctx, c, []byte(marker))
	})

	t.Run("cleartext control", func(t *testing.T) {
		for _, n := range c.Nodes {
			appendConfig(t, n, "\n[gosst]\nencrypt=off\n")
		}
		res := captureFullSST(t, ctx, c, []byte(marker))
		if !res.Found[0] {
			t.Errorf("with encrypt=off the capture (%d bytes) did not see the marker: it would not have seen a cleartext SST either", res.ToPort+res.FromPort)
		}
		if got := markerRows(); got != strconv.Itoa(rows) {
			t.Errorf("node 3 holds %s marker rows, want %d", got, rows)
		}
	})
}

// captureFullSST stops and wipes node 3 (killing it if a failed SST left
// it hung), captures its SST port on side B while it joins by full SST,
// and returns what the capture saw, which lost no packet.
func captureFullSST(t *testing.T, ctx context.Context, c *cluster.Cluster, needles ...[]byte) cluster.CaptureResult {
	t.Helper()
	n3 := c.Node(3)
	if err := n3.Stop(ctx); err != nil {
		t.Logf("%v", err)
	}
	if err := n3.Wipe(); err != nil {
		t.Fatal(err)
	}
	capt, err := c.Link.StartCapture(ctx, n3.Side, n3.SSTPort, needles...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = capt.Stop() }) // joined even if the test stops early
	off := n3.LogSize()
	startErr := n3.Start(ctx)
	res, err := capt.Stop()
	if startErr != nil {
		t.Fatalf("node 3 did not join: %v", startErr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("capture on the joiner's end: %d bytes to the SST port, %d from it, %d segments, %d dropped, %d truncated",
		res.ToPort, res.FromPort, res.Packets, res.Dropped, res.Truncated)
	if res.Dropped != 0 || res.Truncated != 0 {
		t.Fatalf("the capture lost packets (%d dropped, %d truncated): what it did not find proves nothing", res.Dropped, res.Truncated)
	}
	if !strings.Contains(n3.LogSince(off), "gosst: joiner") {
		t.Errorf("node 3 joined without a gosst SST:\n%s", n3.ErrorLogTail(30))
	}
	return res
}

// mitmRefused puts a man in the middle on the joiner's announced SST
// address (in the joiner's namespace, so the donor's connection crosses
// the link to it) while the joiner itself listens on another port: the
// relay terminates TLS with its own fresh certificate and would forward
// to the joiner. The donor must refuse it.
func mitmRefused(t *testing.T, ctx context.Context, c *cluster.Cluster, marker []byte) {
	n1, n2, n3 := c.Node(1), c.Node(2), c.Node(3)
	if err := n3.Stop(ctx); err != nil {
		t.Logf("%v", err)
	}
	if err := n3.Wipe(); err != nil {
		t.Fatal(err)
	}
	joinerAddr := c.Link.Addr[n3.Side]
	free, err := c.Link.Listen(ctx, n3.Side, net.JoinHostPort(joinerAddr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	inner := free.Addr().String()
	free.Close()
	// The ready address still names wsrep_sst_receive_address (the
	// relay); the joiner listens on inner.
	restore := appendConfig(t, n3, "listen-address="+inner+"\n")
	defer restore()
	ln, err := c.Link.Listen(ctx, n3.Side, net.JoinHostPort(joinerAddr, strconv.Itoa(n3.SSTPort)))
	if err != nil {
		t.Fatal(err)
	}
	m := newMITM(t, ln, func(ctx context.Context) (net.Conn, error) { return c.Link.Dial(ctx, n3.Side, inner) })
	capt, err := c.Link.StartCapture(ctx, n3.Side, n3.SSTPort, marker)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = capt.Stop() })
	offs := []int64{n1.LogSize(), n2.LogSize(), n3.LogSize()}
	startErr := n3.Start(ctx)
	if startErr == nil {
		t.Fatal("node 3 joined through a man in the middle with another certificate")
	}
	res, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	hs, ok := m.close()
	t.Logf("man in the middle: %d TLS handshakes attempted, %d completed; capture: %d bytes to the SST port, %d from it, %d dropped",
		hs, ok, res.ToPort, res.FromPort, res.Dropped)
	if hs == 0 {
		t.Fatalf("no donor connected to the man in the middle: the test did not put it on the path\n%s", c.Tails(20))
	}
	if ok != 0 {
		t.Errorf("%d donor TLS handshakes with the man in the middle's certificate completed", ok)
	}
	if res.Found[0] || res.Dropped != 0 {
		t.Errorf("capture during the refused SST: marker seen %v, %d packets dropped", res.Found[0], res.Dropped)
	}
	// A refused handshake is a few kB: the ClientHello, the relay's
	// certificate and the donor's alert; no data.
	if res.ToPort+res.FromPort > 64<<10 {
		t.Errorf("%d bytes crossed the link to the man in the middle: more than a refused TLS handshake", res.ToPort+res.FromPort)
	}
	donorLog := n1.LogSince(offs[0]) + n2.LogSince(offs[1])
	if l := cluster.GrepLines(donorLog, "does not match the fingerprint in its ready address"); len(l) == 0 {
		t.Errorf("no donor logged the pin mismatch:\n%s", cluster.Tail(donorLog, 30))
	} else {
		t.Logf("donor: %s", strings.TrimSpace(l[0]))
	}
	if l := cluster.GrepLines(donorLog, "nothing sent"); len(l) == 0 {
		t.Errorf("the donor's refusal does not say that nothing was sent")
	}
	if n3.Running() {
		// galera-4 can hang in its abort after a failed SST; an
		// operator's systemd kills it after TimeoutStopSec.
		t.Logf("node 3's mariadbd still runs after its failed SST: killing it")
		if err := n3.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	// The joiner script notices that its mariadbd is gone and cleans up;
	// its datadir is judged once it has exited.
	if !waitGone(ctx, func() bool { return len(joinerScripts(n3)) == 0 }) {
		t.Errorf("node 3's joiner script outlived its mariadbd: %v", joinerScripts(n3))
	}
	if l := cluster.GrepLines(n3.LogSince(offs[2]), "gosst: joiner: failed after"); len(l) == 0 {
		t.Errorf("node 3's joiner did not report its failure:\n%s", n3.ErrorLogTail(30))
	} else {
		t.Logf("joiner: %s", strings.TrimSpace(l[0]))
	}
	assertNothingInstalled(t, n3.DataDir)
	for _, n := range []*cluster.Node{n1, n2} {
		if err := n.WaitSynced(ctx, 2*time.Minute); err != nil {
			t.Errorf("donor side after the refused SST: %v", err)
		}
	}
}

// mitm accepts connections, terminates TLS with its own self-signed
// certificate and, when a handshake completes, relays the plaintext to
// the joiner over a TLS connection of its own.
type mitm struct {
	ln        net.Listener
	g         errgroup.Group
	mu        sync.Mutex
	attempted int
	completed int
	cancel    context.CancelFunc
}

func newMITM(t *testing.T, ln net.Listener, dial func(context.Context) (net.Conn, error)) *mitm {
	t.Helper()
	cert := selfSigned(t)
	ctx, cancel := context.WithCancel(context.Background())
	m := &mitm{ln: ln, cancel: cancel}
	t.Cleanup(func() { m.close() })
	serverCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	m.g.Go(func() error {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return nil
			}
			m.g.Go(func() error {
				defer raw.Close()
				stop := context.AfterFunc(ctx, func() { raw.Close() })
				defer stop()
				m.mu.Lock()
				m.attempted++
				m.mu.Unlock()
				down := tls.Server(raw, serverCfg)
				if err := down.HandshakeContext(ctx); err != nil {
					return nil
				}
				m.mu.Lock()
				m.completed++
				m.mu.Unlock()
				upRaw, err := dial(ctx)
				if err != nil {
					return nil
				}
				up := tls.Client(upRaw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
				defer up.Close()
				var rg errgroup.Group
				rg.Go(func() error { _, _ = io.Copy(up, down); up.Close(); return nil })
				rg.Go(func() error { _, _ = io.Copy(down, up); down.Close(); return nil })
				return rg.Wait()
			})
		}
	})
	return m
}

// close stops the relay, joins its goroutines and reports the handshakes
// attempted and completed.
func (m *mitm) close() (attempted, completed int) {
	m.ln.Close()
	m.cancel()
	_ = m.g.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.attempted, m.completed
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "man in the middle"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// appendConfig appends text to a node's my.cnf (its last group is [sst]
// until a test adds another) and restores the file when the test ends;
// the returned function restores it earlier.
func appendConfig(t *testing.T, n *cluster.Node, text string) func() {
	t.Helper()
	orig, err := os.ReadFile(n.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.ConfigFile, append(append([]byte(nil), orig...), text...), 0o600); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restore := func() {
		once.Do(func() {
			if err := os.WriteFile(n.ConfigFile, orig, 0o600); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(restore)
	return restore
}

// assertNothingInstalled checks that a joiner whose SST failed installed
// nothing into its wiped datadir: no server files and no sst_in_progress
// marker (Galera's own files and gosst's lock may be there).
func assertNothingInstalled(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		switch e.Name() {
		case "sst_in_progress", "ibdata1", "ib_logfile0", "mysql", "lab", "xtrabackup_checkpoints":
			t.Errorf("half-installed datadir: %s is in %s", e.Name(), dir)
		}
	}
	t.Logf("joiner's datadir after the refused SST: %v", names)
}

// joinerScripts returns the pids of wsrep_sst_gosst joiner processes of
// node n (its datadir is on their command line).
func joinerScripts(n *cluster.Node) []int {
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
		if filepath.Base(args[0]) == "wsrep_sst_gosst" && strings.Contains(string(cmd), "--role\x00joiner") &&
			strings.Contains(string(cmd), "\x00"+n.DataDir+"/\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitGone polls cond until it holds; the bound is a safety net (the
// joiner script checks on its mariadbd every 200 ms).
func waitGone(ctx context.Context, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return pollUntil(ctx, 100*time.Millisecond, cond)
}
