package sst

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gosst/gosst/sst/wsrep"
	"github.com/gosst/gosst/stream/wire"
)

// rawHello is a wire magic and hello frame of any version, as a peer of
// another protocol version might send it.
func rawHello(version uint16, token string) []byte {
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

// badPeer is a connection to the joiner that is not its donor.
type badPeer struct {
	name string
	tls  bool   // handshake with a valid client certificate first
	send []byte // nil: stay silent
	// reply: the joiner must answer with an error containing this; ""
	// means it just closes the connection.
	reply string
}

// peerAddr is the joiner's host:port and its secret from a ready address.
func peerAddr(t *testing.T, ready string) (hostport, secret string) {
	t.Helper()
	auth, rest, _ := strings.Cut(ready, "@")
	_, secret, _ = strings.Cut(auth, ":")
	hostport, _, _ = strings.Cut(rest, "/")
	return hostport, secret
}

// connect opens the peer's connection and sends what it sends.
func (p badPeer) connect(t *testing.T, hostport string, certs [3]string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", hostport)
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	t.Cleanup(func() { c.Close() })
	// A safety net only: every wait below ends on the joiner's action.
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if p.tls {
		cert, err := tls.LoadX509KeyPair(certs[1], certs[2])
		if err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(c, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("%s: TLS handshake: %v", p.name, err)
		}
		t.Cleanup(func() { tc.Close() })
		c = tc
	}
	if p.send != nil {
		if _, err := c.Write(p.send); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
	}
	return c
}

// awaitRefusal reads until the joiner closes the connection and checks
// its reply.
func (p badPeer) awaitRefusal(t *testing.T, c net.Conn) {
	t.Helper()
	var r Reply
	err := readMessage(c, nil, &r)
	if p.reply == "" {
		if err == nil {
			t.Errorf("%s: joiner replied %+v", p.name, r)
		}
	} else if err != nil || !strings.Contains(r.Error, p.reply) {
		t.Errorf("%s: joiner's reply %+v (%v), want an error with %q", p.name, r, err, p.reply)
	}
	_, err = io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("%s: joiner did not close the connection", p.name)
	}
}

// TestBadPeersThenDonor: a silent peer, a garbage peer, peers of another
// wire version and peers with a wrong secret all connect before the
// donor. The joiner drops each (with a log line, and a reply to those
// that spoke the protocol), the donor's SST then succeeds, and the silent
// connection is closed once the donor is in.
func TestBadPeersThenDonor(t *testing.T) {
	wrong := "0123456789abcdef0123456789abcdef"
	ctl := func(token string, proto int) []byte {
		var b strings.Builder
		if err := sendMessage(&b, []byte(token), Control{Proto: proto, Kind: KindSST, Position: testUUID + ":1", Domain: 7}); err != nil {
			t.Fatal(err)
		}
		return []byte(b.String())
	}
	for _, withTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "cleartext", true: "TLS"}[withTLS], func(t *testing.T) {
			f := newFixture(t)
			certs := makeTestCerts(t, t.TempDir())
			// Cleartext: the raw peers below speak the wire protocol
			// without TLS, so the joiner must not use an ephemeral key.
			extra := []string{"encrypt=off"}
			if withTLS {
				extra = []string{"tca=" + certs[0], "tcert=" + certs[1], "tkey=" + certs[2], "ssl-mode=VERIFY_CA"}
			}
			f.writeCnf(t, extra...)
			peers := []badPeer{
				{name: "silent"},
				{name: "garbage", send: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
				{name: "version 2, wrong secret", tls: withTLS, send: rawHello(2, wrong), reply: "one-time secret"},
				{name: "version 2, no secret", tls: withTLS, send: rawHello(2, ""), reply: "one-time secret"},
				{name: "wrong secret", tls: withTLS, send: ctl(wrong, ProtoVersion), reply: "one-time secret"},
				{name: "protocol 2, wrong secret", tls: withTLS, send: ctl(wrong, 2), reply: "one-time secret"},
			}
			if withTLS {
				peers = append(peers, badPeer{name: "TLS without a client certificate"})
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			addr, jres := f.startJoiner(t, ctx)
			hostport, _ := peerAddr(t, addr)
			var silent net.Conn
			for _, p := range peers {
				switch p.name {
				case "silent":
					silent = p.connect(t, hostport, certs)
				case "TLS without a client certificate":
					c, err := tls.Dial("tcp", hostport, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
					if err == nil {
						// TLS 1.3: the server's refusal arrives with the first read.
						_, err = c.Read(make([]byte, 1))
						c.Close()
					}
					if err == nil {
						t.Errorf("%s: joiner accepted the handshake", p.name)
					}
				default:
					p.awaitRefusal(t, p.connect(t, hostport, certs))
				}
			}
			// The donor comes after every bad peer was dropped: a peer's
			// refusal reaches it before the joiner has logged it.
			if err := f.joinerLog.waitCount(ctx, "dropped connection from", len(peers)-1); err != nil {
				t.Fatalf("%v:\n%s", err, f.joinerLog)
			}
			d := f.runDonor(ctx, addr, false, nil)
			j := <-jres
			if d.code != 0 || j.code != 0 || lastLine(j.lines) != testUUID+":42 7" {
				t.Fatalf("donor exit %d, joiner exit %d %q\n%s\n%s", d.code, j.code, j.lines, d.stderr, j.stderr)
			}
			if n, want := strings.Count(j.stderr, "dropped connection from"), len(peers)-1; n != want {
				t.Errorf("joiner logged %d dropped connections, want %d:\n%s", n, want, j.stderr)
			}
			if !strings.Contains(j.stderr, fmt.Sprintf("%d other connections dropped", len(peers)-1)) {
				t.Errorf("joiner's donor line does not count the dropped peers:\n%s", j.stderr)
			}
			// The silent peer's connection was closed when the donor won.
			if _, err := silent.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("silent peer's connection still open after the SST: %v", err)
			}
		})
	}
}

