package xbstream

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
)

// docHexdump is the first 0x60 bytes of `mbstream -c a.txt empty.dat
// sub/r.bin` as shown in xbstream-format.md §3.1.
const docHexdump = "58425354434b3031005005000000612e" +
	"7478740f000000000000000000000000" +
	"000000d2e2850568656c6c6f20786273" +
	"747265616d0a58425354434b30310045" +
	"05000000612e74787458425354434b30" +
	"3100450900000065 6d7074792e646174"

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readAll(t *testing.T, stream []byte) ([]Chunk, error) {
	t.Helper()
	r := NewReader(bytes.NewReader(stream))
	var out []Chunk
	for {
		c, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		cc := *c
		cc.Payload = bytes.Clone(c.Payload)
		out = append(out, cc)
	}
}

func TestReaderDocHexdump(t *testing.T) {
	chunks, err := readAll(t, mustHex(t, docHexdump))
	if err != nil {
		t.Fatal(err)
	}
	want := []Chunk{
		{Type: TypePayload, Path: "a.txt", Payload: []byte("hello xbstream\n"), Checksum: 0x0585E2D2},
		{Type: TypeEOF, Path: "a.txt", StreamOffset: 0x36},
		{Type: TypeEOF, Path: "empty.dat", StreamOffset: 0x49},
	}
	if len(chunks) != len(want) {
		t.Fatalf("got %d chunks, want %d", len(chunks), len(want))
	}
	for i := range want {
		g, w := chunks[i], want[i]
		if g.Type != w.Type || g.Path != w.Path || !bytes.Equal(g.Payload, w.Payload) ||
			g.Checksum != w.Checksum || g.StreamOffset != w.StreamOffset || g.Offset != 0 {
			t.Errorf("chunk %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestReaderRealFixtures(t *testing.T) {
	for _, tc := range []struct {
		file   string
		chunks int
		paths  []string
	}{
		{"testdata/mbstream-c.xbs", 5, []string{"a.txt", "empty.dat", "sub/r.bin"}},
		{"testdata/mariabackup-10.11.19-small.xbs", 56, []string{"aria_log_control", "t1/i.new", "xtrabackup_checkpoints", "xtrabackup_info"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			chunks, err := readAll(t, b)
			if err != nil {
				t.Fatal(err)
			}
			if len(chunks) != tc.chunks {
				t.Errorf("got %d chunks, want %d", len(chunks), tc.chunks)
			}
			seen := map[string]bool{}
			var re []byte
			for _, c := range chunks {
				seen[c.Path] = true
				re = append(re, rawChunk(c)...)
			}
			for _, p := range tc.paths {
				if !seen[p] {
					t.Errorf("path %q not in stream", p)
				}
			}
			if !bytes.Equal(re, b) {
				t.Errorf("re-encoding the chunks does not reproduce the fixture")
			}
		})
	}
}

func TestReaderAllTypesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	steps := []error{
		w.WritePayload("a/b", 0, []byte("0123456789"), 0),
		w.WriteSeek("a/b", 4),
		w.WritePayload("a/b", 4, []byte("xy"), FlagRewrite),
		w.WriteEOF("a/b"),
		w.WriteRename("a/b", "a/c"),
		w.WriteRemove("a/c"),
		w.WriteChunk(&Chunk{Type: 'Z', Flags: FlagIgnorable, Path: "z", Offset: 7, Payload: []byte("ignored")}),
		w.WritePayload("e", 0, nil, 0),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	chunks, err := readAll(t, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []Chunk{
		{Type: TypePayload, Path: "a/b", Payload: []byte("0123456789")},
		{Type: TypeSeek, Path: "a/b", Offset: 4},
		{Type: TypePayload, Flags: FlagRewrite, Path: "a/b", Offset: 4, Payload: []byte("xy")},
		{Type: TypeEOF, Path: "a/b"},
		{Type: TypeRename, Path: "a/b", NewPath: "a/c"},
		{Type: TypeRemove, Path: "a/c"},
		{Type: 'Z', Flags: FlagIgnorable, Path: "z", Offset: 7, Payload: []byte("ignored")},
		{Type: TypePayload, Path: "e", Payload: []byte{}},
	}
	if len(chunks) != len(want) {
		t.Fatalf("got %d chunks, want %d", len(chunks), len(want))
	}
	var off int64
	for i, g := range chunks {
		w := want[i]
		if g.Type != w.Type || g.Flags != w.Flags || g.Path != w.Path || g.NewPath != w.NewPath ||
			g.Offset != w.Offset || !bytes.Equal(g.Payload, w.Payload) || g.StreamOffset != off {
			t.Errorf("chunk %d = %+v, want %+v at stream offset %d", i, g, w, off)
		}
		off += int64(len(rawChunk(g)))
	}
}

func TestReaderErrors(t *testing.T) {
	good := rawP("ibdata1", 0, "hello")
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 0x40; return b }
	u32 := func(b []byte, at int, v uint32) []byte {
		b = bytes.Clone(b)
		b[at], b[at+1], b[at+2], b[at+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		return b
	}
	u64 := func(b []byte, at int, v uint64) []byte {
		b = u32(b, at, uint32(v))
		return u32(b, at+4, uint32(v>>32))
	}
	prefix := rawE("x") // 15 bytes, so the bad chunk starts at offset 15
	tests := []struct {
		name       string
		stream     []byte
		maxPayload int
		path       string
		reason     string
		unexpected bool
	}{
		{name: "bad magic", stream: flip(good, 3), reason: `bad chunk magic "XBS\x14CK01"`},
		{name: "unknown type", stream: rawChunk(Chunk{Type: 'Q', Path: "q"}), reason: "unknown chunk type Q (flags 0x00)"},
		{name: "unknown type byte", stream: rawChunk(Chunk{Type: 0, Flags: FlagRewrite, Path: "q"}), reason: "unknown chunk type 0x0 (flags 0x02)"},
		{name: "path too long", stream: u32(good, 10, 512), reason: "path length 512 exceeds the limit of 511 bytes"},
		{name: "path length huge", stream: u32(good, 10, math.MaxUint32), reason: "path length 4294967295 exceeds"},
		{name: "rename target too long", stream: u32(rawR("a", "b"), 15, 512), path: "a", reason: "rename target length 512 exceeds"},
		{name: "payload too long", stream: u64(good, 21, 64<<20+1), path: "ibdata1", reason: "payload length 67108865 exceeds the limit of 67108864 bytes"},
		{name: "payload over custom cap", stream: good, maxPayload: 4, path: "ibdata1", reason: "payload length 5 exceeds the limit of 4 bytes"},
		{name: "payload length u64 max", stream: u64(good, 21, math.MaxUint64), path: "ibdata1", reason: "payload length 18446744073709551615 exceeds"},
		{name: "file offset overflow", stream: u64(good, 29, math.MaxInt64-2), path: "ibdata1", reason: "file offset 9223372036854775805 + payload length 5 out of range"},
		{name: "seek offset overflow", stream: u64(rawS("s", 0), 15, 1<<63), path: "s", reason: "seek offset 9223372036854775808 out of range"},
		{name: "payload checksum", stream: flip(good, len(good)-1), path: "ibdata1", reason: "payload checksum mismatch (got 0x"},
		{name: "stored checksum", stream: flip(good, 37), path: "ibdata1", reason: "payload checksum mismatch"},
		{name: "payload shorter than length", stream: u64(good, 21, 6), path: "ibdata1", reason: "truncated stream: input ends at offset 61 while reading payload (5 of 6 bytes)", unexpected: true},
		{name: "short header", stream: good[:10], reason: "truncated stream: input ends at offset 25 while reading chunk header", unexpected: true},
		{name: "short path", stream: good[:16], reason: "while reading path", unexpected: true},
		{name: "short payload header", stream: good[:30], path: "ibdata1", reason: "while reading payload header", unexpected: true},
		{name: "short seek", stream: rawS("s", 1)[:18], path: "s", reason: "while reading seek offset", unexpected: true},
		{name: "short rename", stream: rawR("a", "bb")[:20], path: "a", reason: "while reading rename target", unexpected: true},
		{name: "short rename length", stream: rawR("a", "bb")[:17], path: "a", reason: "while reading rename target length", unexpected: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(cat(prefix, tc.stream)))
			r.MaxPayload = tc.maxPayload
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
			c, err := r.Next()
			if err == nil {
				t.Fatalf("got chunk %+v, want error", c)
			}
			fe := asFormatError(t, err)
			if fe.Offset != 15 || fe.Path != tc.path || !strings.Contains(fe.Error(), tc.reason) {
				t.Errorf("error %q (offset %d, path %q), want offset 15, path %q, reason containing %q",
					err, fe.Offset, fe.Path, tc.path, tc.reason)
			}
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != tc.unexpected {
				t.Errorf("errors.Is(err, io.ErrUnexpectedEOF) = %v, want %v", got, tc.unexpected)
			}
			if _, err2 := r.Next(); err2 != err {
				t.Errorf("error not sticky: second Next returned %v", err2)
			}
		})
	}
}

func TestReaderErrorMessage(t *testing.T) {
	b := rawP("ibdata1", 0, "hello")
	b[len(b)-1] ^= 1
	_, err := readAll(t, cat(rawE("x"), b))
	want := `xbstream: offset 15: file "ibdata1": payload checksum mismatch (got 0x`
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), ", want 0x3610a686)") {
		t.Errorf("got %v, want %s…, want 0x3610a686)", err, want)
	}
}

