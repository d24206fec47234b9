package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"testing"
)

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i ^ i>>8 ^ i>>13)
	}
	return b
}

func frame(w *bytes.Buffer, o WriterOptions, data []byte) {
	fw, err := NewFrameWriter(w, o)
	if err != nil {
		panic(err)
	}
	for p := data; len(p) > 0; {
		k := min(len(p), 7777)
		if _, err := fw.Write(p[:k]); err != nil {
			panic(err)
		}
		p = p[k:]
	}
	if err := fw.Close(); err != nil {
		panic(err)
	}
}

func unframe(in []byte, o ReaderOptions) ([]byte, *FrameReader, error) {
	fr, err := NewFrameReader(bytes.NewReader(in), o)
	if err != nil {
		return nil, nil, err
	}
	out, err := io.ReadAll(fr)
	return out, fr, err
}

func TestRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 1000, 256 << 10, 1<<20 + 3} {
		for _, fs := range []int{1, 4096, 0} {
			if fs == 1 && size > 1000 {
				continue
			}
			async := fs == 4096
			crc := size == 1000 || size == 256<<10
			data := payload(size)
			var buf bytes.Buffer
			frame(&buf, WriterOptions{Codec: "zstd", Token: []byte("t0k"), FrameSize: fs, CRC32C: crc}, data)
			out, fr, err := unframe(buf.Bytes(), ReaderOptions{Token: []byte("t0k"), AsyncHash: async})
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("size %d frame %d async %v: %v", size, fs, async, err)
			}
			if h := fr.Hello(); h.Codec != "zstd" || string(h.Token) != "t0k" || h.Version != Version {
				t.Fatalf("hello %+v", h)
			}
			wantSum := sha256.Sum256(data)
			if crc {
				wantSum = [32]byte{}
			}
			if s := fr.Sum(); s.Size != int64(size) || s.SHA256 != wantSum {
				t.Fatalf("sum %v", s)
			}
			if got := fr.Hello().Flags&FlagCRC32C != 0; got != crc {
				t.Fatalf("CRC-32C flag %v, want %v", got, crc)
			}
			if n, err := fr.Read(make([]byte, 10)); n != 0 || err != io.EOF {
				t.Fatalf("read after end: %d %v", n, err)
			}
		}
	}
}

