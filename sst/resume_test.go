package sst

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gosst/gosst/sst/wsrep"
)

// loopProxy is the bookkeeping of a loopback TCP proxy in a test: the
// connections it tracks are closed, and its goroutines joined, when the
// test ends.
type loopProxy struct {
	target string
	mu     sync.Mutex
	open   []net.Conn
	wg     sync.WaitGroup
}

// startProxy listens on loopback and hands the i-th accepted connection,
// already tracked, to serve on the accept goroutine.
func startProxy(t *testing.T, target string, serve func(p *loopProxy, i int, c net.Conn)) net.Addr {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &loopProxy{target: target}
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		for _, c := range p.open {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	p.goRun(func() {
		for i := 0; ; i++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.track(c)
			serve(p, i, c)
		}
	})
	return l.Addr()
}

func (p *loopProxy) track(c net.Conn) {
	p.mu.Lock()
	p.open = append(p.open, c)
	p.mu.Unlock()
}

// dial connects to the target on c's behalf and tracks the connection;
// when that fails it closes c and returns nil.
func (p *loopProxy) dial(c net.Conn) net.Conn {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return nil
	}
	p.track(u)
	return u
}

// goRun runs f on a goroutine the proxy's cleanup joins.
func (p *loopProxy) goRun(f func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
}

// pipeBack forwards the joiner's side u to the donor's side c whole.
func (p *loopProxy) pipeBack(c, u net.Conn) {
	p.goRun(func() { _, _ = io.Copy(c, u); c.Close() })
}

// forward connects c to the target: the joiner's side passes back whole;
// the donor's side is reset (RST on both sides) after cut bytes when cut
// is not negative, and otherwise carried by rest.
func (p *loopProxy) forward(c net.Conn, cut int64, rest func(u, c net.Conn)) {
	u := p.dial(c)
	if u == nil {
		return
	}
	p.pipeBack(c, u)
	p.goRun(func() {
		if cut >= 0 {
			_, _ = io.CopyN(u, c, cut)
			resetConns(c, u)
			return
		}
		rest(u, c)
	})
}

// passWhole copies the donor's side c to the joiner's side u whole, then
// closes u.
func passWhole(u, c net.Conn) {
	_, _ = io.Copy(u, c)
	u.Close()
}

// firstCut is cut for the first connection (i == 0) and no cut (-1) for
// later ones.
func firstCut(i int, cut int64) int64 {
	if i == 0 {
		return cut
	}
	return -1
}

