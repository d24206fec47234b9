package resume

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// cutConn fails its writes once limit bytes went through: it writes up
// to the limit, then closes the connection (both ends see it end), as a
// reset or a dead link would. A negative limit never cuts.
type cutConn struct {
	net.Conn
	mu    sync.Mutex
	limit int64
	n     int64
}

var errCut = errors.New("test: connection cut")

func (c *cutConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit < 0 || c.n+int64(len(p)) <= c.limit {
		n, err := c.Conn.Write(p)
		c.n += int64(n)
		return n, err
	}
	k := int(c.limit - c.n)
	n, _ := c.Conn.Write(p[:k])
	c.n += int64(n)
	c.Conn.Close()
	return n, errCut
}

// link makes the connections between a donor-side and a joiner-side
// session: in-memory pipes, the donor's end of the i-th connection cut
// after donorCuts[i] bytes, the joiner's after joinerCuts[i] (no cut
// beyond the lists or for -1).
type link struct {
	mu         sync.Mutex
	conns      int
	donorCuts  []int64
	joinerCuts []int64
	pending    chan net.Conn
	// hold, if not nil, makes the donor's reconnects wait until closed.
	hold chan struct{}
}

func newLink(donorCuts, joinerCuts []int64) *link {
	return &link{donorCuts: donorCuts, joinerCuts: joinerCuts, pending: make(chan net.Conn, 1)}
}

func cutAt(cuts []int64, i int) int64 {
	if i < len(cuts) {
		return cuts[i]
	}
	return -1
}

// pair makes the next connection: the donor's end and the joiner's end.
func (l *link) pair() (net.Conn, net.Conn) {
	l.mu.Lock()
	i := l.conns
	l.conns++
	l.mu.Unlock()
	d, j := net.Pipe()
	return &cutConn{Conn: d, limit: cutAt(l.donorCuts, i)}, &cutConn{Conn: j, limit: cutAt(l.joinerCuts, i)}
}

