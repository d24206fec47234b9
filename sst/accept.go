package sst

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gosst/gosst/sst/wsrep"
	"github.com/gosst/gosst/stream/wire"
	"golang.org/x/sync/errgroup"
)

// DefaultHelloTimeout is how long the joiner gives each connection to
// finish its TLS handshake and send the secret and the header
// (hello-timeout). The donor sends them right after connecting.
const DefaultHelloTimeout = 20 * time.Second

// maxPendingHandshakes bounds the connections the joiner handshakes with
// at once. Further connections wait in the kernel's accept queue until a
// slot frees (within hello-timeout), so a flood of silent connections
// costs neither memory nor file descriptors beyond this, and only delays
// the real donor.
const maxPendingHandshakes = 16

// maxLoggedDrops bounds the log lines about dropped connections; later
// ones are only counted. maxReportedDrops bounds the peers the timeout
// error names.
const (
	maxLoggedDrops   = 20
	maxReportedDrops = 3
)

// lingerAfterRefusal is how long the joiner reads on after telling a
// peer why it refused it (see handshake).
const lingerAfterRefusal = 2 * time.Second

// dropError is a failed handshake of a peer that did not prove the
// one-time secret: the joiner logs it, closes the connection and keeps
// waiting for the donor.
type dropError struct {
	reason   string
	reported bool // already passed to the report function
	ours     bool // the joiner closed the connection (the donor won, or it stops)
}

func (e *dropError) Error() string { return e.reason }

// accepted is the donor's connection after a successful handshake.
type accepted struct {
	conn net.Conn // TLS over ic, or ic
	ic   *idleConn
	ctl  Control
	peer string
}

// accept waits for the donor until sst-initial-timeout. It handshakes
// with up to maxPendingHandshakes connections at once, each limited to
// hello-timeout: a TLS handshake (if configured), then the wire hello,
// whose token must be the one-time secret, then the Control message.
//
// Nothing a peer says counts before it has proven the secret: a peer that
// fails before that (silence, garbage, a failed TLS handshake, a wrong
// secret, and with the secret off any failure) is logged and dropped. A
// peer that knows the secret is the donor, since the secret is fresh for
// each run and reaches only the donor, so its failure (another protocol
// version, a bad header) fails the SST with that reason at once. The
// first peer through the handshake wins: the listener and the other
// pending connections are closed, and every goroutine has ended when
// accept returns.
//
// With keep (a joiner that offers resumption) the listener stays open
// after the donor is in: the caller closes it, or hands it to the
// resumeAcceptor.
func (j *Joiner) accept(ctx context.Context, l net.Listener, tlsCfg *tls.Config, token []byte, keep bool) (net.Conn, *bufio.Reader, Control, error) {
	dl, canWake := l.(interface{ SetDeadline(time.Time) error })
	keep = keep && canWake
	if !keep {
		defer l.Close()
	}
	if len(token) == 0 {
		token = nil // secret=off: no token is checked
	}
	if d := j.Config.InitialTimeout; d > 0 && canWake {
		_ = dl.SetDeadline(time.Now().Add(d))
	}
	actx, won := context.WithCancel(ctx)
	defer won()
	g, gctx := errgroup.WithContext(actx)
	var wakeMu sync.Mutex
	accepting := true
	stopListener := context.AfterFunc(gctx, func() {
		if !keep {
			l.Close()
			return
		}
		wakeMu.Lock()
		defer wakeMu.Unlock()
		if accepting {
			_ = dl.SetDeadline(time.Now()) // wake Accept, keep the socket
		}
	})
	defer stopListener()

	t := &acceptTally{log: j.log}
	slots := make(chan struct{}, maxPendingHandshakes)
	g.Go(func() error {
		for {
			select {
			case slots <- struct{}{}:
			case <-gctx.Done():
				return nil
			}
			raw, err := l.Accept()
			if err != nil {
				<-slots
				if gctx.Err() != nil {
					return nil
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					// sst-initial-timeout: accept no more; handshakes
					// under way may still finish.
					l.Close()
					return nil
				}
				return exitf(wsrep.ExitInvalid, "accept: %w", err)
			}
			g.Go(func() error {
				defer func() { <-slots }()
				return j.serveConn(gctx, raw, tlsCfg, token, t, won)
			})
		}
	})
	err := g.Wait()
	if keep {
		wakeMu.Lock()
		accepting = false
		_ = dl.SetDeadline(time.Time{})
		wakeMu.Unlock()
	}
	winner := t.winner
	if ctx.Err() != nil {
		if winner != nil {
			winner.conn.Close()
		}
		return nil, nil, Control{}, context.Cause(ctx)
	}
	if err != nil {
		return nil, nil, Control{}, err
	}
	if winner == nil {
		return nil, nil, Control{}, exitf(ExitTimedOut, "%s", t.timeoutMessage(j.Config.InitialTimeout))
	}
	a := winner
	a.ic.setUntil(time.Time{})
	j.ic = a.ic
	also := ""
	if t.nDrops > 0 {
		also = fmt.Sprintf("; %d other connection%s dropped", t.nDrops, plural(t.nDrops))
	}
	j.log.Infof("donor %s connected (%s transfer from position %s%s)", a.peer, a.ctl.Kind, a.ctl.Position, also)
	// The handshake read exactly up to the end of the Control message, so
	// nothing of the data stream is lost by buffering only now.
	return a.conn, bufio.NewReaderSize(a.conn, 1<<20), a.ctl, nil
}

