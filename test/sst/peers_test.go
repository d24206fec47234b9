package sst_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/sst"
	"github.com/gosst/gosst/stream/wire"
	"github.com/gosst/gosst/test/cluster"
)

// donorGate makes the donor's arrival an event the test controls: node 3
// listens on inner (listen-address) but announces its usual SST port,
// where the gate accepts the donor's connection, reports it on arrived,
// and connects it through to the joiner only when release is closed.
type donorGate struct {
	inner    string
	arrived  chan struct{} // the donor connected
	release  chan struct{} // closed by the test
	arrived0 chan struct{} // the gate's Accept returned
}

func newDonorGate(t *testing.T, n3 *cluster.Node) *donorGate {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &donorGate{inner: l.Addr().String(), arrived: make(chan struct{}), release: make(chan struct{}), arrived0: make(chan struct{})}
	l.Close()
	editConfig(t, n3, addSST("listen-address="+g.inner))
	outer, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", n3.SSTPort))
	if err != nil {
		t.Fatal(err)
	}
	done, stop := make(chan struct{}), make(chan struct{})
	var held net.Conn
	t.Cleanup(func() {
		outer.Close()
		close(stop)
		<-g.arrived0
		if held != nil {
			held.Close()
		}
		<-done
	})
	go func() {
		defer close(done)
		c, err := outer.Accept()
		outer.Close()
		held = c
		close(g.arrived0)
		if err != nil {
			return
		}
		defer c.Close()
		close(g.arrived)
		select {
		case <-g.release:
		case <-stop:
			return
		}
		u, err := net.Dial("tcp", g.inner)
		if err != nil {
			return
		}
		defer u.Close()
		copied := make(chan struct{})
		go func() { _, _ = io.Copy(c, u); c.Close(); close(copied) }()
		_, _ = io.Copy(u, c)
		u.Close()
		<-copied
	}()
	return g
}

// waitArrived waits for the donor's connection at the gate.
func (g *donorGate) waitArrived(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-g.arrived:
	case <-ctx.Done():
		t.Fatalf("no donor connected:\n%s", shared.Tails(30))
	}
}

// peer is a connection to the joiner's SST port that is not its donor.
type peer struct {
	name string
	tls  bool   // handshake with a valid client certificate first
	send []byte // nil: stay silent
}

// dial opens the peer's connection and sends what it sends.
func (p peer) dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute)) // a safety net only
	if p.tls {
		cert, err := tls.LoadX509KeyPair(certs.Cert, certs.Key)
		if err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(c, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("%s: TLS handshake: %v", p.name, err)
		}
		c = tc
	}
	if p.send != nil {
		if _, err := c.Write(p.send); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
	}
	return c
}

// refusal reads what the joiner answers until it closes the connection:
// its error reply, if it sent one.
func refusal(t *testing.T, name string, c net.Conn) string {
	t.Helper()
	msg := ""
	if fr, err := wire.NewFrameReader(c, wire.ReaderOptions{}); err == nil {
		var r sst.Reply
		if b, err := io.ReadAll(fr); err == nil && json.Unmarshal(b, &r) == nil {
			msg = r.Error
		}
	}
	if _, err := io.Copy(io.Discard, c); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: the joiner did not close the connection", name)
	}
	return msg
}

// helloV is a wire magic and hello frame of any version with a token.
func helloV(version uint16, token string) []byte {
	p := binary.BigEndian.AppendUint16(nil, version)
	p = binary.BigEndian.AppendUint16(p, 0)
	p = append(p, 4)
	p = append(p, "none"...)
	p = binary.BigEndian.AppendUint16(p, uint16(len(token)))
	p = append(p, token...)
	b := append([]byte(wire.Magic), wire.FrameHello)
	b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
}

// header is a complete gosst header (hello and Control) with a token.
func header(t *testing.T, token string) []byte {
	t.Helper()
	var b strings.Builder
	fw, err := wire.NewFrameWriter(&b, wire.WriterOptions{Codec: "none", Token: []byte(token)})
	if err != nil {
		t.Fatal(err)
	}
	ctl, _ := json.Marshal(sst.Control{Proto: sst.ProtoVersion, Kind: sst.KindSST, Position: "8e120e29-e947-11f1-817f-b7bf0e58ebeb:1", Domain: 7})
	if _, err := fw.Write(ctl); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return []byte(b.String())
}