// dial is the donor's Reconnect.
func (l *link) dial(ctx context.Context) (io.ReadWriteCloser, error) {
	if l.hold != nil {
		select {
		case <-l.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	d, j := l.pair()
	select {
	case l.pending <- j:
		return d, nil
	case <-ctx.Done():
		d.Close()
		j.Close()
		return nil, ctx.Err()
	}
}

// accept is the joiner's Reconnect.
func (l *link) accept(ctx context.Context) (io.ReadWriteCloser, error) {
	select {
	case c := <-l.pending:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

var testID = ID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

// smallConfig has a small spool and small records, so that a short
// stream crosses many record boundaries and acknowledgements.
func smallConfig(reconnect func(context.Context) (io.ReadWriteCloser, error)) Config {
	return Config{ID: testID, Reconnect: reconnect, Window: time.Minute, SpoolMemory: 4 << 10, Spool: 64 << 10, RecordSize: 1000, SpoolDir: ""}
}

// openPair opens both sessions on the link's first connection.
func openPair(t *testing.T, ctx context.Context, l *link, dc, jc Config) (*Session, *Session) {
	t.Helper()
	d, j := l.pair()
	var js *Session
	var g errgroup.Group
	g.Go(func() error {
		var err error
		js, err = Open(ctx, j, jc)
		return err
	})
	ds, err := Open(ctx, d, dc)
	if gerr := g.Wait(); err != nil || gerr != nil {
		t.Fatalf("open: donor %v, joiner %v", err, gerr)
	}
	return ds, js
}

func randomData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// transfer runs the SST's exchange over the pair: the donor writes data
// in uneven writes and reads the reply; the joiner reads the data and
// replies. It returns what the joiner received and the donor's reply.
func transfer(ctx context.Context, ds, js *Session, data []byte) (got, reply []byte, err error) {
	var g errgroup.Group
	g.Go(func() error {
		r := rand.New(rand.NewPCG(7, 7))
		for p := data; len(p) > 0; {
			n := min(len(p), 1+r.IntN(3000))
			if _, err := ds.Write(p[:n]); err != nil {
				ds.Abort()
				return fmt.Errorf("donor write: %w", err)
			}
			p = p[n:]
		}
		b, err := io.ReadAll(ds)
		if err != nil {
			ds.Abort()
			return fmt.Errorf("donor read reply: %w", err)
		}
		reply = b
		return ds.Close(ctx)
	})
	g.Go(func() error {
		got = make([]byte, len(data))
		if _, err := io.ReadFull(js, got); err != nil {
			js.Abort()
			return fmt.Errorf("joiner read: %w", err)
		}
		if _, err := js.Write([]byte("ok")); err != nil {
			js.Abort()
			return fmt.Errorf("joiner reply: %w", err)
		}
		return js.Close(ctx)
	})
	err = g.Wait()
	return got, reply, err
}

func TestResumeAfterCuts(t *testing.T) {
	data := randomData(20<<10, 1)
	type tc struct {
		name              string
		donorCuts, joiner []int64
	}
	var cases []tc
	// Every byte of the first records after the first connection's
	// hello (a break during that hello fails the SST: there is no session
	// yet), then every 37th byte; cutting the first connection only; the
	// first and then the next two at k bytes (inside their hellos for
	// small k); or the joiner's direction (acknowledgements, reply).
	const h = int64(HelloLen)
	for k := int64(0); k < 8000; {
		cases = append(cases,
			tc{fmt.Sprintf("donor_once_%d", k), []int64{h + k}, nil},
			tc{fmt.Sprintf("donor_thrice_%d", k), []int64{h + k, k, k}, nil},
		)
		if k < 400 {
			cases = append(cases, tc{fmt.Sprintf("joiner_%d", k), nil, []int64{h + k, k}})
		}
		if k < 100 {
			k++
		} else {
			k += 37
		}
	}
	cases = append(cases, tc{"both", []int64{5000, 300, 9000}, []int64{100, 60, 40}})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			l := newLink(c.donorCuts, c.joiner)
			ds, js := openPair(t, ctx, l, smallConfig(l.dial), smallConfig(l.accept))
			got, reply, err := transfer(ctx, ds, js, data)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("joiner received %d bytes that differ from the %d sent", len(got), len(data))
			}
			if string(reply) != "ok" {
				t.Fatalf("donor got reply %q", reply)
			}
			// The donor's direction carries over 20 KiB, the joiner's at
			// least its hello, the reply and bye (how many acks depends on
			// scheduling): each cut below that broke a connection.
			if len(c.donorCuts) > 0 && ds.Stats().Breaks < 1 || len(c.joiner) > 0 && c.joiner[0] < h+7+2 && js.Stats().Breaks < 1 {
				t.Fatalf("no break seen: donor %+v, joiner %+v", ds.Stats(), js.Stats())
			}
		})
	}
}

// TestResumeSpillsToFile: a donor whose connection is down while it
// writes keeps the stream in its spool's file and replays it all.
func TestResumeSpillsToFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := randomData(48<<10, 2)
	l := newLink([]int64{2000}, nil)
	l.hold = make(chan struct{})
	dc := smallConfig(l.dial)
	dc.SpoolDir = t.TempDir()
	ds, js := openPair(t, ctx, l, dc, smallConfig(l.accept))
	if _, err := ds.Write(data); err != nil {
		t.Fatal(err)
	}
	// Everything is written while the link is down (it was cut after
	// 2000 bytes and the donor cannot redial yet), so almost all of it
	// is in the spool, beyond its 4 KiB of memory.
	close(l.hold)
	var g errgroup.Group
	var got []byte
	g.Go(func() error {
		got = make([]byte, len(data))
		if _, err := io.ReadFull(js, got); err != nil {
			return err
		}
		return js.Close(ctx)
	})
	if _, err := io.ReadAll(ds); err != nil {
		t.Fatal(err)
	}
	if err := ds.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data differs")
	}
	st := ds.Stats()
	if st.Spilled < int64(len(data))-2000-4<<10 || st.Breaks != 1 || st.Replayed == 0 {
		t.Fatalf("stats %+v: want about %d bytes spilled, 1 break, a replay", st, len(data)-6000)
	}
}

