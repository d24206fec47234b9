package sst

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gosst/gosst/sst/wsrep"
)

// recProxy forwards one connection to target and records both directions.
// wait returns the recorded bytes once both directions have ended.
func recProxy(t *testing.T, target string) (addr string, wait func(context.Context) []byte) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var mu sync.Mutex
	var rec bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
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
		copyRec := func(dst, src net.Conn) {
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					mu.Lock()
					rec.Write(buf[:n])
					mu.Unlock()
					if _, werr := dst.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			_ = dst.(*net.TCPConn).CloseWrite()
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); copyRec(u, c) }()
		go func() { defer wg.Done(); copyRec(c, u) }()
		wg.Wait()
	}()
	return l.Addr().String(), func(ctx context.Context) []byte {
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("proxy did not finish")
		}
		mu.Lock()
		defer mu.Unlock()
		return append([]byte(nil), rec.Bytes()...)
	}
}

// pinOf is the pin of a ready address.
func pinOf(t *testing.T, ready string) []byte {
	t.Helper()
	_, pin, err := ParseDonorTarget(ready)
	if err != nil || pin == nil {
		t.Fatalf("ready address %q: pin %x, %v", ready, pin, err)
	}
	return pin
}

// TestZeroConfSecretNotOnWire: without any certificate the SST is TLS
// 1.3 with the joiner's ephemeral key; a recording of the connection holds
// neither the one-time secret nor the data.
func TestZeroConfSecretNotOnWire(t *testing.T) {
	f := newFixture(t)
	f.writeCnf(t, "compression=none")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr, jres := f.startJoiner(t, ctx)
	hostport, secret := peerAddr(t, addr)
	i := strings.LastIndexByte(addr, '@')
	_, path, _ := strings.Cut(addr[i+1:], "/")
	proxy, recorded := recProxy(t, hostport)
	d := f.runDonor(ctx, addr[:i+1]+proxy+"/"+path, false, nil)
	j := <-jres
	if d.code != 0 || j.code != 0 {
		t.Fatalf("donor exit %d, joiner exit %d\n%s\n%s", d.code, j.code, d.stderr, j.stderr)
	}
	rec := recorded(ctx)
	raw, _ := hex.DecodeString(secret)
	// A file name the (uncompressed) xbstream carries in the clear.
	marker := []byte("xtrabackup_galera_info")
	for what, b := range map[string][]byte{"secret": []byte(secret), "secret bytes": raw, "backup data": marker} {
		if bytes.Contains(rec, b) {
			t.Errorf("the %s (%q) crossed the network in the clear", what, b)
		}
	}
	if len(rec) < 1000 {
		t.Errorf("recorded only %d bytes: the proxy missed the transfer", len(rec))
	}
	if !strings.Contains(j.stderr, "ephemeral key") {
		t.Errorf("joiner's log does not name the ephemeral key:\n%s", j.stderr)
	}
}