// TestReaderTruncatedEverywhere cuts a stream with every chunk type at every
// offset: a cut at a chunk boundary is a clean, shorter stream; any other
// cut is a *FormatError wrapping io.ErrUnexpectedEOF.
func TestReaderTruncatedEverywhere(t *testing.T) {
	stream := cat(rawP("db/t.ibd", 0, "0123456789"), rawS("db/t.ibd", 3), rawP("db/t.ibd", 3, "abc"),
		rawE("db/t.ibd"), rawR("db/t.ibd", "db/u.ibd"), rawD("db/u.ibd"),
		rawChunk(Chunk{Type: 'X', Flags: FlagIgnorable, Path: "x", Payload: []byte("!")}))
	ends := map[int]int{0: 0}
	for i, e := range chunkEnds(t, stream) {
		ends[e] = i + 1
	}
	for n := 0; n < len(stream); n++ {
		chunks, err := readAll(t, stream[:n])
		if k, ok := ends[n]; ok {
			if err != nil || len(chunks) != k {
				t.Errorf("cut at %d (boundary): %d chunks, err %v; want %d chunks, no error", n, len(chunks), err, k)
			}
			continue
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: err %v, want io.ErrUnexpectedEOF", n, err)
			continue
		}
		fe := asFormatError(t, err)
		if start := chunkStart(ends, n); fe.Offset != int64(start) {
			t.Errorf("cut at %d: error offset %d, want chunk start %d", n, fe.Offset, start)
		}
	}
}

