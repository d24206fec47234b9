package resume

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Defaults of Config.
const (
	DefaultWindow      = 60 * time.Second
	DefaultSpoolMemory = 64 << 20
	DefaultSpool       = 1 << 30
	DefaultSendAhead   = 4 << 20
	DefaultRecordSize  = 256 << 10
	defaultRecvBuffer  = 1 << 20
	defaultAbortWait   = 2 * time.Second
	maxAckEvery        = 1 << 20
)

// Config configures a Session. The zero value of a field means its
// default.
type Config struct {
	// ID is the session id; both sides must use the same.
	ID ID
	// Reconnect returns the next connection after a break: the donor
	// dials, the joiner waits for its listener to hand over a connection
	// that passed the SST handshake (TLS, secret). It is called with a
	// context that ends with the window and must return when it ends. A
	// connection whose Hello names another session is closed and
	// Reconnect is called again. nil means no resumption.
	Reconnect func(ctx context.Context) (io.ReadWriteCloser, error)
	// Window is how long after a break Reconnect may take in all; 0
	// means DefaultWindow, negative means no resumption (the first break
	// fails the session).
	Window time.Duration
	// SpoolMemory and Spool bound the unacknowledged data kept for
	// replay: memory, then a file in SpoolDir (os.TempDir() if empty).
	// SpoolMemory may be -1 for no memory at all.
	SpoolMemory, Spool int64
	SpoolDir           string
	// SendAhead is how far Write may run ahead of the connection while
	// connected. While disconnected, Write fills the spool.
	SendAhead int64
	// RecordSize is the largest data record this side sends (at most
	// MaxRecord).
	RecordSize int
	// Logf, if not nil, gets one line per break and per resumption.
	Logf func(format string, args ...any)
	// AbortWait bounds how long Abort waits to tell the peer.
	AbortWait time.Duration
}

func (c *Config) fill() error {
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.SpoolMemory == 0 {
		c.SpoolMemory = DefaultSpoolMemory
	}
	c.SpoolMemory = max(c.SpoolMemory, 0)
	if c.Spool == 0 {
		c.Spool = DefaultSpool
	}
	if c.SendAhead == 0 {
		c.SendAhead = DefaultSendAhead
	}
	if c.RecordSize == 0 {
		c.RecordSize = DefaultRecordSize
	}
	if c.AbortWait == 0 {
		c.AbortWait = defaultAbortWait
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	switch {
	case c.RecordSize < 1 || c.RecordSize > MaxRecord:
		return fmt.Errorf("resume: record size %d outside 1-%d", c.RecordSize, MaxRecord)
	case c.Spool < 4:
		return fmt.Errorf("resume: spool of %d bytes is too small", c.Spool)
	case c.SpoolMemory > c.Spool:
		return fmt.Errorf("resume: spool memory %d exceeds the spool %d", c.SpoolMemory, c.Spool)
	case c.SendAhead < 1:
		return fmt.Errorf("resume: send-ahead %d must be positive", c.SendAhead)
	}
	return nil
}

// ackEvery is the acknowledgement interval this side asks of its peer:
// small enough that a healthy transfer's spool stays in memory, and never
// more than a quarter of the spool (or the sender would wait on it).
func (c *Config) ackEvery() int64 {
	a := int64(maxAckEvery)
	if c.SpoolMemory > 0 {
		a = min(a, c.SpoolMemory/4)
	}
	return max(1, min(a, c.Spool/4))
}

// Stats describe a session so far.
type Stats struct {
	Breaks   int   // connections lost and replaced
	Replayed int64 // bytes sent again after a reconnect
	Spilled  int64 // bytes that went through the spool's file
	Peak     int64 // most spool space held at once
}

// Session is one side of a resumable pair of streams. Read and Write may
// be called concurrently with each other (one reader, one writer); Close
// or Abort must end every session, and releases its spool.
type Session struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelCauseFunc
	g      errgroup.Group

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every state change

	conn      io.ReadWriteCloser // nil while disconnected
	gen       int
	sp        *spool
	sent      int64 // next offset of our stream to send on conn
	maxSent   int64 // highest offset ever handed to a connection
	peerAck   int64 // the peer asks for an ack every this many bytes
	closing   bool
	aborted   bool
	byeSent   bool // on the current connection, handed to its writer
	byeOut    bool // ... and written
	recv      bytes.Buffer
	recvOff   int64 // bytes of the peer's stream received
	ackedOut  int64 // the highest offset we acknowledged
	peerBye   bool
	peerAbort bool
	finished  bool // no more connections: the session is over
	fatal     error
	stats     Stats

	teardown sync.Once
}

