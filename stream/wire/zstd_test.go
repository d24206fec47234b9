package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/gosst/gosst/internal/testrows"
)

// TestChooserModes: the three-mode decision, fed measured epoch times.
// The fake clock moves by the time each mode's epoch takes; the writes to
// the connection take all of it (the link sets the pace) unless the case
// says the source did.
func TestChooserModes(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name         string
		zstd         bool
		took         [3]time.Duration // per epoch: plain, S2, zstd
		sourceBound  bool
		want         int
		wantNoProbes bool
	}{
		{name: "slow link: zstd", zstd: true, took: [3]time.Duration{10 * ms, 8 * ms, 4 * ms}, want: modeZstd},
		{name: "medium, S2 measured faster: S2", zstd: true, took: [3]time.Duration{10 * ms, 5 * ms, 6 * ms}, want: modeS2},
		{name: "medium, zstd measured faster: zstd", zstd: true, took: [3]time.Duration{10 * ms, 6 * ms, 5 * ms}, want: modeZstd},
		// Rates plain 100, S2 105, zstd 115: zstd beats plain by the
		// margin though not S2, and S2 alone does not beat plain.
		{name: "only zstd beats plain by the margin: zstd", zstd: true, took: [3]time.Duration{10 * ms, 10 * ms * 100 / 105, 10 * ms * 100 / 115}, want: modeZstd},
		{name: "zstd faster within the margin: S2", zstd: true, took: [3]time.Duration{10 * ms, 5 * ms, 48 * ms / 10}, want: modeS2},
		{name: "fast link, CPU-bound: plain", zstd: true, took: [3]time.Duration{10 * ms, 12 * ms, 15 * ms}, want: modePlain},
		{name: "tie: plain", zstd: true, took: [3]time.Duration{10 * ms, 10 * ms, 10 * ms}, want: modePlain},
		{name: "compressing within the margin: plain", zstd: true, took: [3]time.Duration{10 * ms, 95 * ms / 10, 95 * ms / 10}, want: modePlain},
		{name: "source sets the pace: plain, no probes", zstd: true, took: [3]time.Duration{10 * ms, 4 * ms, 2 * ms}, sourceBound: true, want: modePlain, wantNoProbes: true},
		{name: "no zstd offered: S2", took: [3]time.Duration{10 * ms, 8 * ms, 4 * ms}, want: modeS2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			c := newChooser(AdaptiveOptions{EpochBytes: 100, RunEpochs: 8, Zstd: tc.zstd, Now: func() time.Time { return now }})
			var sent [3]int
			last := -1
			for range 60 {
				m := c.mode()
				if m == modeZstd && !tc.zstd {
					t.Fatal("zstd chosen although not offered")
				}
				sent[m]++
				took := tc.took[m]
				wait := took
				if tc.sourceBound {
					wait = took / 4
				}
				now = now.Add(took)
				c.done(100, wait, m)
				if !c.probing {
					last = c.cur
				}
			}
			if last != tc.want {
				t.Errorf("settled on mode %d, want %d (epochs by mode %v)", last, tc.want, sent)
			}
			if sent[tc.want] < 60/2 {
				t.Errorf("epochs by mode %v: mode %d does not hold the majority", sent, tc.want)
			}
			if tc.wantNoProbes && sent[modePlain] != 60 {
				t.Errorf("epochs by mode %v: probed although the source set the pace", sent)
			}
		})
	}
}

// TestAdaptiveZstd: against a modelled slow link, a writer allowed zstd
// blocks sends more of those than of the rest for digit rows (zstd shrinks them twice as
// much as S2), announces FlagZstdBlocks, and the stream reads back
// unchanged; without Zstd it never sends one.
func TestAdaptiveZstd(t *testing.T) {
	data := testrows.Digits(4<<20, 1, 2, 2)
	for _, allow := range []bool{true, false} {
		sink := &pacedSink{perByte: time.Microsecond, clock: &fakeClock{}}
		o := slowLink(sink.clock, 128<<10)
		o.Zstd = allow
		fw, err := NewFrameWriter(sink, WriterOptions{Codec: "none", FrameSize: 16 << 10, CRC32C: true, Adaptive: o})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := fw.Close(); err != nil {
			t.Fatal(err)
		}
		st := fw.AdaptiveStats()
		if st.Plain+st.S2+st.Zstd != int64(len(data)/(16<<10)) {
			t.Fatalf("stats %+v do not add up", st)
		}
		if allow && st.Zstd < st.Plain+st.S2 || !allow && st.Zstd != 0 {
			t.Errorf("zstd allowed=%v: stats %+v", allow, st)
		}
		out, fr, err := unframe(sink.Bytes(), ReaderOptions{})
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("round trip: err=%v equal=%v", err, bytes.Equal(out, data))
		}
		want := FlagCRC32C | FlagBlocks
		if allow {
			want |= FlagZstdBlocks
		}
		if fr.Hello().Flags != want {
			t.Errorf("hello flags %#x, want %#x", fr.Hello().Flags, want)
		}
	}
}

