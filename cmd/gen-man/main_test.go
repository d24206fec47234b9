package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReproducible: the same tree and date give the same bytes (make deb's
// package is reproducible only if its man pages are).
func TestReproducible(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir()}
	for _, d := range dirs {
		if err := run([]string{"-out", d, "-date", "2026-12-04", "-version", "1.2.3"}, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := filepath.Glob(filepath.Join(dirs[0], "*"))
	if len(a) < 10 {
		t.Fatalf("only %d pages: %v", len(a), a)
	}
	for _, p := range a {
		if strings.HasPrefix(filepath.Base(p), ".") {
			t.Errorf("temporary file left behind: %s", p)
		}
		x, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(dirs[1], filepath.Base(p)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs", filepath.Base(p))
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"no -out", nil, "", "usage"},
		{"bad -date", []string{"-out", t.TempDir(), "-date", "04.12.2026"}, "", "want YYYY-MM-DD"},
		{"bad SOURCE_DATE_EPOCH", []string{"-out", t.TempDir()}, "yesterday", "SOURCE_DATE_EPOCH"},
		{"stray argument", []string{"-out", t.TempDir(), "extra"}, "", "usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tc.env)
			err := run(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}