// Open starts a session on conn, which the caller has authenticated:
// both sides exchange Hellos, then the session runs until Close or Abort.
// ctx bounds the whole session.
func Open(ctx context.Context, conn io.ReadWriteCloser, cfg Config) (*Session, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Session{cfg: cfg, changed: make(chan struct{}), sp: newSpool(cfg.SpoolMemory, cfg.Spool, cfg.SpoolDir)}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	h, err := s.handshake(s.ctx, conn)
	if err != nil {
		conn.Close()
		s.cancel(err)
		return nil, err
	}
	s.attach(conn, h)
	s.g.Go(func() error { s.supervise(conn); return nil })
	return s, nil
}

// broadcast wakes every waiter; s.mu must be held.
func (s *Session) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// wait releases s.mu until the state changes or ctx ends; it returns
// ctx's cause in the latter case. s.mu must be held.
func (s *Session) wait(ctx context.Context) error {
	ch := s.changed
	s.mu.Unlock()
	defer s.mu.Lock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// setFatal records the session's first fatal error; s.mu must be held.
func (s *Session) setFatal(err error) {
	if s.fatal == nil {
		s.fatal = err
	}
	s.finished = true
	s.broadcast()
}

// handshake exchanges Hellos on c and checks the peer's. The write runs
// beside the read so that unbuffered connections (net.Pipe) work too.
func (s *Session) handshake(ctx context.Context, c io.ReadWriteCloser) (Hello, error) {
	s.mu.Lock()
	mine := Hello{Version: Version, ID: s.cfg.ID, Offset: s.recvOff, AckEvery: s.cfg.ackEvery()}
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	var g errgroup.Group
	g.Go(func() error {
		_, err := c.Write(AppendHello(nil, mine))
		return err
	})
	var buf [HelloLen]byte
	_, rerr := io.ReadFull(c, buf[:])
	werr := g.Wait()
	if ctx.Err() != nil {
		return Hello{}, context.Cause(ctx)
	}
	if rerr != nil {
		return Hello{}, fmt.Errorf("resume: read hello: %w", rerr)
	}
	if werr != nil {
		return Hello{}, fmt.Errorf("resume: send hello: %w", werr)
	}
	h, err := ParseHello(buf[:])
	if err != nil {
		return Hello{}, err
	}
	if !sameID(h.ID, s.cfg.ID) {
		return Hello{}, ErrSession
	}
	s.mu.Lock()
	base, sent := s.sp.base, s.maxSent
	s.mu.Unlock()
	if h.Offset < base || h.Offset > sent {
		// Tell the peer, so that it fails now instead of at the window.
		_, _ = c.Write([]byte{recBye, byeRefused})
		return Hello{}, fmt.Errorf("%w: the peer says it holds this side's stream up to byte %d, but this side sent %d bytes and the peer had confirmed %d (the bytes before that are no longer kept)", ErrOffset, h.Offset, sent, base)
	}
	return h, nil
}

// attach makes c, whose Hello h was accepted, the current connection.
func (s *Session) attach(c io.ReadWriteCloser, h Hello) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.sp.trim(h.Offset) // checked by handshake
	if s.gen > 0 {
		s.stats.Replayed += s.maxSent - h.Offset
	}
	s.conn, s.gen = c, s.gen+1
	s.sent, s.byeSent, s.byeOut, s.peerAck, s.ackedOut = h.Offset, false, false, h.AckEvery, s.recvOff
	s.broadcast()
}