// TestUnsent: what is written while the link is down stays in the
// spool, so Unsent does not report it sent; once the donor may redial,
// the replay puts all of it on the new connection and Unsent says 0. A
// session that ends (here its window) makes Unsent return its error.
// The donor restarts the joiner's time to confirm while something is
// unsent.
func TestUnsent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := randomData(48<<10, 5)
	l := newLink([]int64{2000}, nil)
	l.hold = make(chan struct{})
	dc := smallConfig(l.dial)
	redialing := make(chan struct{}, 1)
	dc.Reconnect = func(ctx context.Context) (io.ReadWriteCloser, error) {
		select {
		case redialing <- struct{}{}:
		default:
		}
		return l.dial(ctx)
	}
	ds, js := openPair(t, ctx, l, dc, smallConfig(l.accept))
	defer js.Abort()
	defer ds.Abort()
	if _, err := ds.Write(data); err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	got := make([]byte, len(data))
	g.Go(func() error { _, err := io.ReadFull(js, got); return err })
	// The first connection broke after 2000 bytes and the redial waits
	// for hold: the rest is only in the spool, however fast the link.
	<-redialing
	if st := ds.Stats(); st.Breaks != 1 {
		t.Fatalf("stats %+v while redialing: want 1 break", st)
	}
	if n, err := ds.Unsent(); n == 0 || err != nil {
		t.Fatalf("Unsent with the link down after %d bytes of %d: %d, %v, want it not all sent", 2000, len(data), n, err)
	}
	close(l.hold)
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data differs")
	}
	// The joiner has it all, so the new connection carried it all.
	if n, err := ds.Unsent(); n != 0 || err != nil {
		t.Fatalf("Unsent after the reconnect: %d, %v", n, err)
	}
	if st := ds.Stats(); st.Breaks != 1 || st.Replayed == 0 {
		t.Errorf("stats %+v: want 1 break and a replay", st)
	}

	l2 := newLink([]int64{100}, nil)
	l2.hold = make(chan struct{}) // never released: the link stays down
	dc2, jc := smallConfig(l2.dial), smallConfig(l2.accept)
	dc2.Window, jc.Window = 50*time.Millisecond, 50*time.Millisecond
	ds2, js2 := openPair(t, ctx, l2, dc2, jc)
	defer js2.Abort()
	defer ds2.Abort()
	if _, err := ds2.Write(randomData(10<<10, 6)); err != nil {
		t.Fatal(err)
	}
	// Read returns once the session is over.
	if _, err := ds2.Read(make([]byte, 1)); !errors.Is(err, ErrWindow) {
		t.Fatalf("Read after the window: %v, want %v", err, ErrWindow)
	}
	if _, err := ds2.Unsent(); !errors.Is(err, ErrWindow) {
		t.Fatalf("Unsent after the window: %v, want %v", err, ErrWindow)
	}
}

func TestSpoolFull(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := newLink([]int64{100}, nil)
	l.hold = make(chan struct{}) // never released: the link stays down
	dc := smallConfig(l.dial)
	dc.Spool = 16 << 10
	ds, js := openPair(t, ctx, l, dc, smallConfig(l.accept))
	defer js.Abort()
	_, err := ds.Write(randomData(64<<10, 3))
	if !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("write: %v, want %v", err, ErrSpoolFull)
	}
	if _, err := ds.Read(make([]byte, 1)); !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("read after: %v", err)
	}
	ds.Abort()
}

