package wire

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock moves only when a test's sink says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// slowLink returns adaptive options on clock with small epochs, with no
// pipeline: each frame's mode is picked after the previous one was sent,
// so the modelled decisions are exact.
func slowLink(clock *fakeClock, epoch int64) *AdaptiveOptions {
	return &AdaptiveOptions{EpochBytes: epoch, RunEpochs: 16, Now: clock.Now, Workers: 1}
}

// pacedSink models what paces the writer from the connection's side: a
// link that takes perByte for every byte sent, and a receiver that takes
// perWrite for every frame whatever its size. perRead models the source:
// it passes between the writer's Write calls, not inside them.
type pacedSink struct {
	bytes.Buffer
	clock    *fakeClock
	perByte  time.Duration
	perWrite time.Duration
	perRead  time.Duration
}

func (s *pacedSink) Write(p []byte) (int, error) {
	s.clock.advance(s.perWrite + time.Duration(len(p))*s.perByte)
	return s.Buffer.Write(p)
}

func text(n int) []byte {
	words := strings.Fields("galera wsrep innodb page redo log donor joiner seqno uuid gtid binlog 0 1 2 3 4 5 6 7 8 9")
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		b.WriteString(words[(i*7+i/5)%len(words)])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

// TestAdaptiveChooses: against a modelled slow link (bytes cost time) the
// writer ends up compressing; against a modelled slow receiver (each frame
// costs the same whatever its size) it sends plain frames; with a slow
// source (the connection waits for data) it does not even try compressing.
// Either way the stream reads back unchanged.
func TestAdaptiveChooses(t *testing.T) {
	data := text(4 << 20)
	for _, tc := range []struct {
		name                       string
		perByte, perWrite, perRead time.Duration
		wantCompressed             bool
	}{
		{"slow link", time.Microsecond, 0, 0, true},
		{"slow receiver", 0, time.Millisecond, 0, false},
		{"slow source", 0, 0, time.Millisecond, false},
		{"slow source, fast link", time.Nanosecond, 0, time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, st := pacedStream(t, data, 16<<10, 128<<10, &pacedSink{perByte: tc.perByte, perWrite: tc.perWrite, perRead: tc.perRead})
			if st.Plain+st.S2 != int64(len(data)/(16<<10)) {
				t.Fatalf("stats %+v do not add up to %d frames", st, len(data)/(16<<10))
			}
			// The warm-up and the probes cost one epoch of each mode in
			// six; the chosen mode must hold the clear majority.
			if tc.wantCompressed && st.S2 < 3*st.Plain || !tc.wantCompressed && st.Plain < 3*st.S2 {
				t.Errorf("stats %+v, want mostly compressed=%v", st, tc.wantCompressed)
			}
			if tc.perRead > 0 && st.S2 != 0 {
				t.Errorf("stats %+v: compressed frames although the source set the pace", st)
			}
			out, fr, err := unframe(stream, ReaderOptions{})
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("round trip: err=%v equal=%v", err, bytes.Equal(out, data))
			}
			if fr.Hello().Flags != FlagCRC32C|FlagBlocks {
				t.Errorf("hello flags %#x", fr.Hello().Flags)
			}
		})
	}
}

func TestChooser(t *testing.T) {
	now := time.Unix(0, 0)
	// Decisive never: this sequence is the two-round rule's.
	c := newChooser(AdaptiveOptions{EpochBytes: 100, RunEpochs: 2, Margin: 1.1, Decisive: 100, Now: func() time.Time { return now }})
	for i, e := range []struct {
		took     time.Duration
		compress bool
	}{
		{time.Second, false},           // 0 warm-up, plain, not measured
		{10 * time.Millisecond, false}, // 1 probe: plain
		{5 * time.Millisecond, true},   // 2 probe: compressed, twice as fast
		{10 * time.Millisecond, false}, // 3 a second pair before compressing: plain
		{5 * time.Millisecond, true},   // 4 compressed wins again
		{25 * time.Millisecond, true},  // 5 run, slower than plain was: measure at once
		{10 * time.Millisecond, false}, // 6 probe: plain
		{10 * time.Millisecond, true},  // 7 probe: compressed, a tie
		{10 * time.Millisecond, false}, // 8 a tie sends plain frames
		{10 * time.Millisecond, false}, // 9 run (RunEpochs 2)
		{20 * time.Millisecond, false}, // 10 probe: plain, a slow fluke
		{10 * time.Millisecond, true},  // 11 compressed wins once: not enough
		{10 * time.Millisecond, false}, // 12 probe: plain
		{10 * time.Millisecond, true},  // 13 a tie: stay plain
		{10 * time.Millisecond, false}, // 14 run
		{40 * time.Millisecond, false}, // 15 run, far below compressed's rate: measure at once
		{10 * time.Millisecond, false}, // 16 probe: plain
		{5 * time.Millisecond, true},   // 17 compressed wins
		{10 * time.Millisecond, false}, // 18 probe: plain
		{5 * time.Millisecond, true},   // 19 and wins again
		{5 * time.Millisecond, true},   // 20 run: compressed runs RunEpochs/4 (at least 1)
		{10 * time.Millisecond, false}, // 21 probe: plain
	} {
		m := c.mode()
		got := m != modePlain
		now = now.Add(e.took)
		c.done(100, e.took, m) // the connection sets the pace
		if got != e.compress {
			t.Fatalf("epoch %d: compress=%v, want %v", i, got, e.compress)
		}
	}
}