// TestRightSecretWrongVersion: a peer that knows the one-time secret is
// the donor (the secret is fresh for each run and reaches only the donor
// through Galera). If it speaks another wire version the SST fails at once
// with both versions named, and the peer is told why.
func TestRightSecretWrongVersion(t *testing.T) {
	f := newFixture(t)
	f.writeCnf(t, "encrypt=off")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := snapshot(t, f.joinerDir)
	addr, jres := f.startJoiner(t, ctx)
	hostport, secret := peerAddr(t, addr)
	p := badPeer{name: "version 2, right secret", send: rawHello(2, secret), reply: "version 2 (this build speaks version 1)"}
	p.awaitRefusal(t, p.connect(t, hostport, [3]string{}))
	j := <-jres
	failedJoiner(t, j, before, snapshot(t, f.joinerDir))
	if j.code != wsrep.ExitProtoNoSupport || !strings.Contains(j.stderr, "knows this joiner's one-time secret") || !strings.Contains(j.stderr, "version 2 (this build speaks version 1)") {
		t.Errorf("joiner: exit %d, want %d and both versions named:\n%s", j.code, wsrep.ExitProtoNoSupport, j.stderr)
	}
}

// TestPeersThenTimeout: when only bad peers came, the timeout error says
// what they did.
func TestPeersThenTimeout(t *testing.T) {
	f := newFixture(t)
	f.writeCnf(t, "sst-initial-timeout=3", "hello-timeout=1", "encrypt=off")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := snapshot(t, f.joinerDir)
	addr, jres := f.startJoiner(t, ctx)
	hostport, _ := peerAddr(t, addr)
	silent := badPeer{name: "silent"}.connect(t, hostport, [3]string{})
	p := badPeer{name: "version 2, wrong secret", send: rawHello(2, "nope"), reply: "one-time secret"}
	p.awaitRefusal(t, p.connect(t, hostport, [3]string{}))
	j := <-jres
	failedJoiner(t, j, before, snapshot(t, f.joinerDir))
	for _, want := range []string{"no donor connected within sst-initial-timeout (3s); 2 connections dropped:", "did not know the one-time secret", "did not complete the handshake within hello-timeout (1s)"} {
		if j.code != ExitTimedOut || !strings.Contains(j.stderr, want) {
			t.Errorf("joiner: exit %d, want %d and %q:\n%s", j.code, ExitTimedOut, want, j.stderr)
		}
	}
	if _, err := silent.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("silent peer's connection still open: %v", err)
	}
}