// serveConn runs one connection's handshake for accept: a dropped peer is
// counted in t, the first donor through claims t.winner and calls won to
// stop accepting and close the others, and an error that fails the SST is
// returned.
func (j *Joiner) serveConn(gctx context.Context, raw net.Conn, tlsCfg *tls.Config, token []byte, t *acceptTally, won func()) error {
	peer := raw.RemoteAddr().String()
	unwatch := context.AfterFunc(gctx, func() { raw.Close() })
	a, err := j.handshake(raw, peer, tlsCfg, token, func(reason string) { t.drop(peer, reason) })
	watched := unwatch()
	var de *dropError
	switch {
	case errors.As(err, &de):
		raw.Close()
		if !de.reported && !de.ours {
			t.drop(peer, de.reason)
		}
		return nil
	case !watched:
		// Another connection won, or the joiner is stopping:
		// this one was closed under the handshake.
		raw.Close()
		return nil
	case err == nil:
		if !t.claim(a) {
			raw.Close()
			j.log.Warnf("closed a second connection with the one-time secret from %s: the donor is already connected", peer)
			return nil
		}
		won() // stop accepting, close the others
		return nil
	default:
		raw.Close()
		return err
	}
}

// acceptTally is what accept's handshakes share: the dropped peers and the
// winner. Read its fields only after every handshake has ended.
type acceptTally struct {
	log    *logger
	mu     sync.Mutex
	winner *accepted
	drops  []string // the first maxReportedDrops, for the timeout error
	nDrops int
}

func (t *acceptTally) drop(peer, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nDrops++
	if len(t.drops) < maxReportedDrops {
		t.drops = append(t.drops, peer+" "+reason)
	}
	switch {
	case t.nDrops <= maxLoggedDrops:
		t.log.Warnf("dropped connection from %s: %s; still waiting for the donor", peer, reason)
	case t.nDrops == maxLoggedDrops+1:
		t.log.Warnf("more connections dropped; counting them without logging")
	}
}

func (t *acceptTally) claim(a *accepted) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.winner != nil {
		return false
	}
	t.winner = a
	return true
}

func (t *acceptTally) timeoutMessage(timeout time.Duration) string {
	msg := fmt.Sprintf("no donor connected within sst-initial-timeout (%s)", timeout)
	if t.nDrops > 0 {
		msg += fmt.Sprintf("; %d connection%s dropped: %s", t.nDrops, plural(t.nDrops), strings.Join(t.drops, "; "))
		if t.nDrops > len(t.drops) {
			msg += fmt.Sprintf("; and %d more", t.nDrops-len(t.drops))
		}
	}
	return msg
}

// dropped names what a peer did wrong before it proved anything; until
// is the end of its hello-timeout (zero for none).
func (j *Joiner) dropped(until time.Time, what string, err error) error {
	switch {
	case errors.Is(err, net.ErrClosed), errors.Is(err, context.Canceled):
		return &dropError{reason: "closed by the joiner", ours: true}
	case !until.IsZero() && !time.Now().Before(until):
		return &dropError{reason: fmt.Sprintf("did not complete the handshake within hello-timeout (%s)", j.Config.HelloTimeout)}
	case errors.Is(err, wire.ErrTruncated):
		return &dropError{reason: "closed the connection during the handshake"}
	case errors.Is(err, wire.ErrBadMagic):
		return &dropError{reason: "is not a gosst donor (" + err.Error() + ")"}
	}
	return &dropError{reason: what + ": " + err.Error()}
}

