package xbstream

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Interop tests run the real MariaDB tools. They skip only when mbstream is
// not installed (Debian package mariadb-backup).

func mbstream(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("mbstream")
	if err != nil {
		t.Skip("mbstream not on PATH (install mariadb-backup)")
	}
	return p
}

// mbstreamFailure matches what mbstream -x prints on the failures for which
// it still exits 0 (xbstream-format.md §1.6).
var mbstreamFailure = regexp.MustCompile(`(?i)failed|invalid|can't|error|can not`)

// mbstreamExtract runs `mbstream -x -C dir` on stream and fails the test on
// any failure, including the ones mbstream reports with exit status 0.
func mbstreamExtract(t *testing.T, stream []byte, dir string) {
	t.Helper()
	cmd := exec.Command(mbstream(t), "-x", "-C", dir)
	cmd.Stdin = bytes.NewReader(stream)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || mbstreamFailure.Match(stderr.Bytes()) {
		t.Fatalf("mbstream -x: %v\n%s", err, stderr.Bytes())
	}
}

// TestInteropWriterToMbstream: a tree packed by our Writer, sequentially and
// with small interleaved chunks, extracts byte-identically with mbstream -x
// (and with Extract).
func TestInteropWriterToMbstream(t *testing.T) {
	mbstream(t)
	// mbstream creates only the immediate parent directory of a file, so
	// keep paths at most one level deep.
	tree, interleaved := randomTree(t, 7, 4096)
	tree, interleaved = depthOnly(tree, 1), filterDepth(t, interleaved, 1)
	var seq bytes.Buffer
	w := NewWriterSize(&seq, 4096)
	for name, data := range tree {
		if !strings.HasSuffix(name, "/") {
			if _, err := w.WriteFile(name, strings.NewReader(data), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, stream := range map[string][]byte{"sequential": seq.Bytes(), "interleaved": interleaved} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			mbstreamExtract(t, stream, dir)
			if d := diffTrees(tree, readTree(t, dir)); d != "" {
				t.Error(d)
			}
			dir2 := t.TempDir()
			if _, err := extractBytes(t, stream, dir2, ExtractOptions{}); err != nil {
				t.Fatal(err)
			}
			if d := diffTrees(tree, readTree(t, dir2)); d != "" {
				t.Error(d)
			}
		})
	}
}

// filterDepth keeps the chunks whose path has at most depth '/'.
func filterDepth(t *testing.T, stream []byte, depth int) []byte {
	r := NewReader(bytes.NewReader(stream))
	var out []byte
	for {
		c, err := r.Next()
		if err != nil {
			return out
		}
		if strings.Count(c.Path, "/") <= depth {
			out = append(out, rawChunk(*c)...)
		}
	}
}

// depthOnly keeps the files of tree with at most depth '/' and their
// directories.
func depthOnly(tree map[string]string, depth int) map[string]string {
	out := map[string]string{}
	for k, v := range tree {
		if !strings.HasSuffix(k, "/") && strings.Count(k, "/") <= depth {
			out[k] = v
			for d := parentDir(k); d != "."; d = parentDir(d) {
				out[d+"/"] = ""
			}
		}
	}
	return out
}

// TestInteropSemantics: S, R, D and REWRITE streams give the same tree with
// mbstream -x and with Extract.
func TestInteropSemantics(t *testing.T) {
	mbstream(t)
	for _, tc := range semanticCases {
		if !tc.mbstream {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mbstreamExtract(t, tc.stream, dir)
			if d := diffTrees(tc.want, readTree(t, dir)); d != "" {
				t.Error(d)
			}
		})
	}
}

// TestInteropMbstreamToExtract: a stream made by mbstream -c, including a
// file spanning several 10 MiB chunks, extracts byte-identically with
// Extract.
func TestInteropMbstreamToExtract(t *testing.T) {
	bin := mbstream(t)
	src := t.TempDir()
	files := map[string]string{
		"empty":      "",
		"small.txt":  "hello xbstream\n",
		"db/t.frm":   strings.Repeat("frm", 333),
		"db/big.ibd": string(bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, (DefaultChunkSize+12345)/7)),
	}
	var names []string
	for name, data := range files {
		os.MkdirAll(filepath.Join(src, parentDir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	cmd := exec.Command(bin, append([]string{"-c", "-C", src}, names...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stream, err := cmd.Output()
	if err != nil {
		t.Fatalf("mbstream -c: %v\n%s", err, stderr.Bytes())
	}
	// mbstream -c splits the big file at 10 MiB, like mariabackup.
	chunks, err := readAll(t, stream)
	if err != nil {
		t.Fatal(err)
	}
	var bigChunks []int
	for _, c := range chunks {
		if c.Path == "db/big.ibd" && c.Type == TypePayload {
			bigChunks = append(bigChunks, len(c.Payload))
		}
	}
	if len(bigChunks) != 2 || bigChunks[0] != DefaultChunkSize {
		t.Errorf("db/big.ibd chunk sizes %v, want [%d, rest]", bigChunks, DefaultChunkSize)
	}
	dir := t.TempDir()
	st, err := extractBytes(t, stream, dir, ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"db/": ""}
	for k, v := range files {
		want[k] = v
	}
	if d := diffTrees(want, readTree(t, dir)); d != "" {
		t.Error(d)
	}
	if st.Files != int64(len(files)) {
		t.Errorf("stats %+v", st)
	}
}

// TestInteropRealBackup: the real mariabackup fixture extracts to the same
// tree with mbstream -x and with Extract.
func TestInteropRealBackup(t *testing.T) {
	mbstream(t)
	stream, err := os.ReadFile("testdata/mariabackup-10.11.19-small.xbs")
	if err != nil {
		t.Fatal(err)
	}
	theirs, ours := t.TempDir(), t.TempDir()
	mbstreamExtract(t, stream, theirs)
	if _, err := extractBytes(t, stream, ours, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	want := readTree(t, theirs)
	if len(want) < 20 {
		t.Fatalf("mbstream extracted only %d entries", len(want))
	}
	if d := diffTrees(want, readTree(t, ours)); d != "" {
		t.Error(d)
	}
}