// supervise runs connection after connection until the session ends.
func (s *Session) supervise(conn io.ReadWriteCloser) {
	for {
		err := s.runConn(conn)
		s.mu.Lock()
		s.conn = nil
		s.broadcast()
		switch {
		case s.finished:
		case s.ctx.Err() != nil:
			s.setFatal(context.Cause(s.ctx))
		case s.aborted, s.peerBye:
			s.finished = true
			s.broadcast()
		case s.cfg.Reconnect == nil || s.cfg.Window < 0:
			s.setFatal(fmt.Errorf("connection lost (the peer had confirmed %d bytes, this side had received %d): %w", s.sp.base, s.recvOff, err))
		}
		if s.finished {
			s.mu.Unlock()
			return
		}
		s.stats.Breaks++
		acked, recv := s.sp.base, s.recvOff
		s.mu.Unlock()
		s.cfg.Logf("connection lost (the peer had confirmed %d bytes of this side's stream, this side had received %d bytes of the peer's): %v; resuming within %s", acked, recv, err, s.cfg.Window)
		start := time.Now()
		var h Hello
		conn, h, err = s.reconnect()
		if err != nil {
			s.mu.Lock()
			s.setFatal(err)
			s.mu.Unlock()
			return
		}
		s.attach(conn, h)
		s.mu.Lock()
		replay := s.maxSent - h.Offset
		s.mu.Unlock()
		s.cfg.Logf("resumed after %s: the peer holds %d bytes of this side's stream, %d are sent again; this side holds %d bytes of the peer's", time.Since(start).Round(time.Millisecond), h.Offset, replay, recv)
	}
}