// TestChooserSourceBound: while writes to the connection take less than
// half of the time, plain frames are sent without measuring compression;
// once the connection becomes the limit, measuring starts.
func TestChooserSourceBound(t *testing.T) {
	now := time.Unix(0, 0)
	c := newChooser(AdaptiveOptions{EpochBytes: 100, RunEpochs: 2, Now: func() time.Time { return now }})
	epoch := func(took, wait time.Duration) bool {
		m := c.mode()
		now = now.Add(took)
		c.done(100, wait, m)
		return m != modePlain
	}
	for i := range 40 {
		if epoch(10*time.Millisecond, 4*time.Millisecond) {
			t.Fatalf("epoch %d compressed while the source set the pace", i)
		}
	}
	for i, want := range []bool{false, false, true} { // link-bound plain; probe plain; probe compressed
		if got := epoch(10*time.Millisecond, 9*time.Millisecond); got != want {
			t.Fatalf("link-bound epoch %d: compress=%v, want %v", i, got, want)
		}
	}
}

// blockStream is a small stream with block frames (compressed from the
// third frame on: warm-up and plain probe are one frame each).
func blockStream(t *testing.T, data []byte) []byte {
	t.Helper()
	stream, st := pacedStream(t, data, 700, 1, &pacedSink{perByte: time.Microsecond})
	if st.S2 == 0 {
		t.Fatal("no block frames")
	}
	return stream
}

// pacedStream frames data with an adaptive writer whose clock only sink
// moves.
func pacedStream(t *testing.T, data []byte, frameSize int, epoch int64, sink *pacedSink) ([]byte, AdaptiveStats) {
	t.Helper()
	sink.clock = &fakeClock{}
	fw, err := NewFrameWriter(sink, WriterOptions{Codec: "none", FrameSize: frameSize, CRC32C: true, Adaptive: slowLink(sink.clock, epoch)})
	if err != nil {
		t.Fatal(err)
	}
	for p := data; len(p) > 0; {
		sink.clock.advance(sink.perRead)
		k := min(len(p), frameSize)
		if _, err := fw.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes(), fw.AdaptiveStats()
}

// TestBlocksDamaged: every cut and every flipped byte of a stream with
// block frames is an error naming the layer (or, in the hello, a visibly
// different hello).
func TestBlocksDamaged(t *testing.T) {
	data := text(5000)
	in := blockStream(t, data)
	helloEnd := len(Magic) + headerSize + 7 + len("none")
	for cut := range in {
		if _, _, err := unframe(in[:cut], ReaderOptions{}); err == nil || !strings.HasPrefix(err.Error(), "wire:") {
			t.Fatalf("cut at %d/%d: %v", cut, len(in), err)
		}
	}
	for off := range in {
		bad := bytes.Clone(in)
		bad[off] ^= 0x10
		out, fr, err := unframe(bad, ReaderOptions{})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "wire:") {
				t.Fatalf("flip at %d: %v", off, err)
			}
			continue
		}
		if off < helloEnd && fr.Hello().Codec != "none" && bytes.Equal(out, data) {
			continue
		}
		t.Fatalf("flip at %d/%d accepted", off, len(in))
	}
}