// TestHandshakeFlood: more silent connections than the joiner handshakes
// with at once arrive before the donor; they wait in the accept queue,
// are dropped after hello-timeout, and the donor still gets through.
func TestHandshakeFlood(t *testing.T) {
	f := newFixture(t)
	f.writeCnf(t, "hello-timeout=1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr, jres := f.startJoiner(t, ctx)
	hostport, _ := peerAddr(t, addr)
	for i := 0; i < maxPendingHandshakes+4; i++ {
		badPeer{name: fmt.Sprint("silent ", i)}.connect(t, hostport, [3]string{})
	}
	d := f.runDonor(ctx, addr, false, nil)
	j := <-jres
	if d.code != 0 || j.code != 0 || lastLine(j.lines) != testUUID+":42 7" {
		t.Fatalf("donor exit %d, joiner exit %d %q\n%s\n%s", d.code, j.code, j.lines, d.stderr, j.stderr)
	}
}

// TestSecretOffWrongVersion: with secret=off nothing authenticates a
// peer, so a peer of another version is dropped (and told why), and the
// donor that follows succeeds.
func TestSecretOffWrongVersion(t *testing.T) {
	f := newFixture(t)
	f.writeCnf(t, "secret=off", "encrypt=off")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr, jres := f.startJoiner(t, ctx)
	if strings.Contains(addr, "@") {
		t.Fatalf("secret=off, but the ready address has one: %s", addr)
	}
	hostport, _, _ := strings.Cut(addr, "/")
	p := badPeer{name: "version 2", send: rawHello(2, ""), reply: "this joiner speaks gosst protocol 1/wire 1"}
	p.awaitRefusal(t, p.connect(t, hostport, [3]string{}))
	d := f.runDonor(ctx, addr, false, nil)
	j := <-jres
	if d.code != 0 || j.code != 0 || lastLine(j.lines) != testUUID+":42 7" {
		t.Fatalf("donor exit %d, joiner exit %d %q\n%s\n%s", d.code, j.code, j.lines, d.stderr, j.stderr)
	}
}

// TestDonorRefusedFailsClearly: a donor with a stale secret (of an earlier
// attempt) is told so by the joiner and fails with that reason.
func TestDonorRefusedFailsClearly(t *testing.T) {
	f := newFixture(t)
	f.writeCnf(t, "sst-initial-timeout=60")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr, jres := f.startJoiner(t, ctx)
	i := strings.LastIndexByte(addr, '@')
	d := f.runDonor(ctx, "gosst:0123456789abcdef0123456789abcdef"+addr[i:], false, nil)
	if d.code == 0 || !strings.Contains(d.stderr, "wrong one-time secret") {
		t.Errorf("donor: exit %d, want a failure naming the secret:\n%s", d.code, d.stderr)
	}
	t.Logf("donor with a stale secret: %s", lastErr(d.stderr))
	// The joiner is still waiting: the real donor gets through.
	if d := f.runDonor(ctx, addr, false, nil); d.code != 0 {
		t.Fatalf("donor: exit %d\n%s", d.code, d.stderr)
	}
	if j := <-jres; j.code != 0 {
		t.Fatalf("joiner: exit %d\n%s", j.code, j.stderr)
	}
}

func TestHelloTimeoutConfig(t *testing.T) {
	if d := DefaultConfig().HelloTimeout; d != DefaultHelloTimeout || d < 10*time.Second || d > 30*time.Second {
		t.Errorf("default hello-timeout %s", d)
	}
	for _, tc := range []struct {
		cnf  string
		want time.Duration
	}{
		{"[sst]\nhello-timeout=5", 5 * time.Second},
		{"[gosst]\nhello_timeout=90s", 90 * time.Second},
	} {
		c, err := parseCnf(t, tc.cnf, nil)
		if err != nil || c.HelloTimeout != tc.want || len(c.Warnings) != 0 {
			t.Errorf("%q: %s %v %v, want %s", tc.cnf, c.HelloTimeout, err, c.Warnings, tc.want)
		}
	}
	for _, bad := range []string{"[sst]\nhello-timeout=0", "[sst]\nhello-timeout=-1", "[sst]\nhello-timeout=soon"} {
		if _, err := parseCnf(t, bad, nil); !errors.Is(err, ErrConfig) {
			t.Errorf("%q: err %v, want ErrConfig", bad, err)
		}
	}
}

// FuzzJoinerHandshake feeds arbitrary bytes to the joiner's handshake as a
// peer would send them: it must never panic, and a peer whose bytes do
// not contain the one-time secret is only ever dropped.
func FuzzJoinerHandshake(f *testing.F) {
	token := "0123456789abcdef0123456789abcdef"
	var ok strings.Builder
	if err := sendMessage(&ok, []byte(token), Control{Proto: ProtoVersion, Kind: KindSST, Position: testUUID + ":1", Domain: 7}); err != nil {
		f.Fatal(err)
	}
	var proto2 strings.Builder
	if err := sendMessage(&proto2, []byte(token), Control{Proto: 2, Kind: KindSST}); err != nil {
		f.Fatal(err)
	}
	var wrong strings.Builder
	if err := sendMessage(&wrong, []byte("nope"), Control{Proto: ProtoVersion, Kind: KindIST}); err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		nil, []byte("GET / HTTP/1.1\r\n\r\n"), []byte(ok.String()), []byte(proto2.String()), []byte(wrong.String()),
		[]byte(ok.String())[:20], rawHello(2, token), rawHello(2, ""), rawHello(1, token),
		append(rawHello(1, token), wire.FrameData, 0xff, 0xff, 0xff, 0xff),
	} {
		f.Add(seed)
	}
	j := &Joiner{Config: DefaultConfig()}
	j.Config.HelloTimeout = 5 * time.Second // a safety net: the peer below always ends
	f.Fuzz(func(t *testing.T, in []byte) {
		server, client := net.Pipe()
		drained := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, client); close(drained) }()
		go func() {
			_, _ = client.Write(in)
			client.Close()
		}()
		a, err := j.handshake(server, "fuzz", nil, []byte(token), func(string) {})
		server.Close()
		<-drained
		var de *dropError
		switch {
		case err == nil:
			if a == nil || a.ctl.Proto != ProtoVersion || !strings.Contains(string(in), token) {
				t.Fatalf("accepted %+v from %q", a, in)
			}
		case !errors.As(err, &de) && !strings.Contains(string(in), token):
			t.Fatalf("a peer without the secret failed the SST: %v", err)
		}
	})
}

