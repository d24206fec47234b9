package xbstream

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Raw chunk encoders for tests: no validation, so they can build malformed
// streams.

func rawChunk(c Chunk) []byte {
	b := appendHeader(nil, &c)
	if hasPayload(c.Type) {
		b = append(b, c.Payload...)
	}
	return b
}

func rawP(path string, off int64, data string, flags ...Flags) []byte {
	var f Flags
	for _, x := range flags {
		f |= x
	}
	return rawChunk(Chunk{Type: TypePayload, Flags: f, Path: path, Offset: off, Payload: []byte(data)})
}

func rawE(path string) []byte { return rawChunk(Chunk{Type: TypeEOF, Path: path}) }

func rawS(path string, off int64) []byte {
	return rawChunk(Chunk{Type: TypeSeek, Path: path, Offset: off})
}

func rawR(from, to string) []byte {
	return rawChunk(Chunk{Type: TypeRename, Path: from, NewPath: to})
}

func rawD(path string) []byte { return rawChunk(Chunk{Type: TypeRemove, Path: path}) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// file is a whole file as one P (if non-empty) plus E.
func file(path, data string) []byte {
	if data == "" {
		return rawE(path)
	}
	return cat(rawP(path, 0, data), rawE(path))
}

// readTree returns every regular file under dir (relative path → content)
// and every directory (relative path + "/" → "").
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
		case d.IsDir():
			tree[rel+"/"] = ""
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tree[rel] = string(b)
		default:
			tree[rel] = "<" + d.Type().String() + ">"
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func diffTrees(want, got map[string]string) string {
	var b strings.Builder
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			b.WriteString("missing " + k + "\n")
		case g != v:
			b.WriteString("differs " + k + ": got " + short(g) + ", want " + short(v) + "\n")
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			b.WriteString("unexpected " + k + "\n")
		}
	}
	return b.String()
}

func short(s string) string {
	if len(s) > 40 {
		return strings.TrimSpace(s[:40]) + "…"
	}
	return s
}

func extractBytes(t *testing.T, stream []byte, dir string, opts ExtractOptions) (Stats, error) {
	t.Helper()
	return Extract(context.Background(), bytes.NewReader(stream), dir, opts)
}

func asFormatError(t *testing.T, err error) *FormatError {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FormatError", err, err)
	}
	return fe
}

// chunkEnds returns the stream offsets at which chunks end.
func chunkEnds(t *testing.T, stream []byte) []int {
	t.Helper()
	r := NewReader(bytes.NewReader(stream))
	var ends []int
	for {
		_, err := r.Next()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("chunkEnds: %v", err)
			}
			return ends
		}
		ends = append(ends, int(r.Offset()))
	}
}
