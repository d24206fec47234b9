package integrity

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/stream/codec"
)

func testData(n int, seed uint64) []byte {
	words := strings.Fields("ibdata1 redo undo page lsn checkpoint wsrep seqno donor joiner 0 1 2 3 4 5 6 7 8 9")
	rng := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(" \n"[rng.IntN(2)])
	}
	return b.Bytes()[:n]
}

func codecs(t testing.TB) []codec.Codec {
	z, err := codec.NewZstd(codec.ZstdOptions{Concurrency: 1, DecoderConcurrency: 1, Window: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	zp, err := codec.NewZstd(codec.ZstdOptions{Concurrency: 2, Window: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	s, err := codec.NewS2(codec.S2Options{Concurrency: 1, BlockSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return []codec.Codec{z, zp, s}
}

func seal(t testing.TB, c codec.Codec, data []byte) ([]byte, Sum) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.StoredSize() != int64(buf.Len()) {
		t.Fatalf("StoredSize %d, wrote %d", w.StoredSize(), buf.Len())
	}
	return buf.Bytes(), w.Sum()
}

func open(c codec.Codec, stored []byte, opts ...Option) ([]byte, Sum, error) {
	r, err := NewReader(bytes.NewReader(stored), c, opts...)
	if err != nil {
		return nil, Sum{}, err
	}
	defer r.Close()
	out, err := io.ReadAll(r)
	return out, r.Sum(), err
}

func TestRoundTrip(t *testing.T) {
	for _, c := range codecs(t) {
		for _, n := range []int{0, 1, 5000, 1 << 20} {
			data := testData(n, uint64(n))
			stored, sum := seal(t, c, data)
			if sum.Size != int64(n) || sum.SHA256 != sha256.Sum256(data) {
				t.Fatalf("%s: writer sum %v wrong", c.Name(), sum)
			}
			got, rsum, err := open(c, stored)
			if err != nil || !bytes.Equal(got, data) || rsum != sum {
				t.Fatalf("%s size %d: err=%v equal=%v", c.Name(), n, err, bytes.Equal(got, data))
			}
			// With the manifest's sum too, and detected.
			r, err := NewDetectingReader(bytes.NewReader(stored), WithExpected(sum))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) || r.Codec() != c.Name() {
				t.Fatalf("%s detecting: %v (%s)", c.Name(), err, r.Codec())
			}
			r.Close()
			// The codec's own reader skips the marker: the format stays
			// readable without this package.
			dec, _ := c.NewReader(bytes.NewReader(stored))
			got, err = io.ReadAll(dec)
			dec.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: plain decoder does not skip the marker: %v", c.Name(), err)
			}
		}
	}
}

func TestNone(t *testing.T) {
	data := testData(10000, 3)
	stored, sum := seal(t, codec.None(), data)
	if !bytes.Equal(stored, data) {
		t.Fatal("codec none must store the bytes unchanged")
	}
	if _, _, err := open(codec.None(), stored); !errors.Is(err, ErrNoMarker) {
		t.Fatalf("no expected sum: %v", err)
	}
	if got, _, err := open(codec.None(), stored, WithExpected(sum)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("none round trip: %v", err)
	}
	for _, bad := range [][]byte{stored[:len(stored)-1], append(bytes.Clone(stored), 0), func() []byte { b := bytes.Clone(stored); b[5] ^= 1; return b }()} {
		if _, _, err := open(codec.None(), bad, WithExpected(sum)); !errors.Is(err, ErrMismatch) {
			t.Errorf("none altered: %v", err)
		}
	}
}

// errLayer says whether err names the layer that failed: the codec or the
// integrity check.
func errLayer(err error, codecName string) bool {
	s := err.Error()
	return strings.HasPrefix(s, codecName+":") || strings.HasPrefix(s, "integrity:")
}

func TestFlippedByte(t *testing.T) {
	data := testData(200_000, 9)
	for _, c := range codecs(t) {
		stored, _ := seal(t, c, data)
		markerAt := len(stored) - MarkerPayloadSize - 8
		offsets := []int{}
		for off := 0; off < len(stored); off += max(1, len(stored)/120) {
			offsets = append(offsets, off)
		}
		for off := max(0, markerAt-16); off < len(stored); off++ { // every byte of the marker
			offsets = append(offsets, off)
		}
		for _, off := range offsets {
			bad := bytes.Clone(stored)
			bad[off] ^= 0x10
			_, _, err := open(c, bad)
			if err == nil {
				t.Fatalf("%s: flip at %d/%d accepted", c.Name(), off, len(stored))
			}
			if !errLayer(err, c.Name()) {
				t.Errorf("%s: flip at %d: error does not name the layer: %v", c.Name(), off, err)
			}
			if off >= len(stored)-MarkerPayloadSize && !errors.Is(err, ErrCorruptMarker) {
				t.Errorf("%s: flip in marker payload at %d: want ErrCorruptMarker, got %v", c.Name(), off, err)
			}
		}
	}
}

func TestTruncation(t *testing.T) {
	data := testData(300_000, 10)
	for _, c := range codecs(t) {
		stored, _ := seal(t, c, data)
		cuts := []int{0, 1, 4, 10}
		for cut := 0; cut < len(stored); cut += max(1, len(stored)/150) {
			cuts = append(cuts, cut)
		}
		for cut := len(stored) - 200; cut < len(stored); cut++ {
			cuts = append(cuts, cut)
		}
		for _, cut := range cuts {
			_, _, err := open(c, stored[:cut])
			if err == nil {
				t.Fatalf("%s: cut at %d/%d accepted", c.Name(), cut, len(stored))
			}
			if !errLayer(err, c.Name()) {
				t.Errorf("%s: cut at %d: %v", c.Name(), cut, err)
			}
		}
	}
}

func TestExtraData(t *testing.T) {
	data := testData(50_000, 11)
	for _, c := range codecs(t) {
		stored, sum := seal(t, c, data)
		other, _ := seal(t, c, testData(100, 1))
		marker := stored[len(stored)-MarkerPayloadSize-8:]
		if c.Name() == codec.NameS2 {
			marker = stored[len(stored)-MarkerPayloadSize-4:]
		}
		cases := map[string][]byte{
			"one zero byte":    append(bytes.Clone(stored), 0),
			"marker twice":     append(bytes.Clone(stored), marker...),
			"second stream":    append(bytes.Clone(stored), other...),
			"stream prepended": append(bytes.Clone(other), stored...),
		}
		for name, in := range cases {
			if _, _, err := open(c, in); err == nil || !errLayer(err, c.Name()) {
				t.Errorf("%s %s: %v", c.Name(), name, err)
			}
		}
		wrong := sum
		wrong.SHA256[0] ^= 1
		if _, _, err := open(c, stored, WithExpected(wrong)); !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: manifest mismatch: %v", c.Name(), err)
		}
	}
}

func TestMarkerVersioning(t *testing.T) {
	m := Marker{Version: MarkerVersion, Size: 5, Stored: 7, SHA256: sha256.Sum256([]byte("hello"))}
	p := m.AppendPayload(nil)
	if got, err := ParseMarker(p); err != nil || got != m {
		t.Fatalf("parse: %+v %v", got, err)
	}
	reseal := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
		return b
	}
	cases := []struct {
		name string
		mod  func([]byte) []byte
		want error
	}{
		{"version 2", func(b []byte) []byte { b[4] = 2; return reseal(b) }, ErrUnsupportedVersion},
		{"unknown flag", func(b []byte) []byte { b[5] = 1; return reseal(b) }, ErrCorruptMarker},
		{"reserved", func(b []byte) []byte { b[7] = 1; return reseal(b) }, ErrCorruptMarker},
		{"bad crc", func(b []byte) []byte { b[10] ^= 1; return b }, ErrCorruptMarker},
		{"bad id", func(b []byte) []byte { b[0] = 'X'; return reseal(b) }, ErrCorruptMarker},
		{"short", func(b []byte) []byte { return b[:63] }, ErrCorruptMarker},
	}
	for _, tc := range cases {
		if _, err := ParseMarker(tc.mod(bytes.Clone(p))); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := ParseContainer(codec.NameZstd, make([]byte, 72)); !errors.Is(err, ErrMissingMarker) {
		t.Errorf("zeros as container: %v", err)
	}
	if _, err := AppendContainer(nil, codec.NameNone, m); err == nil {
		t.Error("container for none")
	}
}

// TestZstdCLIIgnoresMarker proves `zstd -d` decodes a sealed stream: the
// marker is a skippable frame to it.
func TestZstdCLIIgnoresMarker(t *testing.T) {
	bin, err := exec.LookPath("zstd")
	if err != nil {
		t.Skip("zstd binary not installed")
	}
	data := testData(1<<20, 12)
	stored, _ := seal(t, codecs(t)[1], data)
	cmd := exec.Command(bin, "-d", "-c", "-q")
	cmd.Stdin = bytes.NewReader(stored)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("zstd -d: %v %s (equal %v)", err, stderr.String(), bytes.Equal(out, data))
	}
}

func FuzzParseMarker(f *testing.F) {
	m := Marker{Version: 1, Size: 3, Stored: 12, SHA256: sha256.Sum256([]byte("abc"))}
	z, _ := AppendContainer(nil, codec.NameZstd, m)
	s, _ := AppendContainer(nil, codec.NameS2, m)
	f.Add(z)
	f.Add(s)
	f.Add(m.AppendPayload(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, err := ParseMarker(b); err == nil {
			if !bytes.Equal(got.AppendPayload(nil), b) {
				t.Fatal("accepted payload does not re-encode to itself")
			}
		}
		for _, name := range []string{codec.NameZstd, codec.NameS2} {
			if got, err := ParseContainer(name, b); err == nil {
				if enc, _ := AppendContainer(nil, name, got); !bytes.Equal(enc, b) {
					t.Fatalf("%s: accepted container does not re-encode to itself", name)
				}
			}
		}
	})
}

// FuzzReader feeds arbitrary bytes to the sealed reader. Run it with
// -fuzzminimizetime=1s: minimising an interesting input decodes up to 1 MiB
// per candidate and otherwise eats the whole -fuzztime without new executions.
// A watchdog turns any single input that takes over 5 s into a crash.
func FuzzReader(f *testing.F) {
	for _, c := range codecs(f) {
		stored, _ := seal(f, c, testData(3000, 1))
		f.Add(stored)
	}
	f.Add([]byte{})
	// Small limits keep each execution cheap: a hostile header may ask for a
	// large window, and a few bytes may legally expand to a lot of output.
	z, err := codec.NewZstd(codec.ZstdOptions{Concurrency: 1, DecoderConcurrency: 1, MaxWindow: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	s2c, err := codec.NewS2(codec.S2Options{Concurrency: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		wd := time.AfterFunc(5*time.Second, func() { panic(fmt.Sprintf("hang on % x", in)) })
		defer wd.Stop()
		var c codec.Codec
		switch codec.DetectName(in) {
		case codec.NameZstd:
			c = z
		case codec.NameS2:
			c = s2c
		default:
			if _, err := NewReader(bytes.NewReader(in), codec.None()); !errors.Is(err, ErrNoMarker) {
				t.Fatalf("none without expected sum: %v", err)
			}
			return
		}
		r, err := NewReader(bytes.NewReader(in), c)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		const limit = 1 << 20
		h := sha256.New()
		n, err := io.Copy(h, io.LimitReader(r, limit))
		if err != nil || n == limit {
			return
		}
		// Accepted: the output must be exactly what the marker promised.
		size, _ := containerSize(r.Codec())
		m, err := ParseContainer(r.Codec(), in[len(in)-size:])
		if err != nil || m.Size != uint64(n) || !bytes.Equal(m.SHA256[:], h.Sum(nil)) || m.Stored != uint64(len(in)-size) {
			t.Fatalf("accepted a stream that its marker does not describe: %v", err)
		}
		if !r.Sealed() {
			t.Fatal("accepted by the strict reader but not Sealed")
		}
	})
}

// FuzzOptionalMarker feeds arbitrary bytes to a zstd reader with
// WithOptionalMarker. What it accepts must be either sealed and described
// by its marker, or unsealed and exactly what the plain zstd decoder makes
// of all the bytes (nothing held back, nothing added).
func FuzzOptionalMarker(f *testing.F) {
	z, err := codec.NewZstd(codec.ZstdOptions{Concurrency: 1, DecoderConcurrency: 1, MaxWindow: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	data := testData(3000, 2)
	sealed, _ := seal(f, z, data)
	f.Add(sealed)
	f.Add(sealed[:len(sealed)-zstdMarkerSize])
	two, _ := compressPlain(f, z, data, 2)
	f.Add(two)
	empty, _ := compressPlain(f, z, nil, 1)
	f.Add(empty)
	f.Fuzz(func(t *testing.T, in []byte) {
		wd := time.AfterFunc(5*time.Second, func() { panic(fmt.Sprintf("hang on % x", in)) })
		defer wd.Stop()
		const limit = 1 << 20
		r, err := NewReader(bytes.NewReader(in), z, WithOptionalMarker())
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		out, err := io.ReadAll(io.LimitReader(r, limit))
		if err != nil || len(out) == limit {
			return
		}
		if r.Sealed() {
			m, err := ParseContainer(codec.NameZstd, in[len(in)-zstdMarkerSize:])
			if err != nil || m.Size != uint64(len(out)) || m.SHA256 != sha256.Sum256(out) || m.Stored != uint64(len(in)-zstdMarkerSize) {
				t.Fatalf("accepted a sealed stream that its marker does not describe: %v", err)
			}
			return
		}
		d, err := z.NewReader(bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		want, err := io.ReadAll(io.LimitReader(d, limit+1))
		if err != nil || !bytes.Equal(out, want) {
			t.Fatalf("unsealed stream accepted with %d bytes; the plain decoder gives %d bytes, %v", len(out), len(want), err)
		}
	})
}

// TestAbortWritesNoMarker: an aborted stream must read as truncated.
func TestAbortWritesNoMarker(t *testing.T) {
	for _, c := range codecs(t) {
		for _, n := range []int{5000, 1 << 20} { // nothing emitted yet; blocks already out
			var b bytes.Buffer
			w, err := NewWriter(&b, c)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(testData(n, 3))
			w.Abort()
			if err := w.Close(); !errors.Is(err, ErrAborted) {
				t.Fatalf("%s: Close after Abort: %v", c.Name(), err)
			}
			r, err := NewReader(bytes.NewReader(b.Bytes()), c)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(r); err == nil {
				t.Fatalf("%s: an aborted stream read back as complete", c.Name())
			}
			if c.Name() != codec.NameZstd {
				continue // an s2 stream has no end of its own: only the marker tells
			}
			// Nor may a reader without the marker (stream decode of a stock
			// zstd file, or zstd -d) take it for complete: the frame must
			// stay unfinished, not be closed with its last block and
			// checksum.
			r, err = NewReader(bytes.NewReader(b.Bytes()), c, WithOptionalMarker())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(r); err == nil {
				t.Fatalf("%s, %d bytes: an aborted stream (%d stored bytes) read back as complete with the marker optional", c.Name(), n, b.Len())
			}
			if b.Len() == 0 {
				continue // zstd -d refuses an empty input (the Go decoder does not)
			}
			d, err := c.NewReader(bytes.NewReader(b.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadAll(d)
			d.Close()
			if err == nil {
				t.Fatalf("%s, %d bytes: a plain decoder reads an aborted stream as a complete frame", c.Name(), n)
			}
		}
	}
}

// compressPlain compresses data with c's own writer: no end marker, as the
// stock zstd CLI writes it. frames > 1 concatenates that many frames. It
// also returns the offsets where frames end.
func compressPlain(t testing.TB, c codec.Codec, data []byte, frames int) ([]byte, map[int]bool) {
	t.Helper()
	var buf bytes.Buffer
	ends := map[int]bool{}
	step := len(data)/frames + 1
	for i := 0; i < frames; i++ {
		w, err := c.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		part := data[min(i*step, len(data)):min((i+1)*step, len(data))]
		if _, err := w.Write(part); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		ends[buf.Len()] = true
	}
	return buf.Bytes(), ends
}

// A zstd stream without an end marker (what `zstd -c` writes) must not lose
// its last bytes: the strict reader says the marker is missing (not that the
// zstd data is truncated), and WithOptionalMarker decodes all of it.
func TestOptionalMarker(t *testing.T) {
	z := codecs(t)[0]
	for _, tc := range []struct {
		name   string
		size   int
		frames int
	}{
		{"empty", 0, 1},             // 13 bytes: shorter than a marker
		{"tiny", 10, 1},             // still shorter than a marker
		{"one frame", 300_000, 1},   //
		{"two frames", 300_000, 2},  // `cat a.zst b.zst`
		{"many frames", 100_000, 7}, //
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := testData(tc.size, uint64(tc.size))
			plain, frameEnds := compressPlain(t, z, data, tc.frames)

			_, _, err := open(z, plain)
			if !errors.Is(err, ErrMissingMarker) {
				t.Fatalf("strict reader of an unsealed stream: want ErrMissingMarker, got %v", err)
			}

			r, err := NewReader(bytes.NewReader(plain), z, WithOptionalMarker())
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("optional marker: %v (got %d of %d bytes)", err, len(got), len(data))
			}
			if r.Sealed() {
				t.Fatal("Sealed() true for a stream without a marker")
			}
			if r.Sum().Size != int64(len(data)) {
				t.Fatalf("Sum size %d", r.Sum().Size)
			}

			// A cut anywhere but at a frame boundary is still an error
			// (at a boundary it cannot be told from the end: zstd -d
			// cannot either).
			for cut := 1; cut < len(plain); cut += max(1, len(plain)/97) {
				if frameEnds[cut] {
					continue
				}
				if _, _, err := open(z, plain[:cut], WithOptionalMarker()); err == nil || !errLayer(err, z.Name()) {
					t.Fatalf("cut at %d/%d: %v", cut, len(plain), err)
				}
			}
			for _, junk := range [][]byte{{0}, []byte("garbage after the frame")} {
				if _, _, err := open(z, append(bytes.Clone(plain), junk...), WithOptionalMarker()); err == nil {
					t.Fatalf("%q appended: accepted", junk)
				}
			}
		})
	}
}

// With WithOptionalMarker a sealed stream is still held to its marker:
// every cut but the one exactly before the marker, and every flipped byte,
// is an error.
func TestOptionalMarkerStillChecksSealed(t *testing.T) {
	z := codecs(t)[1]
	data := testData(200_000, 13)
	stored, sum := seal(t, z, data)
	frameEnd := len(stored) - zstdMarkerSize

	r, err := NewReader(bytes.NewReader(stored), z, WithOptionalMarker())
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) || !r.Sealed() || r.Sum() != sum {
		t.Fatalf("sealed stream, optional marker: err %v, equal %v, sealed %v", err, bytes.Equal(got, data), r.Sealed())
	}

	for off := max(0, frameEnd-16); off < len(stored); off++ {
		for _, bit := range []byte{0x01, 0x10, 0x80} {
			bad := bytes.Clone(stored)
			bad[off] ^= bit
			if _, _, err := open(z, bad, WithOptionalMarker()); err == nil {
				t.Fatalf("flip %02x at %d (marker starts at %d) accepted", bit, off, frameEnd)
			}
		}
	}
	for cut := frameEnd - 200; cut < len(stored); cut++ {
		_, _, err := open(z, stored[:cut], WithOptionalMarker())
		if cut == frameEnd {
			// Exactly the marker lost: the one frame is complete and its
			// checksum verified, so this reads as an unsealed stream.
			if err != nil {
				t.Fatalf("cut before the marker: %v", err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("cut at %d/%d accepted", cut, len(stored))
		}
	}
}