func TestReaderStopsAtEndFrame(t *testing.T) {
	var buf bytes.Buffer
	frame(&buf, WriterOptions{}, payload(5000))
	buf.WriteString("REPLY")
	r := bytes.NewReader(buf.Bytes())
	fr, err := NewFrameReader(r, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(fr); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != "REPLY" {
		t.Fatalf("reader consumed past the end frame: %q left", rest)
	}
}

func TestExtensionFramesSkipped(t *testing.T) {
	var buf bytes.Buffer
	fw, _ := NewFrameWriter(&buf, WriterOptions{})
	fw.Write([]byte("hello "))
	fw.Flush()
	buf.Write([]byte{0x90, 0, 0, 0, 3, 'x', 'y', 'z'})
	fw.Write([]byte("world"))
	fw.Close()
	out, _, err := unframe(buf.Bytes(), ReaderOptions{})
	if err != nil || string(out) != "hello world" {
		t.Fatalf("%q %v", out, err)
	}
}

// build assembles a stream by hand from the magic, a hello and raw frames.
func build(magic string, h Hello, frames ...[]byte) []byte {
	b := []byte(magic)
	hp, _ := h.appendPayload(nil)
	b = append(b, FrameHello)
	b = binary.BigEndian.AppendUint32(b, uint32(len(hp)))
	b = append(b, hp...)
	for _, f := range frames {
		b = append(b, f...)
	}
	return b
}

func raw(typ byte, p []byte) []byte {
	b := []byte{typ}
	b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
}

func end(data []byte) []byte {
	s := sha256.Sum256(data)
	return raw(FrameEnd, append(binary.BigEndian.AppendUint64(nil, uint64(len(data))), s[:]...))
}

func TestMalformed(t *testing.T) {
	v1 := Hello{Version: 1, Codec: "zstd"}
	big := make([]byte, 5)
	big[0] = FrameData
	binary.BigEndian.PutUint32(big[1:], DefaultMaxFrameSize+1)
	cases := []struct {
		name string
		in   []byte
		opts ReaderOptions
		want error
	}{
		{"empty", nil, ReaderOptions{}, ErrTruncated},
		{"wrong magic", build("XBSTCK01", v1, end(nil)), ReaderOptions{}, ErrBadMagic},
		{"http", []byte("GET / HTTP/1.1\r\n\r\n"), ReaderOptions{}, ErrBadMagic},
		{"version 2", build(Magic, Hello{Version: 2}, end(nil)), ReaderOptions{}, ErrVersion},
		{"unknown flag", build(Magic, Hello{Version: 1, Flags: 8}, end(nil)), ReaderOptions{}, ErrVersion},
		{"wrong token", build(Magic, Hello{Version: 1, Token: []byte("a")}, end(nil)), ReaderOptions{Token: []byte("b")}, ErrAuth},
		{"missing token", build(Magic, v1, end(nil)), ReaderOptions{Token: []byte("b")}, ErrAuth},
		// The token is checked before anything else in the hello: a
		// stranger's other version or flags are ErrAuth, a peer that
		// knows the token gets the real reason.
		{"version 2, wrong token", build(Magic, Hello{Version: 2, Token: []byte("a")}, end(nil)), ReaderOptions{Token: []byte("b")}, ErrAuth},
		{"unknown flag, wrong token", build(Magic, Hello{Version: 1, Flags: 8, Token: []byte("a")}, end(nil)), ReaderOptions{Token: []byte("b")}, ErrAuth},
		{"version 2, right token", build(Magic, Hello{Version: 2, Token: []byte("b")}, end(nil)), ReaderOptions{Token: []byte("b")}, ErrVersion},
		{"unknown flag, right token", build(Magic, Hello{Version: 1, Flags: 8, Token: []byte("b")}, end(nil)), ReaderOptions{Token: []byte("b")}, ErrVersion},
		{"first frame not hello", append([]byte(Magic), end(nil)...), ReaderOptions{}, ErrMalformed},
		{"oversized frame", build(Magic, v1, big), ReaderOptions{}, ErrFrameTooLarge},
		{"small limit", build(Magic, v1, raw(FrameData, make([]byte, 100)), end(make([]byte, 100))), ReaderOptions{MaxFrameSize: 99}, ErrFrameTooLarge},
		{"unknown type", build(Magic, v1, raw(0x10, nil), end(nil)), ReaderOptions{}, ErrMalformed},
		{"second hello", build(Magic, v1, raw(FrameHello, nil), end(nil)), ReaderOptions{}, ErrMalformed},
		{"empty data frame", build(Magic, v1, raw(FrameData, nil), end(nil)), ReaderOptions{}, ErrMalformed},
		{"short end frame", build(Magic, v1, raw(FrameEnd, make([]byte, 39))), ReaderOptions{}, ErrMalformed},
		{"no end frame", build(Magic, v1, raw(FrameData, []byte("abc"))), ReaderOptions{}, ErrTruncated},
		{"count mismatch", build(Magic, v1, raw(FrameData, []byte("abc")), end([]byte("ab"))), ReaderOptions{}, ErrMismatch},
		{"hash mismatch", build(Magic, v1, raw(FrameData, []byte("abc")), end([]byte("abd"))), ReaderOptions{}, ErrMismatch},
		{"bad codec name", build(Magic, Hello{Version: 1, Codec: "Z\x00"}, end(nil)), ReaderOptions{}, ErrMalformed},
	}
	for _, tc := range cases {
		_, _, err := unframe(tc.in, tc.opts)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "wire:") {
			t.Errorf("%s: error does not name the layer: %v", tc.name, err)
		}
	}
}

func TestTruncationEverywhere(t *testing.T) {
	var buf bytes.Buffer
	frame(&buf, WriterOptions{Codec: "s2", FrameSize: 1000}, payload(5000))
	in := buf.Bytes()
	for cut := 0; cut < len(in); cut++ {
		if _, _, err := unframe(in[:cut], ReaderOptions{}); err == nil {
			t.Fatalf("cut at %d/%d accepted", cut, len(in))
		} else if !strings.HasPrefix(err.Error(), "wire:") {
			t.Fatalf("cut at %d: %v", cut, err)
		}
	}
}