func zstdFrame(t testing.TB, data []byte) []byte {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	return e.EncodeAll(data, nil)
}

// TestZstdBlockBounds: a zstd block frame is refused unless the hello
// announced FlagZstdBlocks, and one that decodes to more than the frame
// size limit (whatever its header says), to nothing, or to garbage is
// malformed, never a large allocation.
func TestZstdBlockBounds(t *testing.T) {
	small := zstdFrame(t, []byte("galera"))
	huge := zstdFrame(t, make([]byte, 8<<20)) // a few hundred bytes on the wire
	twice := append(zstdFrame(t, make([]byte, 3000)), zstdFrame(t, make([]byte, 3000))...)
	zs := Hello{Version: 1, Flags: FlagZstdBlocks}
	for _, tc := range []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"zstd frame without the flag", build(Magic, Hello{Version: 1, Flags: FlagBlocks}, raw(FrameBlockZstd, small), end(small)), 0, ErrMalformed},
		{"decodes past the limit", build(Magic, zs, raw(FrameBlockZstd, huge), end(huge)), 0, ErrMalformed},
		{"two frames past a small limit", build(Magic, zs, raw(FrameBlockZstd, twice), end(twice)), 4096, ErrMalformed},
		{"empty block", build(Magic, zs, raw(FrameBlockZstd, nil), end(nil)), 0, ErrMalformed},
		{"garbage", build(Magic, zs, raw(FrameBlockZstd, []byte("not zstd")), end([]byte("not zstd"))), 0, ErrMalformed},
		{"empty content", build(Magic, zs, raw(FrameBlockZstd, zstdFrame(t, nil)), end(zstdFrame(t, nil))), 0, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := unframe(tc.in, ReaderOptions{MaxFrameSize: tc.max})
			if !errors.Is(err, tc.want) || !strings.HasPrefix(err.Error(), "wire:") {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	out, _, err := unframe(build(Magic, zs, raw(FrameBlockZstd, small), end(small)), ReaderOptions{})
	if err != nil || string(out) != "galera" {
		t.Fatalf("valid zstd block: %q, %v", out, err)
	}
}

// TestChooserZstdSequence: epoch by epoch, the three-mode chooser on a
// slow link measures all modes once, then plain against the winner only,
// runs zstd, and when zstd turns slow (the link got fast) goes back to
// plain at once and later measures all modes again.
func TestChooserZstdSequence(t *testing.T) {
	now := time.Unix(0, 0)
	// Decisive never: this sequence is the two-round rule's.
	c := newChooser(AdaptiveOptions{EpochBytes: 100, RunEpochs: 8, Zstd: true, Decisive: 100, Now: func() time.Time { return now }})
	slow := [3]time.Duration{10 * time.Millisecond, 9 * time.Millisecond, 4 * time.Millisecond}
	fast := [3]time.Duration{10 * time.Millisecond, 15 * time.Millisecond, 20 * time.Millisecond}
	const P, S, Z = modePlain, modeS2, modeZstd
	for i, e := range []struct {
		link [3]time.Duration
		want int
	}{
		{slow, P},                       // 0 warm-up
		{slow, P}, {slow, S}, {slow, Z}, // 1-3 round: all modes; zstd wins once
		{slow, P}, {slow, Z}, // 4-5 round: plain against zstd only; zstd wins twice
		{slow, Z}, {slow, Z}, // 6-7 run (RunEpochs/4)
		{slow, P}, {slow, Z}, // 8-9 measured again: plain against zstd
		{slow, Z},            // 10 run
		{fast, Z},            // 11 run, slower than plain's measurement: measure at once
		{fast, P}, {fast, Z}, // 12-13 plain wins
		{fast, P}, {fast, P}, {fast, P}, {fast, P}, {fast, P}, {fast, P}, {fast, P}, {fast, P}, // 14-21 run (RunEpochs)
		{fast, P}, {fast, S}, {fast, Z}, // 22-24 all modes compete anew
		{fast, P}, // 25 plain
	} {
		got := c.mode()
		now = now.Add(e.link[got])
		c.done(100, e.link[got], got)
		if got != e.want {
			t.Fatalf("epoch %d: mode %d, want %d", i, got, e.want)
		}
	}
}