// reconnect gets and handshakes connections until one is of this
// session, within the window.
func (s *Session) reconnect() (io.ReadWriteCloser, Hello, error) {
	rctx, cancel := context.WithTimeout(s.ctx, s.cfg.Window)
	defer cancel()
	var last error
	for {
		if rctx.Err() != nil {
			break
		}
		c, err := s.cfg.Reconnect(rctx)
		if err != nil {
			if rctx.Err() == nil {
				return nil, Hello{}, fmt.Errorf("resume: reconnect: %w", err)
			}
			last = err
			break
		}
		h, err := s.handshake(rctx, c)
		if err == nil {
			return c, h, nil
		}
		c.Close()
		if errors.Is(err, ErrOffset) || errors.Is(err, ErrVersion) || errors.Is(err, ErrMalformed) {
			// A peer that speaks something else (a joiner restarted in
			// the meantime answers with its refusal) is not going to
			// become this session's peer.
			return nil, Hello{}, err
		}
		// A connection of another session, or one that broke during
		// the handshake: wait for the next.
		s.cfg.Logf("reconnect refused: %v", err)
		last = err
	}
	if s.ctx.Err() != nil {
		return nil, Hello{}, context.Cause(s.ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return nil, Hello{}, fmt.Errorf("%w (%s); the peer had confirmed %d bytes of this side's stream, this side had received %d bytes of the peer's; last attempt: %v", ErrWindow, s.cfg.Window, s.sp.base, s.recvOff, last)
}

// runConn runs the reader and the sender of one connection until it
// breaks or the session is done with it.
func (s *Session) runConn(c io.ReadWriteCloser) error {
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	cctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	stop := context.AfterFunc(cctx, func() { c.Close() })
	defer stop()
	var g errgroup.Group
	errs := make(chan error, 2)
	g.Go(func() error {
		err := s.readLoop(cctx, c)
		errs <- err
		cancel(err)
		return nil
	})
	g.Go(func() error {
		err := s.sendLoop(cctx, c, gen)
		errs <- err
		cancel(err)
		return nil
	})
	_ = g.Wait()
	c.Close()
	first := <-errs
	if first == nil {
		first = <-errs
	}
	return first
}

// sendLoop sends acks, our stream's data from the spool, and bye. It
// returns nil once both byes are exchanged.
func (s *Session) sendLoop(ctx context.Context, c io.Writer, gen int) error {
	buf := make([]byte, 9+s.cfg.RecordSize)
	for {
		s.mu.Lock()
		var rec []byte
		for rec == nil {
			if s.gen != gen || s.finished {
				s.mu.Unlock()
				return nil
			}
			switch {
			case s.aborted && !s.byeSent:
				rec = append(buf[:0], recBye, byeAborted)
				s.byeSent = true
			case s.recvOff-s.ackedOut >= s.peerAck || (s.closing || s.peerBye) && s.recvOff > s.ackedOut:
				rec = binary.BigEndian.AppendUint64(append(buf[:0], recAck), uint64(s.recvOff))
				s.ackedOut = s.recvOff
			case !s.peerBye && !s.aborted && s.sent < s.sp.end:
				n, err := s.sp.readAt(buf[5:], s.sent)
				if err != nil {
					s.setFatal(err)
					s.mu.Unlock()
					return err
				}
				rec = binary.BigEndian.AppendUint32(append(buf[:0], recData), uint32(n))[:5+n]
				s.sent += int64(n)
				s.maxSent = max(s.maxSent, s.sent)
			case s.closing && !s.byeSent && (s.peerBye || s.sent == s.sp.end):
				rec = append(buf[:0], recBye, byeDone)
				s.byeSent = true
			case s.byeSent && s.peerBye:
				s.mu.Unlock()
				return nil
			default:
				if err := s.wait(ctx); err != nil {
					s.mu.Unlock()
					return err
				}
			}
		}
		s.broadcast() // Write may wait for s.sent
		s.mu.Unlock()
		if _, err := c.Write(rec); err != nil {
			return err
		}
		if rec[0] == recBye {
			s.mu.Lock()
			if s.gen == gen {
				s.byeOut = true
				s.broadcast()
			}
			s.mu.Unlock()
		}
	}
}

// readLoop reads the peer's records.
func (s *Session) readLoop(ctx context.Context, c io.Reader) error {
	var hdr [9]byte
	buf := make([]byte, 64<<10)
	for {
		if _, err := io.ReadFull(c, hdr[:1]); err != nil {
			return err
		}
		switch hdr[0] {
		case recData:
			if _, err := io.ReadFull(c, hdr[1:5]); err != nil {
				return noEOF(err)
			}
			n := int64(binary.BigEndian.Uint32(hdr[1:5]))
			if n < 1 || n > MaxRecord {
				return s.violation("data record of %d bytes", n)
			}
			for n > 0 {
				s.mu.Lock()
				for s.recv.Len() >= defaultRecvBuffer {
					if err := s.wait(ctx); err != nil {
						s.mu.Unlock()
						return err
					}
				}
				room := int64(defaultRecvBuffer - s.recv.Len())
				s.mu.Unlock()
				k, err := c.Read(buf[:min(n, room, int64(len(buf)))])
				if k > 0 {
					s.mu.Lock()
					s.recv.Write(buf[:k])
					s.recvOff += int64(k)
					s.broadcast()
					s.mu.Unlock()
					n -= int64(k)
				}
				if err != nil && n > 0 {
					return noEOF(err)
				}
			}
		case recAck:
			if _, err := io.ReadFull(c, hdr[1:9]); err != nil {
				return noEOF(err)
			}
			off := binary.BigEndian.Uint64(hdr[1:9])
			s.mu.Lock()
			if off > uint64(s.maxSent) || int64(off) < s.sp.base {
				s.mu.Unlock()
				return s.violation("acknowledgement of byte %d, outside the %d-%d not yet acknowledged", off, s.sp.base, s.maxSent)
			}
			if err := s.sp.trim(int64(off)); err != nil {
				s.setFatal(err)
				s.mu.Unlock()
				return err
			}
			s.broadcast()
			s.mu.Unlock()
		case recBye:
			if _, err := io.ReadFull(c, hdr[1:2]); err != nil {
				return noEOF(err)
			}
			s.mu.Lock()
			switch hdr[1] {
			case byeDone:
				s.peerBye = true
			case byeAborted:
				s.peerBye, s.peerAbort = true, true
			case byeRefused:
				s.setFatal(fmt.Errorf("%w: the peer refused to resume this session (see its log)", ErrOffset))
			default:
				s.mu.Unlock()
				return s.violation("bye reason %d", hdr[1])
			}
			s.broadcast()
			s.mu.Unlock()
		default:
			return s.violation("record type %#x", hdr[0])
		}
	}
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// violation fails the session with a protocol violation.
func (s *Session) violation(format string, args ...any) error {
	err := fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
	s.mu.Lock()
	s.setFatal(err)
	s.mu.Unlock()
	return err
}

// Write appends p to this side's stream. It returns once p is in the
// spool: while connected it waits while more than SendAhead bytes are
// unsent or the spool is full; while disconnected it fills the spool and
// fails with ErrSpoolFull when p does not fit.
func (s *Session) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	done := 0
	for len(p) > 0 {
		// At most a quarter of the spool at a time: the peer acknowledges
		// at least every quarter, so a chunk always fits eventually.
		chunk := p[:min(int64(len(p)), int64(s.cfg.RecordSize), max(1, s.cfg.Spool/4))]
		for {
			switch {
			case s.fatal != nil:
				return done, s.fatal
			case s.closing || s.aborted:
				return done, ErrClosed
			case s.peerBye:
				return done, ErrPeerClosed
			case s.finished:
				return done, ErrClosed
			}
			connected := s.conn != nil
			if connected && s.sp.end-s.sent >= s.cfg.SendAhead {
				if err := s.wait(s.ctx); err != nil {
					return done, err
				}
				continue
			}
			if !s.sp.fits(int64(len(chunk))) {
				if !connected {
					s.setFatal(fmt.Errorf("%w: %d bytes not yet acknowledged by the peer (spool limit %d bytes)", ErrSpoolFull, s.sp.end-s.sp.base, s.cfg.Spool))
					return done, s.fatal
				}
				if err := s.wait(s.ctx); err != nil {
					return done, err
				}
				continue
			}
			break
		}
		if err := s.sp.append(chunk); err != nil {
			s.setFatal(err)
			return done, err
		}
		s.broadcast()
		done += len(chunk)
		p = p[len(chunk):]
	}
	return done, nil
}

// Read reads the peer's stream. It returns io.EOF after the peer's
// stream ended, ErrPeerAborted after the peer stopped on an error.
func (s *Session) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.recv.Len() == 0 {
		switch {
		case s.peerAbort:
			return 0, ErrPeerAborted
		case s.peerBye:
			return 0, io.EOF
		case s.fatal != nil:
			return 0, s.fatal
		case s.finished:
			return 0, ErrClosed
		}
		if err := s.wait(s.ctx); err != nil {
			return 0, err
		}
	}
	n, _ := s.recv.Read(p)
	s.broadcast() // room for the reader
	return n, nil
}

// Unsent says, without waiting, how many bytes written so far the
// session has not yet handed to its connection (the peer may not have
// acknowledged all it has): after an outage much of the stream can still
// be in the spool. While there is no connection it is -1: what the next
// one must carry is known only when the peer says what it holds. err is
// why the session can no longer send (its error, ErrPeerClosed,
// ErrClosed); n means nothing then.
func (s *Session) Unsent() (n int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.fatal != nil:
		return 0, s.fatal
	case s.peerBye:
		return 0, ErrPeerClosed
	case s.finished || s.aborted:
		return 0, ErrClosed
	case s.conn == nil:
		return -1, nil
	}
	return max(0, s.sp.end-s.sent), nil
}