func TestWindowExpires(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := newLink([]int64{100}, nil)
	l.hold = make(chan struct{}) // never released
	dc, jc := smallConfig(l.dial), smallConfig(l.accept)
	dc.Window, jc.Window = 50*time.Millisecond, 50*time.Millisecond
	ds, js := openPair(t, ctx, l, dc, jc)
	defer ds.Abort()
	defer js.Abort()
	if _, err := ds.Write(randomData(10<<10, 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(ds); !errors.Is(err, ErrWindow) {
		t.Fatalf("donor: %v, want %v", err, ErrWindow)
	}
	if _, err := io.ReadAll(js); !errors.Is(err, ErrWindow) {
		t.Fatalf("joiner: %v, want %v", err, ErrWindow)
	}
	if err := ds.Close(ctx); !errors.Is(err, ErrWindow) {
		t.Fatalf("close: %v", err)
	}
}

func TestNoResumption(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := newLink([]int64{100}, nil)
	dc, jc := smallConfig(nil), smallConfig(nil)
	ds, js := openPair(t, ctx, l, dc, jc)
	defer ds.Abort()
	defer js.Abort()
	if _, err := ds.Write(randomData(10<<10, 4)); err != nil && !errors.Is(err, errCut) {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(js); err == nil || errors.Is(err, ErrWindow) {
		t.Fatalf("joiner: %v, want the broken connection", err)
	}
}

func TestAbortTellsPeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := newLink(nil, nil)
	ds, js := openPair(t, ctx, l, smallConfig(l.dial), smallConfig(l.accept))
	defer js.Abort()
	if _, err := ds.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	ds.Abort()
	// Unsent data is dropped: the joiner gets at most a prefix.
	b, err := io.ReadAll(js)
	if !errors.Is(err, ErrPeerAborted) || !bytes.HasPrefix([]byte("partial"), b) {
		t.Fatalf("joiner read %q, %v; want a prefix of the stream, then %v", b, err, ErrPeerAborted)
	}
	if _, err := ds.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after abort: %v", err)
	}
}

// TestPeerClosedStopsWriter: a joiner that fails says bye; the donor's
// writes then fail instead of filling the spool.
func TestPeerClosedStopsWriter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := newLink(nil, nil)
	ds, js := openPair(t, ctx, l, smallConfig(l.dial), smallConfig(l.accept))
	var g errgroup.Group
	g.Go(func() error {
		if _, err := js.Write([]byte("no space")); err != nil {
			return err
		}
		return js.Close(ctx)
	})
	b, err := io.ReadAll(ds)
	if err != nil || string(b) != "no space" {
		t.Fatalf("donor read %q, %v", b, err)
	}
	if _, err := ds.Write([]byte("more")); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("write: %v, want %v", err, ErrPeerClosed)
	}
	if err := ds.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// fakePeer speaks the protocol by hand on c: it sends h, reads the
// session's hello, and returns a reader of what follows.
func fakePeer(t *testing.T, c net.Conn, h Hello) {
	t.Helper()
	var g errgroup.Group
	g.Go(func() error {
		_, err := c.Write(AppendHello(nil, h))
		return err
	})
	var b [HelloLen]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		t.Errorf("fake peer: read hello: %v", err)
	}
	if err := g.Wait(); err != nil {
		t.Errorf("fake peer: send hello: %v", err)
	}
}

func TestResumeOffsetRefused(t *testing.T) {
	for _, off := range []int64{1, 5, 1 << 40} {
		t.Run(fmt.Sprint("first_connection_", off), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			d, j := net.Pipe()
			defer j.Close()
			var g errgroup.Group
			var bye [2]byte
			g.Go(func() error {
				fakePeer(t, j, Hello{Version: Version, ID: testID, Offset: off, AckEvery: 1})
				_, err := io.ReadFull(j, bye[:])
				return err
			})
			_, err := Open(ctx, d, smallConfig(nil))
			if !errors.Is(err, ErrOffset) {
				t.Fatalf("open: %v, want %v", err, ErrOffset)
			}
			if gerr := g.Wait(); gerr != nil || bye != [2]byte{recBye, byeRefused} {
				t.Fatalf("the peer was not told: %v %x", gerr, bye)
			}
		})
	}
	// A reconnect that asks again for bytes it had acknowledged.
	t.Run("before_acknowledged", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		second := make(chan net.Conn, 1)
		dc := smallConfig(func(ctx context.Context) (io.ReadWriteCloser, error) {
			d, j := net.Pipe()
			second <- j
			return d, nil
		})
		dc.Spool, dc.SpoolMemory = 2000, 1000
		d, j := net.Pipe()
		var g errgroup.Group
		g.Go(func() error {
			fakePeer(t, j, Hello{Version: Version, ID: testID, AckEvery: 100})
			// Read 1000 bytes of data records, acknowledge them, cut.
			var got int64
			for got < 1000 {
				var h [5]byte
				if _, err := io.ReadFull(j, h[:]); err != nil {
					return err
				}
				if h[0] != recData {
					return fmt.Errorf("record %#x", h[0])
				}
				n := int64(binary.BigEndian.Uint32(h[1:]))
				if _, err := io.CopyN(io.Discard, j, n); err != nil {
					return err
				}
				got += n
			}
			if _, err := j.Write(binary.BigEndian.AppendUint64([]byte{recAck}, uint64(got))); err != nil {
				return err
			}
			return nil
		})
		ds, err := Open(ctx, d, dc)
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Abort()
		// 3000 bytes do not fit in the 2000-byte spool before the
		// acknowledgement: Write returns only after it was processed.
		if _, err := ds.Write(make([]byte, 3000)); err != nil {
			t.Fatal(err)
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		j.Close()
		j2 := <-second
		defer j2.Close()
		var bye [2]byte
		g.Go(func() error {
			fakePeer(t, j2, Hello{Version: Version, ID: testID, Offset: 500, AckEvery: 100})
			_, err := io.ReadFull(j2, bye[:])
			return err
		})
		if _, err := io.ReadAll(ds); !errors.Is(err, ErrOffset) {
			t.Fatalf("read: %v, want %v", err, ErrOffset)
		}
		if err := g.Wait(); err != nil || bye != [2]byte{recBye, byeRefused} {
			t.Fatalf("the peer was not told: %v %x", err, bye)
		}
	})
}