// TestFlipEverywhere: a flipped byte after the hello is always an error; in
// the hello it is an error or a visibly different hello.
func TestFlipEverywhere(t *testing.T) {
	for _, crc := range []bool{false, true} {
		flipEverywhere(t, crc)
	}
}

func flipEverywhere(t *testing.T, crc bool) {
	data := payload(3000)
	var buf bytes.Buffer
	frame(&buf, WriterOptions{Codec: "zstd", FrameSize: 700, CRC32C: crc}, data)
	in := buf.Bytes()
	helloEnd := len(Magic) + headerSize + 7 + len("zstd")
	for off := range in {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(in)
			bad[off] ^= bit
			out, fr, err := unframe(bad, ReaderOptions{AsyncHash: off%2 == 1})
			if err != nil {
				continue
			}
			if off < helloEnd && fr.Hello().Codec != "zstd" && bytes.Equal(out, data) {
				continue
			}
			t.Fatalf("crc %v: flip 0x%02x at %d/%d accepted", crc, bit, off, len(in))
		}
	}
}

func TestWriterOptions(t *testing.T) {
	var buf bytes.Buffer
	for _, o := range []WriterOptions{{FrameSize: -1}, {FrameSize: HardMaxFrameSize + 1}, {Token: make([]byte, MaxTokenSize+1)}, {Codec: strings.Repeat("z", 33)}} {
		if _, err := NewFrameWriter(&buf, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func FuzzFrameReader(f *testing.F) {
	var buf bytes.Buffer
	frame(&buf, WriterOptions{Codec: "zstd", Token: []byte("tok"), FrameSize: 16}, payload(100))
	f.Add(buf.Bytes())
	f.Add(build(Magic, Hello{Version: 1}, raw(0x90, []byte("ext")), raw(FrameData, []byte("x")), end([]byte("x"))))
	f.Add([]byte(Magic))
	buf.Reset()
	frame(&buf, WriterOptions{Codec: "none", FrameSize: 16, CRC32C: true}, payload(100))
	f.Add(buf.Bytes())
	buf.Reset()
	frame(&buf, WriterOptions{Codec: "none", FrameSize: 64, CRC32C: true, Adaptive: slowLink(new(fakeClock), 64)}, bytes.Repeat([]byte("galera "), 100))
	f.Add(buf.Bytes())
	buf.Reset()
	zo := slowLink(new(fakeClock), 64)
	zo.Zstd = true
	frame(&buf, WriterOptions{Codec: "none", FrameSize: 64, CRC32C: true, Adaptive: zo}, bytes.Repeat([]byte("galera "), 100))
	f.Add(buf.Bytes())
	f.Add(build(Magic, Hello{Version: 1, Flags: FlagZstdBlocks}, raw(FrameBlockZstd, zstdFrame(f, []byte("galera"))), end(zstdFrame(f, []byte("galera")))))
	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := NewFrameReader(bytes.NewReader(in), ReaderOptions{MaxFrameSize: 4096, AsyncHash: len(in)%2 == 1})
		if err != nil {
			return
		}
		out, err := io.ReadAll(fr)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "wire:") {
				t.Fatalf("error does not name the layer: %v", err)
			}
			return
		}
		if fr.Hello().Flags&(FlagBlocks|FlagZstdBlocks) != 0 {
			return // the sums cover the payloads as sent, not the output
		}
		want := sha256.Sum256(out)
		if fr.Hello().Flags&FlagCRC32C != 0 {
			c := crc32.Checksum(out, crc32.MakeTable(crc32.Castagnoli))
			if fr.h.Current() != [32]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)} {
				t.Fatal("accepted stream whose CRC-32C differs from its output")
			}
			want = [32]byte{}
		}
		if s := fr.Sum(); s.Size != int64(len(out)) || s.SHA256 != want {
			t.Fatal("accepted stream whose sum differs from its output")
		}
	})
}
