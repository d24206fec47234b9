package sst

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosst/gosst/stream/codec"
	"github.com/gosst/gosst/stream/ratelimit"
	"github.com/gosst/gosst/stream/stall"
	"github.com/gosst/gosst/stream/wire"
)

// fakeClock is a clock that only synthetic stages move.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// slowReader and slowWriter are stages that take per of the fake clock
// for every call.
type slowReader struct {
	r   io.Reader
	c   *fakeClock
	per time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) { s.c.advance(s.per); return s.r.Read(p) }

type slowWriter struct {
	w   io.Writer
	c   *fakeClock
	per time.Duration
}

func (s *slowWriter) Write(p []byte) (int, error) { s.c.advance(s.per); return s.w.Write(p) }

// testData is n bytes that compress about 2:1.
func testData(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		if i%2 == 0 {
			b[i] = byte(r.IntN(256))
		}
	}
	return b
}

// donorPipe runs the donor's pipeline as Donor.send composes it: source
// meter → [rate limit] → limited meter → copier → codec → frames → conn
// meter → conn.
func donorPipe(t *testing.T, st *donorStages, src io.Reader, cd codec.Codec, rateLimit int64, conn io.Writer) stall.Report {
	t.Helper()
	fw, err := wire.NewFrameWriter(st.conn.Writer(conn), wire.WriterOptions{Codec: cd.Name(), FrameSize: wire.DefaultFrameSize, CRC32C: true})
	if err != nil {
		t.Fatal(err)
	}
	cw, err := cd.NewWriter(fw)
	if err != nil {
		t.Fatal(err)
	}
	in := st.source.Reader(src)
	if rateLimit > 0 {
		in = ratelimit.NewReader(context.Background(), in, ratelimit.NewLimiter(rateLimit, 0))
		st.rateLim = true
	}
	st.begin()
	if _, err := io.CopyBuffer(cw, st.limited.Reader(in), make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	st.end()
	return *st.final
}

func TestDonorBottleneck(t *testing.T) {
	data := testData(4 << 20)
	zstd19, err := codec.NewZstd(codec.ZstdOptions{Level: 19, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want string
		run  func(t *testing.T) stall.Report
	}{
		{"slow source", StageDonorRead, func(t *testing.T) stall.Report {
			c := &fakeClock{}
			st := newDonorStages(c.now)
			return donorPipe(t, st, &slowReader{bytes.NewReader(data), c, 10 * time.Millisecond}, codec.None(), 0, io.Discard)
		}},
		{"slow socket", StageNetwork, func(t *testing.T) stall.Report {
			c := &fakeClock{}
			st := newDonorStages(c.now)
			return donorPipe(t, st, bytes.NewReader(data), codec.None(), 0, &slowWriter{io.Discard, c, 10 * time.Millisecond})
		}},
		{"slow TLS above a fast socket", StageEncryption, func(t *testing.T) stall.Report {
			c := &fakeClock{}
			st := newDonorStages(c.now)
			st.raw = stall.New(c.now)
			return donorPipe(t, st, bytes.NewReader(data), codec.None(), 0, &slowWriter{st.raw.Writer(io.Discard), c, 10 * time.Millisecond})
		}},
		{"slow TLS socket", StageNetwork, func(t *testing.T) stall.Report {
			c := &fakeClock{}
			st := newDonorStages(c.now)
			st.raw = stall.New(c.now)
			return donorPipe(t, st, bytes.NewReader(data), codec.None(), 0, st.raw.Writer(&slowWriter{io.Discard, c, 10 * time.Millisecond}))
		}},
		{"throttled link", StageNetwork, func(t *testing.T) stall.Report {
			// Real clock: 1 MiB/s on the connection, everything else in
			// memory; the link is slower than the rest by orders of
			// magnitude.
			st := newDonorStages(nil)
			link := ratelimit.NewWriter(context.Background(), io.Discard, ratelimit.NewLimiter(1<<20, 0))
			return donorPipe(t, st, bytes.NewReader(data[:2<<20]), codec.None(), 0, link)
		}},
		{"configured rate limit", StageRateLimit, func(t *testing.T) stall.Report {
			st := newDonorStages(nil)
			return donorPipe(t, st, bytes.NewReader(data[:2<<20]), codec.None(), 1<<20, io.Discard)
		}},
		{"zstd level 19", StageCompression, func(t *testing.T) stall.Report {
			st := newDonorStages(nil)
			return donorPipe(t, st, bytes.NewReader(data), zstd19, 0, io.Discard)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.run(t)
			t.Logf("%s", limiterLine(r, "stream"))
			if r.Limiter != tt.want {
				t.Fatalf("limiter %q, want %q (%s)", r.Limiter, tt.want, r)
			}
		})
	}
}

// joinerPipe runs the joiner's receive as receiveStream composes it: net
// meter → frames → codec → dec meter → the extractor (here sink).
func joinerPipe(t *testing.T, st *joinerStages, stream io.Reader, sink io.Writer) stall.Report {
	t.Helper()
	st.begin()
	fr, err := wire.NewFrameReader(st.net.Reader(stream), wire.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cd, err := codec.Lookup(fr.Hello().Codec)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := cd.NewReader(fr)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	if _, err := io.Copy(sink, st.dec.Reader(dec)); err != nil {
		t.Fatal(err)
	}
	return st.report()
}

func TestJoinerBottleneck(t *testing.T) {
	var stream bytes.Buffer
	fw, err := wire.NewFrameWriter(&stream, wire.WriterOptions{Codec: codec.NameNone, FrameSize: wire.DefaultFrameSize, CRC32C: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(testData(4 << 20)); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		slowNet   bool
		slowSink  bool
		prepare   time.Duration
		want, sst string
	}{
		{name: "slow sink", slowSink: true, want: StageJoinerWrite, sst: StageJoinerWrite},
		{name: "slow network", slowNet: true, want: StageFromDonor, sst: StageFromDonor},
		{name: "slow network, short prepare", slowNet: true, prepare: time.Millisecond, want: StageFromDonor, sst: StageFromDonor},
		{name: "slow sink, long prepare", slowSink: true, prepare: time.Hour, want: StageJoinerWrite, sst: StagePrepare},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeClock{}
			st := newJoinerStages(c.now)
			var src io.Reader = bytes.NewReader(stream.Bytes())
			if tt.slowNet {
				src = &slowReader{src, c, 10 * time.Millisecond}
			}
			var sink io.Writer = io.Discard
			if tt.slowSink {
				sink = &slowWriter{sink, c, 10 * time.Millisecond}
			}
			r := joinerPipe(t, st, src, sink)
			t.Logf("%s", limiterLine(r, "receive"))
			if r.Limiter != tt.want {
				t.Fatalf("limiter %q, want %q (%s)", r.Limiter, tt.want, r)
			}
			if got := sstLimiter(r, tt.prepare); got != tt.sst {
				t.Fatalf("SST limiter %q, want %q", got, tt.sst)
			}
		})
	}
}

// TestDonorBottleneckSession: with a resume session the copier's wait for
// the session is split between encryption and the network as the
// session's goroutine spent its time.
func TestDonorBottleneckSession(t *testing.T) {
	tests := []struct {
		name                 string
		wait, sent, raw      time.Duration // copier in the session; session in TLS writes; socket writes
		want                 string
		wantEnc, wantNetwork float64
	}{
		{"slow socket", 8 * time.Second, 10 * time.Second, 9 * time.Second, StageNetwork, 0.08, 0.72},
		{"slow TLS", 8 * time.Second, 10 * time.Second, 1 * time.Second, StageEncryption, 0.72, 0.08},
		{"nothing sent yet", 8 * time.Second, 0, 0, StageNetwork, 0, 0.8},
		{"raw over sent (reconnect handshakes)", 8 * time.Second, 1 * time.Second, 2 * time.Second, StageNetwork, 0, 0.8},
		{"copier never waited", 0, 10 * time.Second, 1 * time.Second, StageCompression, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeClock{}
			st := newDonorStages(c.now)
			st.rawConn(nil)
			st.sessionConn(nil)
			st.begin()
			c.advance(10 * time.Second)
			st.conn.Add(tt.wait)
			st.sess.Add(tt.sent)
			st.raw.Add(tt.raw)
			st.end()
			r := *st.final
			if r.Limiter != tt.want {
				t.Errorf("limiter %q, want %q (%s)", r.Limiter, tt.want, r)
			}
			m := r.Map()
			if m[StageEncryption] != tt.wantEnc || m[StageNetwork] != tt.wantNetwork {
				t.Errorf("encryption %v network %v, want %v %v (%s)", m[StageEncryption], m[StageNetwork], tt.wantEnc, tt.wantNetwork, r)
			}
		})
	}
}