// TestBadPeersBeforeDonor: while the real donor is held back, a silent TCP
// peer, a garbage peer, a TLS client without a certificate, a peer of
// another wire version and a peer of the right version, both without
// the one-time secret, connect to node 3's SST port. The joiner drops
// each with a log line (telling those that speak the protocol why); then
// the donor is let through and the SST completes with the data intact,
// and the silent connection is closed once the donor is in.
func TestBadPeersBeforeDonor(t *testing.T) {
	ctx, n3 := wipedJoiner(t)
	gate := newDonorGate(t, n3)
	off := n3.LogSize()
	if err := n3.StartNoWait(ctx); err != nil {
		t.Fatal(err)
	}
	gate.waitArrived(t, ctx)
	// The joiner printed its ready line before Galera asked a donor, so
	// it listens now.
	wrong := "0123456789abcdef0123456789abcdef"
	silent := peer{name: "silent"}.dial(t, gate.inner)
	peers := []struct {
		peer
		reply string // in the joiner's answer; "" = closed without one
	}{
		{peer{name: "garbage", send: []byte("GET / HTTP/1.1\r\nHost: joiner\r\n\r\n")}, ""},
		{peer{name: "version 2, wrong secret", tls: true, send: helloV(2, wrong)}, "one-time secret"},
		{peer{name: "version 1, wrong secret", tls: true, send: header(t, wrong)}, "one-time secret"},
	}
	for _, p := range peers {
		if got := refusal(t, p.name, p.dial(t, gate.inner)); !strings.Contains(got, p.reply) || (p.reply == "") != (got == "") {
			t.Errorf("%s: joiner answered %q, want %q", p.name, got, p.reply)
		}
	}
	if c, err := tls.Dial("tcp", gate.inner, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}); err == nil {
		_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("TLS client without a certificate: joiner did not refuse it: %v", err)
		}
		c.Close()
	}
	close(gate.release)
	if err := n3.WaitSynced(ctx, 5*time.Minute); err != nil {
		t.Fatalf("node 3 did not join after the bad peers: %v\n%s", err, cluster.Tail(n3.LogSince(off), 40))
	}
	log3 := n3.LogSince(off)
	dropped := cluster.GrepLines(log3, "dropped connection from")
	for _, l := range dropped {
		t.Logf("%s", l)
	}
	if len(dropped) != len(peers)+1 {
		t.Errorf("joiner logged %d dropped connections, want %d", len(dropped), len(peers)+1)
	}
	if l := cluster.GrepLines(log3, "other connections dropped"); len(l) == 0 {
		t.Errorf("joiner's donor line does not count the dropped peers:\n%s", cluster.Tail(log3, 30))
	} else {
		t.Logf("%s", l[0])
	}
	if _, err := silent.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("silent peer's connection still open after the SST: %v", err)
	}
	want, err := shared.Node(1).QueryString(ctx, "SELECT COUNT(*) FROM sstfault.t")
	if err != nil {
		t.Fatal(err)
	}
	w, _ := strconv.Atoi(want)
	t.Logf("CHECKSUM TABLE sstfault.t on all nodes: %s (%d rows)", converge(t, ctx, "sstfault.t", w), w)
}

// donorSecret reads the one-time secret the donor got from Galera
// (WSREP_SST_OPT_REMOTE_AUTH in its environment).
func donorSecret(t *testing.T) string {
	t.Helper()
	for _, pid := range sstProcs("donor") {
		env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "WSREP_SST_OPT_REMOTE_AUTH="); ok {
				_, secret, _ := strings.Cut(v, ":")
				return secret
			}
		}
	}
	t.Fatal("found no donor script with the one-time secret")
	return ""
}

// TestRightSecretWrongVersionPeer: a peer that knows the one-time secret
// can only be the donor Galera chose (the secret is fresh for each run and
// reaches only that donor), so if it speaks another wire version the
// joiner fails at once, naming both versions, instead of waiting out
// sst-initial-timeout; its datadir is untouched and the next start
// succeeds.
func TestRightSecretWrongVersionPeer(t *testing.T) {
	ctx, n3 := wipedJoiner(t)
	orig := mustRead(t, n3.ConfigFile)
	gate := newDonorGate(t, n3)
	off := n3.LogSize()
	if err := n3.StartNoWait(ctx); err != nil {
		t.Fatal(err)
	}
	gate.waitArrived(t, ctx)
	secret := donorSecret(t)
	p := peer{name: "version 2, right secret", tls: true, send: helloV(2, secret)}
	if got := refusal(t, p.name, p.dial(t, gate.inner)); !strings.Contains(got, "version 2 (this build speaks version 1)") {
		t.Errorf("%s: joiner answered %q, want both versions", p.name, got)
	}
	if err := n3.WaitSynced(ctx, 2*time.Minute); err == nil {
		t.Fatal("node 3 joined although its SST failed")
	}
	close(gate.release) // the held donor finds the joiner gone and fails
	log3 := n3.LogSince(off)
	failed := cluster.GrepLines(log3, "gosst: joiner: failed after")
	if len(failed) == 0 || !strings.Contains(failed[0], "exit 93") || !strings.Contains(failed[0], "version 2 (this build speaks version 1)") {
		t.Errorf("joiner did not fail with exit 93 naming both versions:\n%s", cluster.Tail(log3, 30))
	} else {
		t.Logf("%s", failed[0])
	}
	if l := cluster.GrepLines(log3, "SST succeeded for position"); len(l) > 0 && !strings.Contains(l[0], "00000000-0000-0000-0000-000000000000:-1") {
		t.Errorf("a position was reported after a failure: %s", l)
	}
	for _, name := range []string{".gosst-sst", "ibdata1"} {
		if _, err := os.Stat(filepath.Join(n3.DataDir, name)); err == nil {
			t.Errorf("data arrived despite the failed handshake: %s", name)
		}
	}
	if !waitFor(60*time.Second, func() bool { return len(sstProcs("donor")) == 0 && len(sstProcs("joiner")) == 0 }) {
		t.Fatalf("SST scripts still running: donor %v joiner %v", sstProcs("donor"), sstProcs("joiner"))
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