// resetConns closes each connection with an RST.
func resetConns(cs ...net.Conn) {
	for _, c := range cs {
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
}

// cutProxy forwards connections to target. The donor→joiner direction of
// the i-th connection is reset (RST on both sides) after cuts[i] bytes;
// connections beyond the list are forwarded whole or, with blackhole,
// accepted and left silent (a link that drops everything).
func cutProxy(t *testing.T, target string, cuts []int64, blackhole bool) string {
	t.Helper()
	return startProxy(t, target, func(p *loopProxy, i int, c net.Conn) {
		if i >= len(cuts) && blackhole {
			return
		}
		limit := int64(-1)
		if i < len(cuts) {
			limit = cuts[i]
		}
		p.forward(c, limit, passWhole)
	}).String()
}

// viaProxy rewrites the joiner's ready address to go through proxy.
func viaProxy(addr, proxy string) string {
	i := strings.LastIndexByte(addr, '@')
	_, path, _ := strings.Cut(addr[i+1:], "/")
	return addr[:i+1] + proxy + "/" + path
}

// joinerTarget is the host:port of the joiner's ready address.
func joinerTarget(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	hp, _, _ := strings.Cut(addr[i+1:], "/")
	return hp
}

// resumeFixture is a donor and a joiner configured with cnf, and a
// context for their run that ends with the test.
func resumeFixture(t *testing.T, cnf ...string) (*fixture, context.Context) {
	t.Helper()
	f := newFixture(t)
	f.writeCnf(t, cnf...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return f, ctx
}

// TestResumeInProcess: connections reset at about 30 % and 80 % of the
// stream are resumed, and the SST succeeds with the donor's data; with
// resume-window=0 the first reset fails the SST as before.
func TestResumeInProcess(t *testing.T) {
	// compression=none: the stream is the ~2 MiB backup, so the cuts
	// fall inside the data whatever TLS adds.
	t.Run("resumed", func(t *testing.T) {
		f, ctx := resumeFixture(t, "compression=none")
		addr, jres := f.startJoiner(t, ctx)
		if !OffersResume(addr) {
			t.Fatalf("joiner's address %q offers no resumption", addr)
		}
		proxy := cutProxy(t, joinerTarget(addr), []int64{600 << 10, 1000 << 10}, false)
		d := f.runDonor(ctx, viaProxy(addr, proxy), false, nil)
		j := <-jres
		if d.code != 0 || j.code != 0 {
			t.Fatalf("donor exit %d, joiner exit %d\ndonor:\n%s\njoiner:\n%s", d.code, j.code, d.stderr, j.stderr)
		}
		if got := lastLine(j.lines); got != testUUID+":42 7" {
			t.Errorf("joiner position %q", got)
		}
		b, err := os.ReadFile(filepath.Join(f.joinerDir, "ibdata1"))
		if err != nil || string(b) != "NEW"+strings.Repeat("row data compresses well. ", 40000) {
			t.Errorf("installed ibdata1: %d bytes, %v", len(b), err)
		}
		for _, want := range []string{"connection lost (the peer had confirmed", "resumed after", "lost 2 times and resumed each time"} {
			if !strings.Contains(d.stderr, want) {
				t.Errorf("donor log lacks %q:\n%s", want, d.stderr)
			}
		}
		if !strings.Contains(j.stderr, "donor reconnected from") {
			t.Errorf("joiner log lacks the reconnect:\n%s", j.stderr)
		}
	})
	t.Run("resume-window=0", func(t *testing.T) {
		f, ctx := resumeFixture(t, "compression=none", "resume-window=0")
		before := snapshot(t, f.joinerDir)
		addr, jres := f.startJoiner(t, ctx)
		if OffersResume(addr) {
			t.Fatalf("joiner with resume-window=0 offers resumption: %q", addr)
		}
		proxy := cutProxy(t, joinerTarget(addr), []int64{600 << 10}, false)
		d := f.runDonor(ctx, viaProxy(addr, proxy), false, nil)
		j := <-jres
		if d.code == 0 {
			t.Fatalf("donor succeeded over a reset connection without resumption")
		}
		failedJoiner(t, j, before, snapshot(t, f.joinerDir))
	})
}

// TestResumedConnectionOutlivesIdleTimeout: the connection a resumed
// transfer continues on carries the stream for longer than idle-timeout
// (2 s here: the proxy passes the rest, 1.4 MiB, at about 300 KiB/s, while
// data keeps flowing) without breaking again, and the donor waits for the
// joiner's confirmation while the joiner still takes the stream. The donor's reconnect used to
// keep the read deadline its TLS handshake set, so every resumed
// connection broke idle-timeout after it was made (on a 4 Mbit/s link in
// the network lab: 11 breaks for 2 outages).
func TestResumedConnectionOutlivesIdleTimeout(t *testing.T) {
	// resume-spool-memory=1M: the joiner acknowledges every 256 KiB, so
	// even at this pace the donor hears from it well within idle-timeout.
	f, ctx := resumeFixture(t, "compression=none", "idle-timeout=2", "resume-window=30", "resume-spool-memory=1M")
	addr, jres := f.startJoiner(t, ctx)
	proxy := slowAfterCutProxy(t, joinerTarget(addr), 600<<10, 32<<10, 100*time.Millisecond)
	d := f.runDonor(ctx, viaProxy(addr, proxy), false, nil)
	j := <-jres
	if d.code != 0 || j.code != 0 {
		t.Fatalf("donor exit %d, joiner exit %d\ndonor:\n%s\njoiner:\n%s", d.code, j.code, d.stderr, j.stderr)
	}
	if !strings.Contains(d.stderr, "lost 1 time and resumed each time") {
		t.Errorf("donor: want exactly the one break the proxy made:\n%s", d.stderr)
	}
}

// TestResumeReconnectBreaksDuringHandshake: the link breaks, and breaks
// again while the donor's first reconnect is in its TLS handshake (a
// flapping link): the donor tries again within the window and the SST
// completes. It used to fail at once, exit 13, "TLS handshake with joiner
// … failed, reconnect: EOF", as if the joiner had refused it.
func TestResumeReconnectBreaksDuringHandshake(t *testing.T) {
	f, ctx := resumeFixture(t, "compression=none", "resume-window=30")
	addr, jres := f.startJoiner(t, ctx)
	proxy := flappingProxy(t, joinerTarget(addr), 600<<10)
	d := f.runDonor(ctx, viaProxy(addr, proxy), false, nil)
	j := <-jres
	if d.code != 0 || j.code != 0 {
		t.Fatalf("donor exit %d, joiner exit %d\ndonor:\n%s\njoiner:\n%s", d.code, j.code, d.stderr, j.stderr)
	}
	for _, want := range []string{"broke before the session resumed", "lost 1 time and resumed each time"} {
		if !strings.Contains(d.stderr, want) {
			t.Errorf("donor log lacks %q:\n%s", want, d.stderr)
		}
	}
}

// TestBrokenLink: what the donor retries within the window (the link
// failing) and what it does not (the joiner refusing the connection).
func TestBrokenLink(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{exitf(ExitAccess, "TLS handshake with joiner x failed, reconnect: %w", io.EOF), true},
		{exitf(ExitAccess, "TLS handshake: %w", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), true},
		{fmt.Errorf("handshake: %w", os.ErrDeadlineExceeded), true},
		{fmt.Errorf("send resume header: %w", io.ErrUnexpectedEOF), true},
		{exitf(ExitAccess, "TLS handshake: %w", x509.UnknownAuthorityError{}), false},
		{exitf(ExitAccess, "TLS handshake: %w", errors.New("remote error: tls: bad certificate")), false},
		{exitf(ExitAccess, "TLS session: %w", errors.New("joiner's certificate does not match the fingerprint")), false},
		{fmt.Errorf("%w: refused", errJoinerGone), false},
	} {
		if got := brokenLink(tc.err); got != tc.want {
			t.Errorf("brokenLink(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// flappingProxy forwards connections to target: the first is reset
// after cut bytes from the donor, the second after the first bytes of the
// donor's TLS handshake, later ones pass whole.
func flappingProxy(t *testing.T, target string, cut int64) string {
	t.Helper()
	return startProxy(t, target, func(p *loopProxy, i int, c net.Conn) {
		if i == 1 {
			_, _ = c.Read(make([]byte, 100)) // the start of the ClientHello
			resetConns(c)
			return
		}
		p.forward(c, firstCut(i, cut), passWhole)
	}).String()
}

// slowAfterCutProxy forwards connections to target: the first one is
// reset after cut bytes from the donor, later ones pass the donor's bytes
// in pieces of chunk, one every tick (a slow link).
func slowAfterCutProxy(t *testing.T, target string, cut int64, chunk int64, tick time.Duration) string {
	t.Helper()
	return startProxy(t, target, func(p *loopProxy, i int, c net.Conn) {
		p.forward(c, firstCut(i, cut), func(u, c net.Conn) {
			tk := time.NewTicker(tick) // the link's pace, not a wait for an event
			defer tk.Stop()
			for {
				if _, err := io.CopyN(u, c, chunk); err != nil {
					u.Close()
					return
				}
				<-tk.C
			}
		})
	}).String()
}

// TestResumeWindowExpires: after a reset, the link drops every new
// connection; both sides give up when resume-window has passed, exit 110,
// and the joiner's datadir is untouched.
func TestResumeWindowExpires(t *testing.T) {
	f, ctx := resumeFixture(t, "compression=none", "resume-window=2")
	before := snapshot(t, f.joinerDir)
	addr, jres := f.startJoiner(t, ctx)
	proxy := cutProxy(t, joinerTarget(addr), []int64{600 << 10}, true)
	d := f.runDonor(ctx, viaProxy(addr, proxy), false, nil)
	j := <-jres
	if d.code != ExitTimedOut || !strings.Contains(d.stderr, "resume window") {
		t.Errorf("donor: exit %d, want %d naming the resume window:\n%s", d.code, ExitTimedOut, d.stderr)
	}
	if j.code != ExitTimedOut {
		t.Errorf("joiner: exit %d, want %d:\n%s", j.code, ExitTimedOut, j.stderr)
	}
	failedJoiner(t, j, before, snapshot(t, f.joinerDir))
}

// TestResumeJoinerGone: after a reset, nothing listens on the joiner's
// port any more (its script ended): the donor fails at once instead of
// redialling for the whole window.
func TestResumeJoinerGone(t *testing.T) {
	f := newFixture(t)
	f.writeCnf(t, "compression=none", "resume-window=3600")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addr, jres := f.startJoiner(t, ctx)
	// The proxy forwards one connection and then closes its listener.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := joinerTarget(addr)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := l.Accept()
		l.Close()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			return
		}
		go func() { _, _ = io.Copy(c, u); c.Close() }()
		_, _ = io.CopyN(u, c, 600<<10)
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = u.(*net.TCPConn).SetLinger(0)
		c.Close()
		u.Close()
	}()
	d := f.runDonor(ctx, viaProxy(addr, l.Addr().String()), false, nil)
	if d.code != wsrep.ExitPipe || !strings.Contains(d.stderr, "refuses connections") {
		t.Errorf("donor: exit %d, want %d naming the refused reconnect:\n%s", d.code, wsrep.ExitPipe, d.stderr)
	}
	cancel() // the joiner would wait for the whole window
	<-jres
}

// TestOffersResume: the /r1 capability is found after gosst/<version>
// (and the pin) only, and the address still parses as before: a donor
// that predates resumption ignores it.
func TestOffersResume(t *testing.T) {
	pin := strings.Repeat("A", PinLen)
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"gosst:00ff@127.0.0.1:4444/gosst/1/r1", true},
		{"127.0.0.1:4444/gosst/2/" + pin + "/r1", true},
		{"gosst:00ff@[::1]:4444/gosst/1", false},
		{"127.0.0.1:4444/gosst/2/" + pin, false},
		{"127.0.0.1:4444", false},
		{"127.0.0.1:4444/r1", false},
		{"127.0.0.1:4444/gosst/r1", false},
		{"127.0.0.1:4444/xtrabackup_sst/1/r1", false},
		{"gosst:r1@127.0.0.1:4444/gosst/1", false},
	} {
		if got := OffersResume(tc.addr); got != tc.want {
			t.Errorf("OffersResume(%q) = %v, want %v", tc.addr, got, tc.want)
		}
		if tc.want {
			if hp, _, err := ParseDonorTarget(tc.addr); err != nil || !strings.HasPrefix(hp, "127.0.0.1:4444") {
				t.Errorf("ParseDonorTarget(%q) = %q, %v", tc.addr, hp, err)
			}
		}
	}
}

func TestParseSessionID(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"000102030405060708090a0b0c0d0e0f", true},
		{"000102030405060708090a0b0c0d0e", false},
		{"000102030405060708090a0b0c0d0e0f00", false},
		{"zz0102030405060708090a0b0c0d0e0f", false},
		{"", false},
	} {
		if _, err := parseSessionID(tc.in); (err == nil) != tc.ok {
			t.Errorf("parseSessionID(%q): %v", tc.in, err)
		}
	}
}

// FuzzOffersResume: the joiner's address is untrusted input to the
// donor; no address panics, and one that offers resumption has a path
// this donor parses.
func FuzzOffersResume(f *testing.F) {
	for _, s := range []string{"gosst:00ff@127.0.0.1:4444/gosst/1/r1", "[::1]:4444/gosst/2/" + strings.Repeat("A", PinLen) + "/r1", "h/gosst//r1", "@/gosst/1/r1/r1", "/r1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		if !OffersResume(addr) {
			return
		}
		i := strings.LastIndexByte(addr, '@')
		_, path, _ := strings.Cut(addr[i+1:], "/")
		if !strings.HasPrefix(path, ProtoName+"/") {
			t.Fatalf("%q offers resumption without the %s path", addr, ProtoName)
		}
	})
}
