package codec

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// testData returns n bytes of compressible but not trivial data: pseudo-random
// lines of words, the way a data file or log looks to a compressor.
func testData(n int, seed uint64) []byte {
	words := strings.Fields("galera wsrep innodb page redo log ibdata xtrabackup stream chunk donor joiner seqno uuid gtid binlog table row index 0 1 2 3 4 5 6 7 8 9")
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var b bytes.Buffer
	for b.Len() < n {
		for range 8 + rng.IntN(8) {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		b.WriteByte('\n')
	}
	return b.Bytes()[:n]
}

// must panics on error; for constructing fixtures with valid options.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func testCodecs(t testing.TB) []Codec {
	return []Codec{
		must(NewZstd(ZstdOptions{})),
		must(NewZstd(ZstdOptions{Concurrency: 1, DecoderConcurrency: 1})),
		// A small window gives 512 KiB jobs, so a few MiB exercise the
		// parallel job path, overlaps included.
		must(NewZstd(ZstdOptions{Level: 19, Window: 64 << 10, Concurrency: 3})),
		must(NewZstd(ZstdOptions{Level: 1, Window: 64 << 10, Concurrency: 2})),
		must(NewS2(S2Options{})),
		must(NewS2(S2Options{Level: "best", BlockSize: 64 << 10, Concurrency: 1})),
		None(),
	}
}

func compress(t testing.TB, c Codec, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := c.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// Write in uneven pieces to exercise buffering.
	for p := data; len(p) > 0; {
		n := min(len(p), 100_003)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decompress(c Codec, data []byte) ([]byte, error) {
	r, err := c.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 4096, 1 << 20, 3<<20 + 17}
	for _, c := range testCodecs(t) {
		for _, n := range sizes {
			data := testData(n, uint64(n))
			enc := compress(t, c, data)
			got, err := decompress(c, enc)
			if err != nil {
				t.Fatalf("%s size %d: %v", c.Name(), n, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%s size %d: round trip mismatch", c.Name(), n)
			}
			if d := DetectName(enc); n > 0 && d != c.Name() {
				t.Errorf("%s size %d: detected as %s", c.Name(), n, d)
			}
			rc, dc, err := NewDetectingReader(bytes.NewReader(enc))
			if err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s size %d: detecting reader (%s): err=%v equal=%v", c.Name(), n, dc.Name(), err, bytes.Equal(got, data))
			}
		}
	}
}

// TestCorruption flips one byte at many offsets; a compressed codec must
// report an error that names it, never return different bytes silently.
func TestCorruption(t *testing.T) {
	data := testData(300_000, 7)
	for _, c := range testCodecs(t) {
		if c.Name() == NameNone {
			continue
		}
		enc := compress(t, c, data)
		step := max(1, len(enc)/97)
		for off := 0; off < len(enc); off += step {
			bad := bytes.Clone(enc)
			bad[off] ^= 0x41
			got, err := decompress(c, bad)
			if err == nil {
				if bytes.Equal(got, data) {
					continue // flipped a bit the format ignores (e.g. reserved padding)
				}
				t.Fatalf("%s: flip at %d/%d: silent corruption", c.Name(), off, len(enc))
			}
			if !strings.HasPrefix(err.Error(), c.Name()+":") {
				t.Errorf("%s: flip at %d: error does not name the layer: %v", c.Name(), off, err)
			}
		}
	}
}

// TestTruncation cuts the stream at many offsets. zstd writes one frame with
// a checksum, so every cut is an error. s2 may end cleanly at a chunk
// boundary (that is what stream/integrity guards against); then the output
// must be a strict prefix of the input.
func TestTruncation(t *testing.T) {
	data := testData(300_000, 8)
	for _, c := range testCodecs(t) {
		if c.Name() == NameNone {
			continue
		}
		enc := compress(t, c, data)
		step := max(1, len(enc)/101)
		for cut := 0; cut < len(enc); cut += step {
			got, err := decompress(c, enc[:cut])
			switch {
			case err != nil:
			case c.Name() == NameZstd && cut > 0:
				t.Fatalf("zstd: cut at %d/%d: no error", cut, len(enc))
			case !bytes.HasPrefix(data, got) || len(got) == len(data):
				t.Fatalf("%s: cut at %d/%d: wrong output without error", c.Name(), cut, len(enc))
			}
		}
	}
}

func TestZstdWindowCap(t *testing.T) {
	big := must(NewZstd(ZstdOptions{Window: 8 << 20}))
	enc := compress(t, big, testData(2<<20, 1))
	small := must(NewZstd(ZstdOptions{MaxWindow: 1 << 20}))
	_, err := decompress(small, enc)
	if !errors.Is(err, zstd.ErrWindowSizeExceeded) && !errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		t.Fatalf("want window refused, got %v", err)
	}
}

