package sst

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosst/gosst/sst/resume"
	"golang.org/x/sync/errgroup"
)

// Resumable transfers (docs/sst.md, "Resuming after a network blip"): the
// joiner keeps its listener open during a full SST whose donor opened a
// resume session, and hands each connection that passes the SST
// handshake and names that session to the session as its reconnect.

// parseSessionID decodes a Control's session id.
func parseSessionID(s string) (resume.ID, error) {
	var id resume.ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("session id %q is not %d hex bytes", s, len(id))
	}
	copy(id[:], b)
	return id, nil
}

// resumeAcceptor accepts the donor's reconnects on the joiner's listener.
type resumeAcceptor struct {
	j       *Joiner
	l       net.Listener
	tlsCfg  *tls.Config
	token   []byte
	session string

	mu   sync.Mutex
	ch   chan net.Conn // at most one connection waiting for the session
	sess atomic.Pointer[resume.Session]
}

func newResumeAcceptor(j *Joiner, l net.Listener, tlsCfg *tls.Config, token []byte, session string) *resumeAcceptor {
	if len(token) == 0 {
		token = nil
	}
	return &resumeAcceptor{j: j, l: l, tlsCfg: tlsCfg, token: token, session: session, ch: make(chan net.Conn, 1)}
}

// run accepts until ctx ends (which closes the listener), handshaking
// with up to maxPendingHandshakes connections at once; every goroutine
// has ended when it returns.
func (a *resumeAcceptor) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { a.l.Close() })
	defer stop()
	var g errgroup.Group
	defer func() { _ = g.Wait() }()
	slots := make(chan struct{}, maxPendingHandshakes)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		raw, err := a.l.Accept()
		if err != nil {
			<-slots
			if ctx.Err() == nil {
				a.j.log.Warnf("accepting reconnects of the donor: %v; a broken connection can no longer be resumed", err)
			}
			return
		}
		g.Go(func() error {
			defer func() { <-slots }()
			a.serve(ctx, raw)
			return nil
		})
	}
}

// serve handshakes with one connection and, if it is the donor of this
// session, hands it over.
func (a *resumeAcceptor) serve(ctx context.Context, raw net.Conn) {
	peer := raw.RemoteAddr().String()
	unwatch := context.AfterFunc(ctx, func() { raw.Close() })
	acc, err := a.j.handshake(raw, peer, a.tlsCfg, a.token, func(string) {})
	if !unwatch() {
		raw.Close()
		return
	}
	if err != nil {
		raw.Close()
		a.j.log.Warnf("dropped connection from %s during the transfer: %v", peer, err)
		return
	}
	if acc.ctl.Kind != KindResume || subtle.ConstantTimeCompare([]byte(acc.ctl.Session), []byte(a.session)) != 1 {
		raw.Close()
		a.j.log.Warnf("dropped connection from %s during the transfer: it knows the one-time secret but is not a reconnect of this transfer's session", peer)
		return
	}
	acc.ic.setUntil(time.Time{})
	a.j.log.Infof("donor reconnected from %s", peer)
	a.mu.Lock()
	defer a.mu.Unlock()
	// The donor redials only after it gave the old connection up: a
	// session still on it has not noticed the break yet.
	if s := a.sess.Load(); s != nil {
		s.Break()
	}
	select {
	case old := <-a.ch:
		old.Close()
	default:
	}
	a.ch <- acc.conn
}

// next is the session's Reconnect: the next connection handed over.
func (a *resumeAcceptor) next(ctx context.Context) (io.ReadWriteCloser, error) {
	select {
	case c := <-a.ch:
		return c, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// sessionWriter is the joiner's side of a session as the transfer code
// writes to it: Close ends the session, waiting a bounded time for the
// donor to confirm (the joiner's outcome does not depend on it).
type sessionWriter struct {
	s    *resume.Session
	wait time.Duration
	log  *logger
}

func (w sessionWriter) Write(p []byte) (int, error) { return w.s.Write(p) }

func (w sessionWriter) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), w.wait)
	defer cancel()
	if err := w.s.Close(ctx); err != nil {
		w.log.Infof("the donor did not confirm the end of the transfer: %v", err)
	}
	return nil
}