// TestPinnedPeersThenDonor: on a joiner with an ephemeral key, a TLS 1.2
// client, a cleartext peer that sends the right secret, a TLS peer that
// sends the raw secret instead of the proof, one with a proof for the
// wrong secret and one replaying a proof from another TLS session are all
// dropped; the donor then succeeds.
func TestPinnedPeersThenDonor(t *testing.T) {
	f := newFixture(t)
	f.writeCnf(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr, jres := f.startJoiner(t, ctx)
	hostport, secret := peerAddr(t, addr)
	pin := pinOf(t, addr)
	ctl := func(token []byte) []byte {
		var b bytes.Buffer
		if err := sendMessage(&b, token, Control{Proto: ProtoVersion, Kind: KindSST, Position: testUUID + ":1", Domain: 7}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	dialPinned := func(name string) *tls.Conn {
		c, err := tls.Dial("tcp", hostport, pinnedClientConfig(pin))
		if err != nil {
			t.Fatalf("%s: pinned TLS handshake with the joiner: %v", name, err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(time.Minute)) // safety net only
		return c
	}
	refused := func(name string, c net.Conn, want string) {
		badPeer{name: name, reply: want}.awaitRefusal(t, c)
	}

	// TLS 1.2 is refused in the handshake.
	if c, err := tls.Dial("tcp", hostport, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}); err == nil {
		c.Close()
		t.Error("joiner accepted a TLS 1.2 handshake")
	}
	// Cleartext with the right secret: not even a TLS handshake.
	p := badPeer{name: "cleartext with the secret", send: ctl([]byte(secret))}
	p.awaitRefusal(t, p.connect(t, hostport, [3]string{}))

	c := dialPinned("raw secret")
	_, _ = c.Write(ctl([]byte(secret)))
	refused("raw secret inside TLS", c, "one-time secret")

	c = dialPinned("wrong secret")
	proof, err := secretProof(c.ConnectionState(), []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write(ctl(proof))
	refused("proof of a wrong secret", c, "one-time secret")

	other := dialPinned("other session")
	proof, err = secretProof(other.ConnectionState(), []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	c = dialPinned("replay")
	_, _ = c.Write(ctl(proof))
	refused("proof replayed from another TLS session", c, "one-time secret")
	other.Close()

	d := f.runDonor(ctx, addr, false, nil)
	j := <-jres
	if d.code != 0 || j.code != 0 {
		t.Fatalf("donor exit %d, joiner exit %d\n%s\n%s", d.code, j.code, d.stderr, j.stderr)
	}
	for _, w := range []string{"TLS handshake failed", "did not know the one-time secret"} {
		if !strings.Contains(j.stderr, w) {
			t.Errorf("joiner's log lacks %q:\n%s", w, j.stderr)
		}
	}
}

// TestPinnedDonorRefuses: the donor sends nothing to a server whose key is
// not the announced one (a man in the middle), nor over TLS 1.2, nor in
// cleartext to a joiner that offers no encryption unless this donor has
// encrypt=off itself.
func TestPinnedDonorRefuses(t *testing.T) {
	right, rightPin, err := newEphemeralCert(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mitm, _, err := newEphemeralCert(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	secret := "00112233445566778899aabbccddeeff"
	certs := makeTestCerts(t, t.TempDir())
	caCnf := []string{"tca=" + certs[0], "tcert=" + certs[1], "tkey=" + certs[2], "ssl-mode=VERIFY_CA"}
	for _, tc := range []struct {
		name  string
		cfg   *tls.Config // nil: a plain TCP listener
		path  string
		cnf   []string
		code  int
		want  string
		dials bool // the donor connects at all
	}{
		{"another key", &tls.Config{Certificates: []tls.Certificate{mitm}}, "/gosst/2/" + FormatPin(rightPin), nil, ExitAccess, "does not match the fingerprint", true},
		{"TLS 1.2", &tls.Config{Certificates: []tls.Certificate{right}, MaxVersion: tls.VersionTLS12}, "/gosst/2/" + FormatPin(rightPin), nil, ExitAccess, "protocol version", true},
		{"CA-verifying donor, ephemeral joiner", &tls.Config{Certificates: []tls.Certificate{right}}, "/gosst/2/" + FormatPin(rightPin), caCnf, ExitAccess, "verifies the joiner against its CA", false},
		{"no encryption offered", nil, "/gosst/1", nil, wsrep.ExitProtoNoSupport, "refusing to send in cleartext", false},
		{"no encryption offered, encrypt=off", nil, "/gosst/1", []string{"encrypt=off"}, -1, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.writeCnf(t, tc.cnf...)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			got := make(chan []byte, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					got <- nil
					return
				}
				defer c.Close()
				var conn net.Conn = c
				if tc.cfg != nil {
					conn = tls.Server(c, tc.cfg)
				}
				_ = c.SetDeadline(time.Now().Add(time.Minute)) // safety net only
				b, _ := io.ReadAll(io.LimitReader(conn, 1<<20))
				got <- append([]byte{1}, b...) // 1: connected
			}()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			d := f.runDonor(ctx, fmt.Sprintf("gosst:%s@%s%s", secret, l.Addr(), tc.path), false, nil)
			if tc.code >= 0 && (d.code != tc.code || !strings.Contains(d.stderr, tc.want)) {
				t.Errorf("donor exit %d, want %d and %q:\n%s", d.code, tc.code, tc.want, d.stderr)
			}
			l.Close()
			b := <-got
			if (b != nil) != tc.dials {
				t.Errorf("donor connected: %v, want %v", b != nil, tc.dials)
			}
			if tc.cfg != nil && len(b) > 1 {
				t.Errorf("the server read %d bytes of data from the donor", len(b)-1)
			}
			if tc.code < 0 && !bytes.Contains(b, []byte(secret)) {
				t.Errorf("encrypt=off: the donor sent no cleartext hello (%d bytes)", len(b))
			}
		})
	}
}

func TestParseDonorTarget(t *testing.T) {
	pin := bytes.Repeat([]byte{0xfb}, 32)
	for _, tc := range []struct {
		in      string
		want    string
		pin     bool
		version bool // ErrProtoVersion (exit 93) rather than a bad address (exit 22)
		bad     bool
	}{
		{in: "127.0.0.1:5/gosst/1", want: "127.0.0.1:5"},
		{in: "127.0.0.1:5/gosst/2/" + FormatPin(pin), want: "127.0.0.1:5", pin: true},
		{in: "[::1]/gosst/2/" + FormatPin(pin) + "/later", want: "[::1]:4444", pin: true},
		{in: "h:5/gosst/2", bad: true, version: true},
		{in: "h:5/gosst/2/", bad: true},
		{in: "h:5/gosst/2/" + FormatPin(pin)[:42], bad: true},
		{in: "h:5/gosst/2/" + FormatPin(pin)[:42] + "=", bad: true},
		{in: "h:5/gosst/2/" + strings.Repeat("+", 43), bad: true},
		{in: "h:5/gosst/3/" + FormatPin(pin), bad: true, version: true},
	} {
		hp, p, err := ParseDonorTarget(tc.in)
		switch {
		case tc.bad && err == nil:
			t.Errorf("%q: accepted (%q, %x)", tc.in, hp, p)
		case tc.bad && errors.Is(err, ErrProtoVersion) != tc.version:
			t.Errorf("%q: %v: protocol-version error %v, want %v", tc.in, err, errors.Is(err, ErrProtoVersion), tc.version)
		case !tc.bad && (err != nil || hp != tc.want || (p != nil) != tc.pin || (tc.pin && !bytes.Equal(p, pin))):
			t.Errorf("%q: %q, %x, %v; want %q, pin %v", tc.in, hp, p, err, tc.want, tc.pin)
		}
	}
}

// FuzzParseDonorTarget: the donor's address parser never panics, and what
// it accepts is a host:port and, for version 2, a 32-byte pin that
// formats back to the address's own text.
func FuzzParseDonorTarget(f *testing.F) {
	pin := bytes.Repeat([]byte{0xfb}, 32)
	for _, s := range []string{
		"127.0.0.1:4444/gosst/1", "127.0.0.1:4444/gosst/2/" + FormatPin(pin), "[::1]:4444/gosst/2/" + FormatPin(pin) + "/x",
		"gosst:abc@h/gosst/2/" + FormatPin(pin), "h:1/gosst/2/", "h:1/gosst/2/" + FormatPin(pin)[:42] + "=", "h/gosst/3", "h",
		"h:1/gosst/2/" + strings.Repeat("A", 43), "h:1/gosst/2/" + strings.Repeat("_", 43), "h:1/xtrabackup_sst//1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hp, pin, err := ParseDonorTarget(s)
		if err != nil {
			return
		}
		// The host part is checked only as ParseListenAddress does
		// (a bad or empty host fails at the connect, or means this host).
		if i := strings.LastIndexByte(hp, ':'); i < 0 || i == len(hp)-1 {
			t.Fatalf("%q: host:port %q", s, hp)
		}
		if pin != nil {
			if len(pin) != 32 || !strings.Contains(s, "/gosst/2/"+FormatPin(pin)) {
				t.Fatalf("%q: pin %x does not format back", s, pin)
			}
		}
	})
}