// What `zstd --long=27` writes (a 128 MiB window) decodes with
// StockZstdMaxWindow, the zstd CLI's own default limit; the default reader
// refuses it, and any reader refuses a bigger window, with an error that
// names the limit.
func TestZstdStockWindow(t *testing.T) {
	data := testData(1<<20, 7)
	frame := func(window int) []byte {
		var buf bytes.Buffer
		e, err := zstd.NewWriter(&buf, zstd.WithWindowSize(window), zstd.WithEncoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	stock := must(NewZstd(ZstdOptions{MaxWindow: StockZstdMaxWindow}))
	if got, err := decompress(stock, frame(128<<20)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("128 MiB window with StockZstdMaxWindow: %v", err)
	}
	for _, tc := range []struct {
		c      Codec
		window int
		limit  string
	}{
		{must(NewZstd(ZstdOptions{})), 128 << 20, "64 MiB"},
		{stock, 256 << 20, "128 MiB"},
	} {
		_, err := decompress(tc.c, frame(tc.window))
		if err == nil || !strings.HasPrefix(err.Error(), "zstd: ") || !strings.Contains(err.Error(), "limit of "+tc.limit) {
			t.Fatalf("window %d MiB: want a refusal naming the %s limit, got %v", tc.window>>20, tc.limit, err)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	bad := []ZstdOptions{
		{Level: 23}, {Level: -1}, {Window: 3000}, {Window: 128 << 20}, {Concurrency: -1}, {MaxWindow: 10},
	}
	for _, o := range bad {
		if _, err := NewZstd(o); err == nil {
			t.Errorf("NewZstd(%+v): no error", o)
		}
	}
	for _, o := range []S2Options{{Level: "max"}, {BlockSize: 8 << 20}, {BlockSize: 100}, {Concurrency: -2}} {
		if _, err := NewS2(o); err == nil {
			t.Errorf("NewS2(%+v): no error", o)
		}
	}
	if _, err := Lookup("lz4"); !errors.Is(err, ErrUnknownCodec) {
		t.Errorf("Lookup(lz4) = %v", err)
	}
	for _, n := range []string{"", "zstd", "s2", "none"} {
		if _, err := Lookup(n); err != nil {
			t.Errorf("Lookup(%q): %v", n, err)
		}
	}
}

func TestDetectName(t *testing.T) {
	cases := []struct {
		in   []byte
		want string
	}{
		{nil, NameNone},
		{[]byte{0x28, 0xb5, 0x2f}, NameNone},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0}, NameZstd},
		{[]byte{0x50, 0x2a, 0x4d, 0x18}, NameZstd},
		{[]byte{0x5e, 0x2a, 0x4d, 0x18, 1, 2}, NameZstd},
		{[]byte{0x60, 0x2a, 0x4d, 0x18}, NameNone},
		{S2Magic, NameS2},
		{SnappyMagic, NameS2},
		{S2Magic[:9], NameNone},
		{[]byte("XBSTCK01"), NameNone},
	}
	for _, tc := range cases {
		if got := DetectName(tc.in); got != tc.want {
			t.Errorf("DetectName(% x) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestZstdCLI proves the zstd CLI decodes what we write, including the
// parallel-job path and the content checksum.
func TestZstdCLI(t *testing.T) {
	bin, err := exec.LookPath("zstd")
	if err != nil {
		t.Skip("zstd binary not installed")
	}
	data := testData(5<<20, 3)
	for _, o := range []ZstdOptions{{}, {Window: 64 << 10, Concurrency: 3}, {Concurrency: 1}} {
		enc := compress(t, must(NewZstd(o)), data)
		cmd := exec.Command(bin, "-d", "-c", "-q")
		cmd.Stdin = bytes.NewReader(enc)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%+v: zstd -d: %v: %s", o, err, stderr.String())
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("%+v: zstd -d output differs", o)
		}
		// The frame must carry a content checksum (frame header descriptor bit 2).
		if enc[4]&0x04 == 0 {
			t.Errorf("%+v: frame has no content checksum flag", o)
		}
	}
}

func FuzzDetectingReader(f *testing.F) {
	f.Add([]byte{})
	f.Add(compress(f, must(NewZstd(ZstdOptions{Concurrency: 1})), testData(1000, 1)))
	f.Add(compress(f, must(NewS2(S2Options{Concurrency: 1})), testData(1000, 1)))
	f.Add([]byte("XBSTCK01 plain"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rc, _, err := NewDetectingReader(bytes.NewReader(in))
		if err != nil {
			t.Fatal(err) // only read errors are possible, and bytes.Reader has none
		}
		defer rc.Close()
		// Bound the output: a tiny input can legally expand a lot.
		_, _ = io.Copy(io.Discard, io.LimitReader(rc, 16<<20))
	})
}

type failAfter struct {
	r   io.Reader
	n   int
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func (f *failAfter) Write(p []byte) (int, error) { return 0, f.err }

// TestLowerLayerErrorsPassThrough: an error from beneath the codec keeps its
// own text (it names its layer), it is not relabelled as a codec error.
func TestLowerLayerErrorsPassThrough(t *testing.T) {
	lower := errors.New("age: decrypt: chunk 3 tampered")
	data := testData(1<<20, 5)
	for _, c := range testCodecs(t) {
		if c.Name() == NameNone {
			continue
		}
		enc := compress(t, c, data)
		r, _ := c.NewReader(&failAfter{r: bytes.NewReader(enc), n: len(enc) / 2, err: lower})
		_, err := io.ReadAll(r)
		r.Close()
		if err != lower {
			t.Errorf("%s read: got %v", c.Name(), err)
		}
		w, _ := c.NewWriter(&failAfter{err: lower})
		_, err = w.Write(data)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if !errors.Is(err, lower) || !strings.HasPrefix(err.Error(), "age:") {
			t.Errorf("%s write: got %v", c.Name(), err)
		}
	}
}