// TestAckBeyondSent: an acknowledgement of bytes never sent fails the
// session.
func TestAckBeyondSent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, j := net.Pipe()
	defer j.Close()
	go func() {
		fakePeer(t, j, Hello{Version: Version, ID: testID, AckEvery: 100})
		_, _ = j.Write(binary.BigEndian.AppendUint64([]byte{recAck}, 1<<20))
		_, _ = io.Copy(io.Discard, j)
	}()
	ds, err := Open(ctx, d, smallConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Abort()
	if _, err := io.ReadAll(ds); !errors.Is(err, ErrProtocol) {
		t.Fatalf("read: %v, want %v", err, ErrProtocol)
	}
}

// TestOtherSessionRefused: a reconnect from another session is closed
// and the session waits for its own peer.
func TestOtherSessionRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := randomData(8<<10, 5)
	l := newLink([]int64{3000}, nil)
	stranger := true
	dial := func(ctx context.Context) (io.ReadWriteCloser, error) {
		if stranger {
			stranger = false
			d, j := net.Pipe()
			go func() {
				defer j.Close()
				other := testID
				other[0] ^= 0xff
				fakePeer(t, j, Hello{Version: Version, ID: other, AckEvery: 100})
			}()
			return d, nil
		}
		return l.dial(ctx)
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	dc := smallConfig(dial)
	dc.Logf = func(f string, a ...any) { logMu.Lock(); fmt.Fprintf(&logs, f+"\n", a...); logMu.Unlock() }
	ds, js := openPair(t, ctx, l, dc, smallConfig(l.accept))
	got, reply, err := transfer(ctx, ds, js, data)
	if err != nil || !bytes.Equal(got, data) || string(reply) != "ok" {
		t.Fatalf("transfer: %v (reply %q)", err, reply)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !bytes.Contains(logs.Bytes(), []byte("another session")) {
		t.Fatalf("log does not name the refused connection:\n%s", logs.String())
	}
}

// TestBreakReplacesConnection: the joiner drops a connection it still
// believes alive (Break, as when its donor reconnects first); the donor
// sees the break, redials, and the stream goes on.
func TestBreakReplacesConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := randomData(32<<10, 6)
	l := newLink(nil, nil)
	ds, js := openPair(t, ctx, l, smallConfig(l.dial), smallConfig(l.accept))
	var g errgroup.Group
	var got []byte
	g.Go(func() error {
		got = make([]byte, len(data))
		if _, err := io.ReadFull(js, got[:1000]); err != nil {
			return err
		}
		js.Break()
		if _, err := io.ReadFull(js, got[1000:]); err != nil {
			return err
		}
		if _, err := js.Write([]byte("ok")); err != nil {
			return err
		}
		return js.Close(ctx)
	})
	if _, err := ds.Write(data); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(ds); err != nil || string(b) != "ok" {
		t.Fatalf("reply %q, %v", b, err)
	}
	if err := ds.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) || js.Stats().Breaks != 1 || ds.Stats().Breaks != 1 {
		t.Fatalf("data equal %v, breaks: joiner %d, donor %d", bytes.Equal(got, data), js.Stats().Breaks, ds.Stats().Breaks)
	}
}