// countingListener counts the connections accept has open at once.
type countingListener struct {
	net.Listener
	mu            sync.Mutex
	open, maxOpen int
	accepted      chan struct{} // one send per Accept
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.open++
	l.maxOpen = max(l.maxOpen, l.open)
	l.mu.Unlock()
	l.accepted <- struct{}{}
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// TestPendingHandshakesBounded: however many connections wait, the joiner
// holds at most maxPendingHandshakes of them open; when the donor is in,
// it has closed all others.
func TestPendingHandshakesBounded(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{Listener: inner, accepted: make(chan struct{}, 100)}
	j := &Joiner{Config: DefaultConfig(), log: &logger{w: io.Discard, role: "joiner"}}
	j.Config.InitialTimeout = 0
	j.Config.HelloTimeout = time.Hour // only the peers' own actions free a slot
	token := "0123456789abcdef0123456789abcdef"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type res struct {
		ctl Control
		err error
	}
	done := make(chan res, 1)
	go func() {
		conn, _, ctl, err := j.accept(ctx, l, nil, []byte(token), false)
		if conn != nil {
			conn.Close()
		}
		done <- res{ctl, err}
	}()
	var silent []net.Conn
	for range 2 * maxPendingHandshakes {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	for range maxPendingHandshakes {
		<-l.accepted
	}
	// All slots are taken; the donor queues behind the silent peers, which
	// now hang up one by one, each freeing a slot.
	donor, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer donor.Close()
	if err := sendMessage(donor, []byte(token), Control{Proto: ProtoVersion, Kind: KindIST, Position: testUUID + ":5"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range silent {
		c.Close()
	}
	r := <-done
	if r.err != nil || r.ctl.Kind != KindIST {
		t.Fatalf("accept: %+v %v", r.ctl, r.err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxOpen > maxPendingHandshakes {
		t.Errorf("%d connections open at once, want at most %d", l.maxOpen, maxPendingHandshakes)
	}
	if l.open != 0 {
		t.Errorf("%d connections still open after accept returned", l.open)
	}
}
