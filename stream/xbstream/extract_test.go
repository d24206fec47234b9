package xbstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func unknownChunk(path, data string) []byte {
	return rawChunk(Chunk{Type: 'X', Flags: FlagIgnorable, Path: path, Payload: []byte(data)})
}

// semanticCases are valid streams and the tree they must produce. Those
// with mbstream set are also checked against the real `mbstream -x` in
// interop_test.go.
var semanticCases = []struct {
	name     string
	stream   []byte
	want     map[string]string
	mbstream bool
}{
	{"seek back", cat(rawP("a", 0, "0123456789"), rawS("a", 2), rawP("a", 2, "ab"), rawE("a")),
		map[string]string{"a": "01ab456789"}, true},
	{"seek ahead leaves a hole", cat(rawP("a", 0, "01"), rawS("a", 6), rawP("a", 6, "zz"), rawE("a")),
		map[string]string{"a": "01\x00\x00\x00\x00zz"}, true},
	{"seek opens a file", cat(rawS("a", 5), rawP("a", 5, "xyz"), rawE("a")),
		map[string]string{"a": "\x00\x00\x00\x00\x00xyz"}, true},
	{"seek past end does not extend", cat(rawP("a", 0, "01"), rawS("a", 10), rawE("a")),
		map[string]string{"a": "01"}, true},
	{"empty file is only E", rawE("a"), map[string]string{"a": ""}, true},
	{"zero-length payload", cat(rawP("a", 0, ""), rawE("a")), map[string]string{"a": ""}, true},
	{"rename", cat(file("a", "A"), rawR("a", "c")), map[string]string{"c": "A"}, true},
	{"rename over own file", cat(file("a", "A"), file("b", "B"), rawR("a", "b")), map[string]string{"b": "A"}, true},
	{"rename to itself", cat(file("a", "A"), rawR("a", "a")), map[string]string{"a": "A"}, true},
	{"rename into new directory", cat(file("a", "A"), rawR("a", "nd/a")),
		map[string]string{"nd/": "", "nd/a": "A"}, false}, // mbstream does not create nd/
	{"rename chain then reuse name", cat(file("a", "1"), rawR("a", "b"), file("a", "2")),
		map[string]string{"a": "2", "b": "1"}, true},
	{"remove", cat(file("a", "A"), rawD("a")), map[string]string{}, true},
	{"remove then recreate", cat(file("a", "A"), rawD("a"), file("a", "B")), map[string]string{"a": "B"}, true},
	{"remove absent file", rawD("nope"), map[string]string{}, true},
	{"remove in absent directory", rawD("nodir/nope"), map[string]string{}, true},
	{"rewrite after close", cat(rawP("a", 0, "AAAA"), rawE("a"), rawP("a", 0, "B", FlagRewrite), rawE("a")),
		map[string]string{"a": "B"}, true},
	{"rewrite after close, empty", cat(file("a", "AAAA"), rawChunk(Chunk{Type: TypeEOF, Flags: FlagRewrite, Path: "a"})),
		map[string]string{"a": ""}, true},
	{"rewrite flag while open", cat(rawP("a", 0, "AAAA"), rawP("a", 4, "B", FlagRewrite), rawE("a")),
		map[string]string{"a": "AAAAB"}, true},
	{"rewrite flag on new file", cat(rawP("a", 0, "X", FlagRewrite), rawE("a")), map[string]string{"a": "X"}, true},
	{"interleaved files", cat(rawP("db/a", 0, "1"), rawP("db/b", 0, "2"), rawP("db/a", 1, "3"), rawE("db/b"), rawE("db/a")),
		map[string]string{"db/": "", "db/a": "13", "db/b": "2"}, true},
	{"ignorable unknown chunk skipped", cat(unknownChunk("x", "hello"), file("a", "A")),
		map[string]string{"a": "A"}, false}, // mbstream writes the payload to x
	{"nested directories", file("d1/d2/d3/f", "F"),
		map[string]string{"d1/": "", "d1/d2/": "", "d1/d2/d3/": "", "d1/d2/d3/f": "F"}, false}, // mbstream: one mkdir level
}

func TestExtractSemantics(t *testing.T) {
	for _, tc := range semanticCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := extractBytes(t, tc.stream, dir, ExtractOptions{Workers: 2}); err != nil {
				t.Fatal(err)
			}
			if d := diffTrees(tc.want, readTree(t, dir)); d != "" {
				t.Error(d)
			}
		})
	}
}

