package local_test

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/storage/local"
	"github.com/gosst/gosst/storage/storagetest"
)

func newLocal(t *testing.T) backend.Backend {
	be, err := local.New(context.Background(), filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return be
}

func TestConformance(t *testing.T) {
	storagetest.Suite{
		New:       newLocal,
		Large:     1 << 30,
		MemBudget: 16 << 20,
		ListKeys:  1500,
	}.Run(t)
}

// TestPermissions: files 0600, directories 0700, whatever the umask; no
// staging files left behind.
func TestPermissions(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "repo")
	be, err := local.New(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Put(ctx, "a/b/c", strings.NewReader("data"), 4); err != nil {
		t.Fatal(err)
	}
	_ = be.Put(ctx, "a/b/d", &failing{}, -1)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		want := os.FileMode(local.FileMode)
		if d.IsDir() {
			want = local.DirMode
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", p, fi.Mode().Perm(), want)
		}
		if strings.HasPrefix(d.Name(), backend.TempPrefix) {
			t.Errorf("staging file left behind: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, fs.ErrClosed }

// TestKeyLayoutConflict: a key cannot also be a "directory" of another; the
// error says so instead of corrupting anything.
func TestKeyLayoutConflict(t *testing.T) {
	ctx := context.Background()
	be := newLocal(t)
	if err := be.Put(ctx, "x/f/child", strings.NewReader("c"), 1); err != nil {
		t.Fatal(err)
	}
	if err := be.Put(ctx, "x/f", strings.NewReader("f"), 1); err == nil {
		t.Fatal("Put x/f over the directory x/f succeeded")
	}
	if _, err := be.Stat(ctx, "x/f"); err == nil {
		t.Fatal("x/f is visible as an object")
	}
}

// readSizes records the size of every read Put asks its source for.
type readSizes struct {
	r   *strings.Reader
	max int
}

func (s *readSizes) Read(p []byte) (int, error) {
	s.max = max(s.max, len(p))
	return s.r.Read(p)
}

// TestPutLargeReads: a stream of unknown size (a backup) is written in
// 1 MiB pieces, not io.Copy's 32 KiB (one write syscall, and one hand-over
// from an io.Pipe writer, per piece); a small object of known size gets a
// buffer of its size.
func TestPutLargeReads(t *testing.T) {
	ctx := context.Background()
	be := newLocal(t)
	for _, tc := range []struct {
		name    string
		size    int64 // as announced to Put
		data    int
		wantMax int
	}{
		{"stream of unknown size", -1, 4 << 20, 1 << 20},
		{"small object of known size", 100, 100, 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &readSizes{r: strings.NewReader(strings.Repeat("x", tc.data))}
			if err := be.Put(ctx, "k", src, tc.size); err != nil {
				t.Fatal(err)
			}
			if src.max != tc.wantMax {
				t.Errorf("largest read asked for %d bytes, want %d", src.max, tc.wantMax)
			}
			rc, err := be.Get(ctx, "k", 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err != nil || len(b) != tc.data {
				t.Fatalf("read back %d bytes (%v), want %d", len(b), err, tc.data)
			}
		})
	}
}