// refusePeer tells a peer on conn (over ic, over raw) why it is refused.
func refusePeer(conn, raw net.Conn, ic *idleConn, until time.Time, msg string) {
	// Tell a donor why, so that it fails at once with the reason
	// instead of streaming into a closed connection.
	if sendMessage(conn, nil, Reply{Error: msg}) != nil {
		return
	}
	// Then close only our side and read on for a moment: closing with
	// the peer's bytes unread resets the connection, and a donor still
	// sending its header would fail on the reset without reading why.
	if tc, ok := conn.(*tls.Conn); ok {
		_ = tc.CloseWrite()
	}
	if cw, ok := raw.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if linger := time.Now().Add(lingerAfterRefusal); until.IsZero() || linger.Before(until) {
		ic.setUntil(linger)
	}
	_, _ = io.Copy(io.Discard, ic)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// handshake runs one connection's handshake within hello-timeout. It
// returns the donor's connection, a *dropError for a peer that did not
// prove the secret, or the error that fails the SST for one that did.
//
// A drop decided by what the peer sent is reported before the peer is told
// and the connection closed, so that a peer that sees its connection end
// can rely on the drop having been counted.
func (j *Joiner) handshake(raw net.Conn, peer string, tlsCfg *tls.Config, token []byte, report func(reason string)) (*accepted, error) {
	ic := newIdleConn(raw, j.Config.IdleTimeout)
	var until time.Time
	if d := j.Config.HelloTimeout; d > 0 {
		until = time.Now().Add(d)
		ic.setUntil(until)
	}
	dropped := func(what string, err error) error { return j.dropped(until, what, err) }
	var conn net.Conn = ic
	if tlsCfg != nil {
		tc := tls.Server(ic, tlsCfg)
		// No context: both callers close raw when theirs ends, which ends
		// the handshake too. HandshakeContext would report a handshake
		// that failed on its own as the context's error when the context
		// ends in the same instant (the donor winning), so a refused peer
		// was counted as closed by the joiner.
		if err := tc.Handshake(); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = wire.ErrTruncated
			}
			return nil, dropped("TLS handshake failed", err)
		}
		conn = tc
		if j.pinned && token != nil {
			proof, err := secretProof(tc.ConnectionState(), token)
			if err != nil {
				return nil, dropped("TLS session", err)
			}
			token = proof
		}
	}
	// The hello and the Control message are small: a frame larger than a
	// message is refused before it is read.
	fr, err := wire.NewFrameReader(conn, wire.ReaderOptions{Token: token, MaxFrameSize: maxMessage})
	authed := token != nil && err == nil
	if err != nil && token != nil && errors.Is(err, wire.ErrVersion) {
		// The token is checked before the version: this peer knows the
		// secret, so it is the donor, and it speaks another protocol.
		authed = true
	}
	refuse := func(msg string, de *dropError) {
		if de != nil {
			report(de.reason)
			de.reported = true
		}
		refusePeer(conn, raw, ic, until, msg)
	}
	if err != nil {
		switch {
		case authed:
			msg := fmt.Sprintf("the donor speaks another gosst protocol: %v; update the older node", err)
			refuse(msg, nil)
			return nil, exitf(wsrep.ExitProtoNoSupport, "donor %s knows this joiner's one-time secret, but %s", peer, msg)
		case errors.Is(err, wire.ErrAuth):
			de := &dropError{reason: "did not know the one-time secret"}
			refuse("wrong one-time secret: this connection is not the donor of this joiner's current SST", de)
			return nil, de
		case errors.Is(err, wire.ErrVersion):
			// No secret to prove (secret=off): a peer of another version
			// may be a stranger, and is dropped; a donor learns why.
			de := &dropError{reason: err.Error()}
			refuse(fmt.Sprintf("this joiner speaks gosst protocol %d/wire %d: %v", ProtoVersion, wire.Version, err), de)
			return nil, de
		}
		return nil, dropped("bad hello", err)
	}
	var ctl Control
	if err := decodeMessage(fr, &ctl); err != nil {
		if authed {
			return nil, exitf(wsrep.ExitProto, "donor %s sent a bad header: %w", peer, err)
		}
		return nil, dropped("bad header", err)
	}
	if ctl.Proto != ProtoVersion {
		msg := fmt.Sprintf("donor speaks gosst protocol %d, this joiner %d", ctl.Proto, ProtoVersion)
		if authed {
			refuse(msg, nil)
			return nil, exitf(wsrep.ExitProtoNoSupport, "donor %s: %s; update the older node", peer, msg)
		}
		de := &dropError{reason: msg}
		refuse(msg, de)
		return nil, de
	}
	return &accepted{conn: conn, ic: ic, ctl: ctl, peer: peer}, nil
}