func TestExtractErrors(t *testing.T) {
	type env struct{ dir, outside string }
	preexisting := func(e env) {
		if err := os.WriteFile(filepath.Join(e.dir, "pre"), []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	symlinkOut := func(e env) {
		if err := os.Symlink(e.outside, filepath.Join(e.dir, "link")); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name       string
		setup      func(env)
		stream     []byte
		opts       ExtractOptions
		path       string
		reason     string
		unexpected bool
	}{
		{name: "dotdot", stream: file("../x", "X"), path: "../x", reason: `unsafe path: ".." path component`},
		{name: "absolute", stream: file("/etc/x", "X"), path: "/etc/x", reason: "unsafe path: absolute path"},
		{name: "dotdot inside", stream: file("a/../../x", "X"), path: "a/../../x", reason: `".." path component`},
		{name: "dot", stream: file("./a", "X"), path: "./a", reason: `"." path component`},
		{name: "empty component", stream: file("a//b", "X"), path: "a//b", reason: "empty path component"},
		{name: "trailing slash", stream: file("a/", "X"), path: "a/", reason: "empty path component"},
		{name: "empty path", stream: file("", "X"), reason: "unsafe path: empty path"},
		{name: "NUL", stream: file("a\x00b", "X"), path: "a\x00b", reason: "NUL byte"},
		{name: "rename target dotdot", stream: cat(file("a", "A"), rawR("a", "../escaped")), path: "a", reason: `unsafe rename target "../escaped"`},
		{name: "rename target absolute", stream: cat(file("a", "A"), rawR("a", "/tmp/x")), path: "a", reason: "absolute path"},
		{name: "remove dotdot", stream: rawD("../pre"), path: "../pre", reason: "unsafe path"},
		{name: "symlink to outside", setup: symlinkOut, stream: file("link/x", "X"), path: "link/x", reason: `"link" is a symlink`},
		{name: "symlink inside target", setup: func(e env) {
			os.Mkdir(filepath.Join(e.dir, "sub"), 0o755)
			os.Symlink("sub", filepath.Join(e.dir, "link"))
		}, stream: file("link/x", "X"), path: "link/x", reason: `"link" is a symlink`},
		{name: "final symlink", setup: func(e env) {
			os.WriteFile(filepath.Join(e.outside, "target"), []byte("keep"), 0o600)
			os.Symlink(filepath.Join(e.outside, "target"), filepath.Join(e.dir, "f"))
		}, stream: file("f", "X"), path: "f", reason: "file already exists in the target directory"},
		{name: "rename onto symlink", setup: symlinkOut, stream: cat(file("a", "A"), rawR("a", "link")), path: "a", reason: `onto "link", which exists but was not created`},
		{name: "rename through symlink", setup: symlinkOut, stream: cat(file("a", "A"), rawR("a", "link/a")), path: "a", reason: `rename target "link/a": unsafe path: "link" is a symlink`},
		{name: "parent is a file", stream: cat(file("a", "A"), file("a/b", "B")), path: "a/b", reason: `"a" is not a directory`},
		{name: "file over own directory", stream: cat(file("a/b", "B"), file("a", "A")), path: "a", reason: "already exists"},
		{name: "first offset not zero", stream: cat(rawP("a", 3, "x"), rawE("a")), path: "a", reason: "out-of-order chunk: file offset 3, want 0"},
		{name: "gap", stream: cat(rawP("a", 0, "ab"), rawP("a", 3, "c"), rawE("a")), path: "a", reason: "out-of-order chunk: file offset 3, want 2"},
		{name: "overlap", stream: cat(rawP("a", 0, "ab"), rawP("a", 1, "c"), rawE("a")), path: "a", reason: "out-of-order chunk: file offset 1, want 2"},
		{name: "offset after seek", stream: cat(rawP("a", 0, "ab"), rawS("a", 10), rawP("a", 2, "c"), rawE("a")), path: "a", reason: "file offset 2, want 10"},
		{name: "data after E", stream: cat(file("a", "A"), rawP("a", 0, "B"), rawE("a")), path: "a", reason: "P chunk for a file already closed by an E chunk (no REWRITE flag)"},
		{name: "data after E at offset", stream: cat(file("a", "A"), rawP("a", 1, "B"), rawE("a")), path: "a", reason: "already closed by an E chunk"},
		{name: "E twice", stream: cat(file("a", "A"), rawE("a")), path: "a", reason: "E chunk for a file already closed"},
		{name: "seek after E", stream: cat(file("a", "A"), rawS("a", 0)), path: "a", reason: "S chunk for a file already closed"},
		{name: "existing file", setup: preexisting, stream: file("pre", "X"), path: "pre", reason: "file already exists in the target directory"},
		{name: "existing file, empty", setup: preexisting, stream: rawE("pre"), path: "pre", reason: "file already exists"},
		{name: "existing file, rewrite", setup: preexisting, stream: cat(rawP("pre", 0, "X", FlagRewrite), rawE("pre")), path: "pre", reason: "file already exists"},
		{name: "existing file, seek", setup: preexisting, stream: cat(rawS("pre", 0), rawE("pre")), path: "pre", reason: "file already exists"},
		{name: "remove existing", setup: preexisting, stream: rawD("pre"), path: "pre", reason: "remove of a file this stream did not create"},
		{name: "remove directory", stream: cat(file("d/a", "A"), rawD("d")), path: "d", reason: "remove of a file this stream did not create"},
		{name: "rename existing", setup: preexisting, stream: rawR("pre", "b"), path: "pre", reason: "rename of a file this stream did not create"},
		{name: "rename unseen", stream: rawR("nope", "b"), path: "nope", reason: "rename of a file this stream did not create"},
		{name: "rename removed", stream: cat(file("a", "A"), rawD("a"), rawR("a", "b")), path: "a", reason: "did not create"},
		{name: "rename onto existing", setup: preexisting, stream: cat(file("a", "A"), rawR("a", "pre")), path: "a", reason: `rename onto "pre", which exists but was not created by this stream`},
		{name: "rename open file", stream: cat(rawP("a", 0, "A"), rawR("a", "b")), path: "a", reason: "rename of a file that is still open"},
		{name: "rename onto open file", stream: cat(file("a", "A"), rawP("b", 0, "B"), rawR("a", "b")), path: "a", reason: `rename onto "b", which is still open`},
		{name: "remove open file", stream: cat(rawP("a", 0, "A"), rawD("a")), path: "a", reason: "remove of a file that is still open"},
		{name: "ends with open file", stream: cat(file("a", "A"), rawP("b", 0, "B"), rawP("c", 0, "C")), path: "b", reason: "truncated stream: input ends with 2 file(s) still open", unexpected: true},
		{name: "truncated payload", stream: file("a", "AAAA")[:30], path: "a", reason: "truncated stream", unexpected: true},
		{name: "checksum", stream: func() []byte { b := file("a", "AAAA"); b[36] ^= 1; return b }(), path: "a", reason: "payload checksum mismatch"},
		{name: "bad magic later", stream: cat(file("a", "A"), []byte("XBSTCK02\x00E\x01\x00\x00\x00a")), reason: "bad chunk magic"},
		{name: "too many open files", opts: ExtractOptions{MaxOpenFiles: 2}, stream: cat(rawP("a", 0, "A"), rawP("b", 0, "B"), rawP("c", 0, "C")), path: "c", reason: "more than 2 files open at once"},
		{name: "payload too large", opts: ExtractOptions{MaxPayload: 4}, stream: file("a", "AAAAA"), path: "a", reason: "payload length 5 exceeds the limit of 4 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			e := env{dir: filepath.Join(base, "target"), outside: filepath.Join(base, "outside")}
			os.Mkdir(e.dir, 0o755)
			os.Mkdir(e.outside, 0o755)
			if tc.setup != nil {
				tc.setup(e)
			}
			outsideBefore := readTree(t, e.outside)
			var preBefore []byte
			if tc.setup != nil {
				preBefore, _ = os.ReadFile(filepath.Join(e.dir, "pre"))
			}
			opts := tc.opts
			if opts.Workers == 0 {
				opts.Workers = 2
			}
			_, err := extractBytes(t, tc.stream, e.dir, opts)
			if err == nil {
				t.Fatalf("no error; tree %v", readTree(t, e.dir))
			}
			fe := asFormatError(t, err)
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not contain %q", err, tc.reason)
			}
			if tc.path != "" && fe.Path != tc.path && !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q: path %q, want %q", err, fe.Path, tc.path)
			}
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != tc.unexpected {
				t.Errorf("errors.Is(err, io.ErrUnexpectedEOF) = %v, want %v", got, tc.unexpected)
			}
			if d := diffTrees(outsideBefore, readTree(t, e.outside)); d != "" {
				t.Errorf("directory outside the target changed:\n%s", d)
			}
			if _, err := os.Lstat(filepath.Join(base, "escaped")); err == nil {
				t.Errorf("file escaped the target directory")
			}
			if preBefore != nil {
				if b, _ := os.ReadFile(filepath.Join(e.dir, "pre")); !bytes.Equal(b, preBefore) {
					t.Errorf("pre-existing file changed: %q", b)
				}
			}
		})
	}
}