func chunkStart(ends map[int]int, n int) int {
	best := 0
	for e := range ends {
		if e <= n && e > best {
			best = e
		}
	}
	return best
}

// TestReaderForgedLengthDoesNotAllocate: a header claiming a 60 MiB payload
// followed by a few bytes must fail without allocating the claimed size.
func TestReaderForgedLengthDoesNotAllocate(t *testing.T) {
	b := rawP("x", 0, "abc")
	b[15+3] = 0x03 // length 0x03000003 ≈ 48 MiB
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := readAll(t, b)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Errorf("allocated %d bytes for a forged length", d)
	}
}

func TestReaderReusesPayloadBuffer(t *testing.T) {
	data := strings.Repeat("x", 100<<10)
	stream := cat(rawP("a", 0, data), rawP("a", int64(len(data)), data), rawE("a"))
	r := NewReader(bytes.NewReader(stream))
	c1, _ := r.Next()
	p1 := &c1.Payload[0]
	c2, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if &c2.Payload[0] != p1 {
		t.Errorf("payload buffer not reused")
	}
	allocs := testing.AllocsPerRun(20, func() {
		r := NewReader(bytes.NewReader(stream))
		r.buf = make([]byte, 0, len(data))
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	})
	if allocs > 10 {
		t.Errorf("%.0f allocations per stream, want few", allocs)
	}
}

// failingSource yields data, then fails with err.
type failingSource struct {
	data []byte
	err  error
}

func (f *failingSource) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// An error of the layer below that wraps io.ErrUnexpectedEOF (zstd's
// "stream truncated", a cut age ciphertext) keeps its own words: it must not
// turn into "truncated stream" of the xbstream, which would blame the wrong
// layer and hide the real one.
func TestReaderKeepsLowerLayerTruncation(t *testing.T) {
	stream := cat(rawP("a", 0, "0123456789"), rawE("a"))
	for _, cut := range []int{5, 20, 40} {
		below := fmt.Errorf("zstd: stream truncated: %w", io.ErrUnexpectedEOF)
		r := NewReader(&failingSource{data: stream[:cut], err: below})
		var err error
		for err == nil {
			_, err = r.Next()
		}
		if !errors.Is(err, below) || !strings.Contains(err.Error(), "zstd: stream truncated") || strings.Contains(err.Error(), "truncated stream") {
			t.Errorf("cut at %d: %v", cut, err)
		}
	}
}