// Acked is how many bytes of this side's stream the peer has
// acknowledged so far: it grows while the peer keeps taking the stream.
func (s *Session) Acked() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sp.base
}

// Close ends this side's stream after everything written, and waits
// until the peer has it and has ended its own stream too (resuming if the
// connection breaks meanwhile), or until ctx ends. It returns nil if the
// session ended cleanly, else why not. It releases the spool.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		s.broadcast()
	}
	var err error
	for !s.finished && err == nil {
		err = s.wait(ctx)
	}
	if s.fatal != nil {
		err = s.fatal
	} else if err == nil && !s.byeSent && !s.peerBye {
		err = ErrClosed
	}
	s.mu.Unlock()
	s.stop(ErrClosed)
	return err
}

// Abort stops the session: it tells the peer (waiting at most AbortWait
// for the current connection to take that), and releases the spool.
func (s *Session) Abort() {
	s.mu.Lock()
	if !s.aborted && !s.finished {
		s.aborted = true
		s.broadcast()
		t := time.NewTimer(s.cfg.AbortWait)
		for !s.byeOut && s.conn != nil && !s.finished {
			ch := s.changed
			s.mu.Unlock()
			select {
			case <-ch:
			case <-t.C:
				s.mu.Lock()
				s.finished = true // stop waiting
				s.mu.Unlock()
			}
			s.mu.Lock()
		}
		t.Stop()
	}
	s.mu.Unlock()
	s.stop(ErrClosed)
}

// stop ends every goroutine and releases the spool.
func (s *Session) stop(cause error) {
	s.teardown.Do(func() {
		s.cancel(cause)
		_ = s.g.Wait()
		s.mu.Lock()
		s.finished = true
		_ = s.sp.close()
		s.broadcast()
		s.mu.Unlock()
	})
}

// Break drops the current connection as if it had broken, so that the
// session calls Reconnect. The joiner uses it when its donor reconnects
// before the joiner noticed the old connection die (a half-open
// connection after a reset the joiner never saw): the donor redials only
// after it gave the old connection up.
func (s *Session) Break() {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Spilled, st.Peak = s.sp.spilled, s.sp.peakHeld
	return st
}