func TestExtractErrorMessage(t *testing.T) {
	stream := cat(file("a", "A"), rawP("ibdata1", 0, "0123"), rawP("ibdata1", 5, "x"))
	_, err := extractBytes(t, stream, t.TempDir(), ExtractOptions{})
	want := `xbstream: offset 96: file "ibdata1": out-of-order chunk: file offset 5, want 4`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// randomTree builds a deterministic tree and a stream for it in which up to
// three files are open at a time and their chunks interleave, like
// mariabackup --parallel.
func randomTree(t *testing.T, seed uint64, chunk int) (map[string]string, []byte) {
	rng := rand.New(rand.NewPCG(seed, 1))
	sizes := []int{0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk, 5*chunk + 7}
	want := map[string]string{}
	var names []string
	for i := range 24 {
		var name string
		switch i % 4 {
		case 0:
			name = fmt.Sprintf("top%02d", i)
		case 1:
			name = fmt.Sprintf("db%d/t%02d.ibd", i%3, i)
		default:
			name = fmt.Sprintf("db%d/sub/deep/f%02d", i%2, i)
		}
		n := sizes[rng.IntN(len(sizes))]
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		want[name] = string(b)
		names = append(names, name)
	}
	for name := range want {
		for d := parentDir(name); d != "."; d = parentDir(d) {
			want[d+"/"] = ""
		}
	}
	var buf bytes.Buffer
	w := NewWriterSize(&buf, chunk)
	type cur struct {
		name string
		off  int
	}
	var open []*cur
	for len(names) > 0 || len(open) > 0 {
		for len(open) < 3 && len(names) > 0 {
			open = append(open, &cur{name: names[0]})
			names = names[1:]
		}
		i := rng.IntN(len(open))
		c := open[i]
		data := want[c.name]
		if c.off >= len(data) {
			if err := w.WriteEOF(c.name); err != nil {
				t.Fatal(err)
			}
			open = append(open[:i], open[i+1:]...)
			continue
		}
		end := min(c.off+chunk, len(data))
		if err := w.WritePayload(c.name, int64(c.off), []byte(data[c.off:end]), 0); err != nil {
			t.Fatal(err)
		}
		c.off = end
	}
	return want, buf.Bytes()
}

func TestExtractRoundTrip(t *testing.T) {
	want, stream := randomTree(t, 1, 1000)
	var files, bytesTotal int64
	for k, v := range want {
		if !strings.HasSuffix(k, "/") {
			files++
			bytesTotal += int64(len(v))
		}
	}
	for _, opts := range []ExtractOptions{
		{},
		{Workers: 1},
		{Workers: 8, MaxBufferedBytes: 1500},
		{Workers: 3, MaxBufferedBytes: 10}, // smaller than one chunk
	} {
		t.Run(fmt.Sprintf("workers=%d,buffer=%d", opts.Workers, opts.MaxBufferedBytes), func(t *testing.T) {
			dir := t.TempDir()
			st, err := extractBytes(t, stream, dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffTrees(want, readTree(t, dir)); d != "" {
				t.Error(d)
			}
			if st.Files != files || st.Bytes != bytesTotal || st.Chunks != int64(len(chunkEnds(t, stream))) {
				t.Errorf("stats %+v, want %d files, %d bytes", st, files, bytesTotal)
			}
		})
	}
}

func TestExtractModes(t *testing.T) {
	dir := t.TempDir()
	if _, err := extractBytes(t, cat(file("db/sub/f", "x"), file("g", "")), dir, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{"db": fs.ModeDir | 0o750, "db/sub": fs.ModeDir | 0o750, "db/sub/f": 0o640, "g": 0o640} {
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestExtractMissingDir(t *testing.T) {
	_, err := extractBytes(t, file("a", "A"), filepath.Join(t.TempDir(), "nope"), ExtractOptions{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want fs.ErrNotExist", err)
	}
}

// TestExtractTruncatedEverywhere extracts every prefix of a stream: only
// cuts at chunk boundaries where no file is open succeed.
func TestExtractTruncatedEverywhere(t *testing.T) {
	stream := cat(rawP("db/a", 0, "0123456789"), rawP("db/b", 0, "xy"), rawS("db/a", 12), rawP("db/a", 12, "!"),
		rawE("db/a"), rawE("db/b"), file("c", "C"), rawR("c", "d"), rawD("d"), rawE("empty"))
	clean := map[int]bool{0: true}
	for i, e := range chunkEnds(t, stream) {
		if i >= 5 && i != 6 { // after E db/b every file is closed, except inside c
			clean[e] = true
		}
	}
	base := t.TempDir()
	for n := 0; n <= len(stream); n++ {
		dir := filepath.Join(base, fmt.Sprint(n))
		os.Mkdir(dir, 0o755)
		_, err := extractBytes(t, stream[:n], dir, ExtractOptions{Workers: 2})
		if clean[n] {
			if err != nil {
				t.Errorf("cut at %d: %v", n, err)
			}
			continue
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: err %v, want io.ErrUnexpectedEOF", n, err)
			continue
		}
		asFormatError(t, err)
	}
}

// TestExtractFlippedBytes flips each byte of a valid stream in turn. A flip
// in the magic, type, lengths, offsets, checksum or payload must fail the
// extraction; a flip in a path must fail or change the result. Only the
// flags byte may be flipped unnoticed (unknown flag bits are ignored, and
// REWRITE on a new file changes nothing).
func TestExtractFlippedBytes(t *testing.T) {
	stream := cat(rawP("db/a", 0, "0123456789"), rawP("db/b", 0, "xy"), rawP("db/a", 10, "!"),
		rawE("db/a"), rawE("db/b"), file("c", "C"), rawR("c", "d"))
	wantTree := map[string]string{"db/": "", "db/a": "0123456789!", "db/b": "xy", "d": "C"}
	kind := make([]string, len(stream))
	r := NewReader(bytes.NewReader(stream))
	for {
		c, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		s := int(c.StreamOffset)
		mark := func(from, n int, k string) {
			for i := from; i < from+n; i++ {
				kind[i] = k
			}
		}
		mark(s, 8, "magic")
		mark(s+8, 1, "flags")
		mark(s+9, 1, "type")
		mark(s+10, 4, "pathlen")
		mark(s+14, len(c.Path), "path")
		p := s + 14 + len(c.Path)
		switch c.Type {
		case TypePayload:
			mark(p, 16, "length/offset")
			mark(p+16, 4, "checksum")
			mark(p+20, len(c.Payload), "payload")
		case TypeRename:
			mark(p, 4, "pathlen")
			mark(p+4, len(c.NewPath), "path")
		}
	}
	base := t.TempDir()
	for i := range stream {
		for _, mask := range []byte{0x01, 0x80} {
			b := bytes.Clone(stream)
			b[i] ^= mask
			dir := filepath.Join(base, fmt.Sprint(i, "-", mask))
			os.Mkdir(dir, 0o755)
			_, err := extractBytes(t, b, dir, ExtractOptions{Workers: 2})
			where := fmt.Sprintf("byte %d (%s) ^ 0x%02x", i, kind[i], mask)
			switch kind[i] {
			case "flags":
			case "path":
				if err == nil && diffTrees(wantTree, readTree(t, dir)) == "" {
					t.Errorf("%s: extraction unchanged", where)
				}
			default:
				if err == nil {
					t.Errorf("%s: no error", where)
					continue
				}
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Errorf("%s: %v is not a *FormatError", where, err)
				}
				if (kind[i] == "payload" || kind[i] == "checksum") && !strings.Contains(err.Error(), "payload checksum mismatch") {
					t.Errorf("%s: got %v, want a checksum mismatch", where, err)
				}
				if kind[i] == "magic" && !strings.Contains(err.Error(), "bad chunk magic") {
					t.Errorf("%s: got %v, want bad magic", where, err)
				}
			}
		}
	}
}

// endlessStream yields an unbounded valid stream of small files.
type endlessStream struct {
	buf bytes.Buffer
	n   int
}

func (s *endlessStream) Read(p []byte) (int, error) {
	if s.buf.Len() == 0 {
		s.n++
		s.buf.Write(file(fmt.Sprintf("f%06d", s.n), strings.Repeat("x", 4096)))
	}
	return s.buf.Read(p)
}

func TestExtractCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	// The stream never ends: returning at all proves cancellation works.
	st, err := Extract(ctx, &endlessStream{}, t.TempDir(), ExtractOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if st.Files == 0 {
		t.Errorf("no progress before cancellation: %+v", st)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	if _, err := Extract(ctx, bytes.NewReader(file("a", "A")), dir, ExtractOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("pre-cancelled: got %v", err)
	}
	if len(readTree(t, dir)) != 0 {
		t.Errorf("pre-cancelled extraction wrote files")
	}
}

func TestExtractRealMariabackup(t *testing.T) {
	b, err := os.ReadFile("testdata/mariabackup-10.11.19-small.xbs")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := extractBytes(t, b, dir, ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 29 || st.Chunks != 56 {
		t.Errorf("stats %+v, want 29 files, 56 chunks", st)
	}
	cp, err := os.ReadFile(filepath.Join(dir, "xtrabackup_checkpoints"))
	if err != nil || !strings.HasPrefix(string(cp), "backup_type = full-backuped\n") {
		t.Errorf("xtrabackup_checkpoints = %q, %v", cp, err)
	}
	for _, p := range []string{"t1/db.opt", "t1/i.frm", "t1/ar.MAD", "t1/ar.MAI", "t1/my.MYD", "t1/my.MYI", "backup-my.cnf", "ib_logfile0"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Error(err)
		}
	}
}

// TestExtractLargeChunks covers the O_DIRECT path (large page-aligned
// payloads, as mariabackup sends InnoDB files) mixed with unaligned
// payloads, seeks and small files, with and without direct I/O.
func TestExtractLargeChunks(t *testing.T) {
	big := func(n int, seed byte) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i*7)
		}
		return string(b)
	}
	a := big(1<<20, 1)      // aligned offset and length
	u := big(300<<10+13, 2) // unaligned length: the next offset is unaligned
	c := big(512<<10, 3)    // aligned length at an unaligned offset
	d := big(1<<20, 4)      // aligned again after a seek
	stream := cat(
		rawP("db/t.ibd", 0, a), rawP("db/t.ibd", 1<<20, a),
		rawP("db/t.ibd", 2<<20, u), rawP("db/t.ibd", 2<<20+int64(len(u)), c),
		rawS("db/t.ibd", 8<<20), rawP("db/t.ibd", 8<<20, d), rawE("db/t.ibd"),
		file("db/small", "tiny"),
		rawP("log", 0, d), rawE("log"),
	)
	hole := strings.Repeat("\x00", 8<<20-(2<<20+len(u)+len(c)))
	want := map[string]string{
		"db/":      "",
		"db/t.ibd": a + a + u + c + hole + d,
		"db/small": "tiny",
		"log":      d,
	}
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			defer func(v bool) { useDirectIO = v }(useDirectIO)
			useDirectIO = direct && directSupported
			dir := t.TempDir()
			st, err := extractBytes(t, stream, dir, ExtractOptions{Workers: 2, DirectIO: direct})
			if err != nil {
				t.Fatal(err)
			}
			if d := diffTrees(want, readTree(t, dir)); d != "" {
				t.Error(d)
			}
			// a, a, d and d are aligned at aligned offsets; u and c are not.
			wantDirect := int64(0)
			if useDirectIO && directWorksIn(t, dir) {
				wantDirect = 4 << 20
			}
			t.Logf("%d of %d payload bytes written with O_DIRECT", st.DirectBytes, st.Bytes)
			if st.DirectBytes != wantDirect {
				t.Errorf("%d bytes written with O_DIRECT, want %d", st.DirectBytes, wantDirect)
			}
		})
	}
}

// directWorksIn tells whether dir's filesystem takes an aligned O_DIRECT
// write (tmpfs before Linux 6.6 refuses O_DIRECT).
func directWorksIn(t *testing.T, dir string) bool {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filepath.Join(dir, "probe"))
	f, err := openDirect(root, "probe")
	if err != nil {
		return false
	}
	defer f.Close()
	buf := (*(&extractor{}).getBuf(directAlign))
	_, err = f.WriteAt(buf, 0)
	return err == nil
}
