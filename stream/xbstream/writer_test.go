package xbstream

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

// TestWriterMatchesMbstream: our Writer produces the same bytes as
// `mbstream -c` for the same files (testdata/mbstream-c.xbs).
func TestWriterMatchesMbstream(t *testing.T) {
	want, err := os.ReadFile("testdata/mbstream-c.xbs")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, f := range []struct{ path, data string }{
		{"a.txt", "hello xbstream\n"}, {"empty.dat", ""}, {"sub/r.bin", rBin()},
	} {
		if _, err := w.WriteFile(f.path, strings.NewReader(f.data), 0); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("Writer output differs from mbstream -c output\n got %x\nwant %x", buf.Bytes(), want)
	}
}

func rBin() string {
	b := make([]byte, 300)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return string(b)
}

func TestWriterChunking(t *testing.T) {
	tests := []struct {
		size    int
		data    string
		payload []string
	}{
		{4, "", nil},
		{4, "abc", []string{"abc"}},
		{4, "abcd", []string{"abcd"}},
		{4, "abcdefghij", []string{"abcd", "efgh", "ij"}},
		{0, "abcdefghij", []string{"abcdefghij"}}, // default 10 MiB
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		w := NewWriterSize(&buf, tc.size)
		// OneByteReader: chunking must not depend on the source's read sizes.
		n, err := w.WriteFile("f", iotest.OneByteReader(strings.NewReader(tc.data)), FlagRewrite)
		if err != nil || n != int64(len(tc.data)) {
			t.Fatalf("WriteFile = %d, %v", n, err)
		}
		chunks, err := readAll(t, buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if len(chunks) != len(tc.payload)+1 || chunks[len(chunks)-1].Type != TypeEOF || chunks[len(chunks)-1].Flags != 0 {
			t.Fatalf("size %d, %q: chunks %+v", tc.size, tc.data, chunks)
		}
		var off int64
		for i, p := range tc.payload {
			c := chunks[i]
			if c.Type != TypePayload || string(c.Payload) != p || c.Offset != off || c.Flags != FlagRewrite {
				t.Errorf("size %d, %q: chunk %d = %+v, want payload %q at %d", tc.size, tc.data, i, c, p, off)
			}
			off += int64(len(p))
		}
	}
}

func TestWriterRejects(t *testing.T) {
	w := NewWriter(&bytes.Buffer{})
	long := strings.Repeat("a", MaxPathLen+1)
	for name, err := range map[string]error{
		"empty":            w.WriteEOF(""),
		"absolute":         w.WriteEOF("/etc/passwd"),
		"dotdot":           w.WriteEOF("a/../../x"),
		"dot":              w.WriteEOF("./a"),
		"double slash":     w.WriteEOF("a//b"),
		"trailing slash":   w.WriteEOF("a/"),
		"NUL":              w.WriteEOF("a\x00b"),
		"too long":         w.WriteEOF(long),
		"rename target":    w.WriteRename("a", "../b"),
		"negative offset":  w.WritePayload("a", -1, nil, 0),
		"negative seek":    w.WriteSeek("a", -5),
		"unknown type":     w.WriteChunk(&Chunk{Type: 'Q', Path: "a"}),
		"file bad path":    func() error { _, err := w.WriteFile("../a", strings.NewReader("x"), 0); return err }(),
		"payload too long": w.WritePayload("a", 0, make([]byte, DefaultMaxPayload+1), 0),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := w.WriteEOF(strings.Repeat("a", MaxPathLen)); err != nil {
		t.Errorf("path of MaxPathLen bytes: %v", err)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestWriterStickyError(t *testing.T) {
	w := NewWriter(&failWriter{n: 1})
	if err := w.WritePayload("a", 0, []byte("x"), 0); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("got %v, want disk full", err)
	}
	if err := w.WriteEOF("a"); err == nil {
		t.Fatal("write after failure succeeded")
	}
}

func TestWriterSourceError(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriterSize(&buf, 2)
	boom := errors.New("boom")
	src := io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom))
	n, err := w.WriteFile("a", src, 0)
	if !errors.Is(err, boom) || n != 3 {
		t.Fatalf("WriteFile = %d, %v; want 3, boom", n, err)
	}
	// The stream is still well-formed chunk by chunk, and the file is left open.
	chunks, rerr := readAll(t, buf.Bytes())
	if rerr != nil {
		t.Fatal(rerr)
	}
	for _, c := range chunks {
		if c.Type == TypeEOF {
			t.Errorf("E chunk written after a source error")
		}
	}
}