// TestBlockFrameNeedsFlag: a block frame in a stream whose hello did not
// announce them is malformed, and an old reader refuses the flag itself.
func TestBlockFrameNeedsFlag(t *testing.T) {
	in := build(Magic, Hello{Version: 1}, raw(FrameBlock, []byte{1, 0, 'x'}), end([]byte("x")))
	if _, _, err := unframe(in, ReaderOptions{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	in = build(Magic, Hello{Version: 1, Flags: 0x0008}, end(nil))
	if _, _, err := unframe(in, ReaderOptions{}); !errors.Is(err, ErrVersion) {
		t.Fatalf("unknown flag: err = %v, want ErrVersion", err)
	}
}

// TestChooserRunGrows: each probe round that confirms the compressed mode
// doubles its run, up to RunEpochs, so that a clearly slow link pays for
// fewer plain probes; once plain wins, a later compressed mode starts
// again from a quarter.
func TestChooserRunGrows(t *testing.T) {
	now := time.Unix(0, 0)
	c := newChooser(AdaptiveOptions{EpochBytes: 100, RunEpochs: 8, Decisive: 100, Now: func() time.Time { return now }})
	var got strings.Builder
	epoch := func(plain, compressed time.Duration) {
		took := plain
		mark := byte('P')
		m := c.mode()
		if m != modePlain {
			took, mark = compressed, 'C'
		}
		got.WriteByte(mark)
		now = now.Add(took)
		c.done(100, took, m) // the connection sets the pace
	}
	for range 30 {
		epoch(10*time.Millisecond, 5*time.Millisecond) // compressing wins
	}
	got.WriteByte(' ')
	for range 12 {
		epoch(5*time.Millisecond, 10*time.Millisecond) // now plain wins
	}
	got.WriteByte(' ')
	for range 9 {
		epoch(10*time.Millisecond, 5*time.Millisecond)
	}
	// Warm-up, two probe rounds, a run of 2, probe, 4, probe, 8, probe,
	// 8 (the cap). Then plain gets faster: the run ends, the probe picks
	// plain, which runs RunEpochs. Compressing wins again: two rounds,
	// and its run starts again from 2.
	const want = "PPCPC" + "CC" + "PC" + "CCCC" + "PC" + "CCCCCCCC" + "PC" + "CCCCC" +
		" " + "CCC" + "PC" + "PPPPPPP" +
		" " + "P" + "PCPC" + "CC" + "PC"
	if got.String() != want {
		t.Fatalf("modes\n got %s\nwant %s", got.String(), want)
	}
}

// TestChooserEpochTime: an epoch ends after EpochBytes, or after EpochTime
// once it holds EpochBytes/16: a slow link measures in seconds, not in
// the minutes 64 MiB would take.
func TestChooserEpochTime(t *testing.T) {
	for _, tc := range []struct {
		name     string
		perChunk time.Duration // for 10 bytes
		want     int           // chunks in the warm-up epoch
	}{
		{"fast: the byte cap (the warm-up's is a quarter)", time.Millisecond, 40},
		{"slow: the time cap", 50 * time.Millisecond, 20},
		{"very slow: at least a sixteenth of the bytes", 300 * time.Millisecond, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			c := newChooser(AdaptiveOptions{EpochBytes: 1600, EpochTime: time.Second, Now: func() time.Time { return now }})
			for i := 1; i <= 1000; i++ {
				m := c.mode()
				now = now.Add(tc.perChunk)
				c.done(10, tc.perChunk, m) // link-bound: the probes follow
				if c.probing {
					if i != tc.want {
						t.Fatalf("warm-up epoch ended after %d chunks, want %d", i, tc.want)
					}
					return
				}
			}
			t.Fatal("the warm-up epoch never ended")
		})
	}
}

// TestChooserEpochStartsAtEnd: the next epoch starts when the last one
// ended, not at the next mode(): a pipeline's frames picked earlier can be
// done before that, and an epoch timed from the zero time would end at
// once with a rate of almost nothing.
func TestChooserEpochStartsAtEnd(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newChooser(AdaptiveOptions{EpochBytes: 1600, EpochTime: time.Second, Now: func() time.Time { return now }})
	m := c.mode()
	for i := 1; ; i++ {
		now = now.Add(time.Millisecond)
		c.done(10, time.Millisecond, m) // no mode() in between
		if c.probing {
			if i != 40 { // a quarter epoch
				t.Fatalf("warm-up ended after %d frames, want 40", i)
			}
			break
		}
	}
	for i := 1; i <= 1000; i++ { // the plain probe, still without mode()
		now = now.Add(time.Millisecond)
		c.done(10, time.Millisecond, m)
		if c.rate[modePlain] != 0 {
			if i != 160 || c.rate[modePlain] < 9000 {
				t.Fatalf("plain probe ended after %d frames at %.0f B/s, want 160 at 10000", i, c.rate[modePlain])
			}
			return
		}
	}
	t.Fatal("the plain probe never ended")
}

// TestChooserDecisive: a compressed mode 1.5 times as fast as plain or
// more is chosen after one measuring round and first runs RunEpochs/2;
// a smaller win needs the second round and first runs RunEpochs/4.
func TestChooserDecisive(t *testing.T) {
	for _, tc := range []struct {
		name       string
		compressed time.Duration // plain takes 10 ms
		want       string
	}{
		// warm-up, P C decisive, run 4 (RunEpochs/2), probe P C, run 8
		{"twice as fast", 5 * time.Millisecond, "P" + "PC" + "CCCC" + "PC" + "CCCCCCCC"},
		// warm-up, P C, P C, run 2 (RunEpochs/4), probe P C, run 4
		{"a fifth faster", 8 * time.Millisecond, "P" + "PC" + "PC" + "CC" + "PC" + "CCCC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			c := newChooser(AdaptiveOptions{EpochBytes: 100, RunEpochs: 8, Now: func() time.Time { return now }})
			var got strings.Builder
			for range len(tc.want) {
				m := c.mode()
				took := 10 * time.Millisecond
				if m != modePlain {
					took = tc.compressed
					got.WriteByte('C')
				} else {
					got.WriteByte('P')
				}
				now = now.Add(took)
				c.done(100, took, m)
			}
			if got.String() != tc.want {
				t.Fatalf("modes\n got %s\nwant %s", got.String(), tc.want)
			}
		})
	}
}
