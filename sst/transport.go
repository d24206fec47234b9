package sst

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// keepAlive detects a vanished peer host within about 30 s even while a
// side waits without traffic (the idle timeout covers hung peers).
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}

// idleConn puts a deadline on every Read and Write: a peer that sends or
// accepts nothing for the idle time fails the transfer instead of hanging
// it (and, on the donor, instead of leaving the node desynced).
type idleConn struct {
	net.Conn
	idle atomic.Int64 // nanoseconds, 0 = no deadline
	// noReadDeadline leaves read deadlines to the caller (the donor's
	// reply reader, which waits silently through the whole stream).
	noReadDeadline atomic.Bool
	// until, if not zero, is an absolute limit (Unix nanoseconds) on every
	// Read and Write besides the idle time: the joiner's hello deadline,
	// which a peer trickling bytes must not stretch.
	until atomic.Int64
}

func newIdleConn(c net.Conn, idle time.Duration) *idleConn {
	ic := &idleConn{Conn: c}
	ic.idle.Store(int64(idle))
	return ic
}

func (c *idleConn) setIdle(d time.Duration) { c.idle.Store(int64(d)) }

// untimedReads turns the read deadline off for good: reads wait as long
// as the peer stays silent, and the deadline the last read set goes too
// (or the next read fails when it passes, however well the link works).
// For a reader that waits through the whole stream.
func (c *idleConn) untimedReads() {
	c.noReadDeadline.Store(true)
	_ = c.Conn.SetReadDeadline(time.Time{})
}

// setUntil sets the absolute limit; the zero time removes it.
func (c *idleConn) setUntil(t time.Time) {
	if t.IsZero() {
		c.until.Store(0)
		return
	}
	c.until.Store(t.UnixNano())
}

// deadline is the deadline for an operation starting now: the idle time
// from now, capped by the absolute limit; zero for none.
func (c *idleConn) deadline() time.Time {
	var t time.Time
	if d := time.Duration(c.idle.Load()); d > 0 {
		t = time.Now().Add(d)
	}
	if u := c.until.Load(); u != 0 {
		if ut := time.Unix(0, u); t.IsZero() || ut.Before(t) {
			t = ut
		}
	}
	return t
}

func (c *idleConn) Read(p []byte) (int, error) {
	if c.noReadDeadline.Load() {
		n, err := c.Conn.Read(p)
		return n, timeoutErr(err, time.Duration(c.idle.Load()), "received")
	}
	_ = c.Conn.SetReadDeadline(c.deadline())
	n, err := c.Conn.Read(p)
	return n, timeoutErr(err, time.Duration(c.idle.Load()), "received")
}

func (c *idleConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(c.deadline())
	n, err := c.Conn.Write(p)
	return n, timeoutErr(err, time.Duration(c.idle.Load()), "sent")
}

// ErrTimeout marks idle and connect timeouts.
var ErrTimeout = errors.New("timeout")

func timeoutErr(err error, d time.Duration, what string) error {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: nothing could be %s for %s (peer dead or hung?): %v", ErrTimeout, what, d, err)
	}
	return err
}

// tlsConfig builds the TLS configuration, or nil when no certificate is
// configured. The joiner is the TLS server and the donor the client; with
// a CA (file or directory) both sides require and verify the other's
// certificate chain (TLS 1.3 only); without one (ssl-mode=REQUIRED) the
// transfer is encrypted but the peer is not verified. Names are checked
// only with ssl-mode=VERIFY_IDENTITY, on the donor, against the joiner's
// host (see checkIdentity).
func tlsConfig(c Config, server bool, peerHost string) (*tls.Config, error) {
	if c.Cert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: load certificate %s and key %s: %v", ErrConfig, c.Cert, c.Key, err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
	pool, err := caPool(c.CA, c.CAPath)
	if err != nil {
		return nil, err
	}
	if server {
		if pool != nil {
			tc.ClientCAs = pool
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		return tc, nil
	}
	// Client: verify the chain ourselves so that the name check is optional.
	tc.InsecureSkipVerify = true
	if pool != nil {
		checkName := c.SSLMode == "VERIFY_IDENTITY"
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("joiner sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: pool, Intermediates: x509.NewCertPool()}
			for _, ic := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(ic)
			}
			if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
				return fmt.Errorf("joiner's certificate: %w", err)
			}
			if checkName {
				return checkIdentity(cs.PeerCertificates[0], peerHost)
			}
			return nil
		}
	}
	return tc, nil
}

// listen opens the joiner's listener on host:port; if host is not a local
// address it listens on all interfaces, as the stock scripts always do.
func listen(ctx context.Context, host string, port int) (net.Listener, error) {
	lc := net.ListenConfig{KeepAliveConfig: keepAlive}
	addr := net.JoinHostPort(host, fmt.Sprint(port))
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil && errors.Is(err, syscall.EADDRNOTAVAIL) {
		l, err = lc.Listen(ctx, "tcp", net.JoinHostPort("", fmt.Sprint(port)))
	}
	return l, err
}

// dial connects to the joiner, retrying refused or unreachable attempts
// every second until timeout.
func dial(ctx context.Context, hostport string, timeout time.Duration, logf func(string, ...any)) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	d := net.Dialer{KeepAliveConfig: keepAlive}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, min(10*time.Second, max(time.Until(deadline), time.Second)))
		c, err := d.DialContext(actx, "tcp", hostport)
		cancel()
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: connect to joiner %s: gave up after %d attempts in %s: %v", ErrTimeout, hostport, attempt, timeout, err)
		}
		if attempt == 1 || attempt%10 == 0 {
			logf("connect to joiner %s failed (%v); retrying for up to %s", hostport, err, timeout)
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(time.Second):
		}
	}
}
