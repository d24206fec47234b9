// Package local is the filesystem backend: one file per object under a root
// directory, written durably (temp file, fsync, rename, fsync directory).
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/gosst/gosst/internal/ctxio"
	"github.com/gosst/gosst/internal/fsutil"
	"github.com/gosst/gosst/storage/backend"
)

// Permissions of what the backend creates: backups hold database contents.
const (
	FileMode = 0o600
	DirMode  = 0o700
)

// Backend stores objects as files under Root.
type Backend struct {
	root string
}

var _ backend.Backend = (*Backend)(nil)

// New opens the directory dir, creating it and any missing parents (mode
// 0700). For tests and tools; commands use Open or Create.
func New(ctx context.Context, dir string) (*Backend, error) {
	return open(ctx, dir, func(abs string) error {
		if err := os.MkdirAll(abs, DirMode); err != nil {
			return fmt.Errorf("local storage: create directory %s: %w", abs, err)
		}
		return nil
	})
}

// Create opens the directory dir, creating it (mode 0700) if it is missing.
// Only the last directory is created: a missing parent is ErrNoStorage, so
// that a path under an unmounted or mistyped mount point fails instead of
// filling the root file system.
func Create(ctx context.Context, dir string) (*Backend, error) {
	return open(ctx, dir, func(abs string) error {
		err := os.Mkdir(abs, DirMode)
		switch {
		case err == nil, errors.Is(err, fs.ErrExist):
			return nil
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("local storage: cannot create %s: its parent directory %s does not exist (gosst creates only the last directory of a storage path): %w",
				abs, filepath.Dir(abs), backend.ErrNoStorage)
		}
		return fmt.Errorf("local storage: create directory %s: %w", abs, err)
	})
}

// Open opens the existing directory dir; it creates nothing. A missing
// directory is ErrNoStorage.
func Open(ctx context.Context, dir string) (*Backend, error) {
	return open(ctx, dir, func(string) error { return nil })
}

func open(ctx context.Context, dir string, prepare func(abs string) error) (*Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local storage %q: %w", dir, err)
	}
	if err := prepare(abs); err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, fmt.Errorf("local storage: no directory at %s: %w", abs, backend.ErrNoStorage)
	}
	if err != nil {
		return nil, fmt.Errorf("local storage: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("local storage: %s is not a directory", abs)
	}
	return &Backend{root: abs}, nil
}

// Root is the absolute directory the backend writes under.
func (b *Backend) Root() string { return b.root }

func (b *Backend) String() string { return "file://" + b.root }

func (b *Backend) path(key string) (string, error) {
	if err := backend.ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(b.root, filepath.FromSlash(key)), nil
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("put %s: create directory: %w", key, err)
	}
	f, err := os.CreateTemp(dir, backend.TempPrefix+"*")
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(FileMode); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	// One write per MiB, not per 32 KiB: io.Copy into an *os.File goes
	// through File.ReadFrom, which (for a pipe or any non-file source)
	// copies with a 32 KiB buffer, so a backup stream of 1 GiB cost 32768
	// write syscalls and as many hand-overs from the writer of a pipe.
	// Hiding ReadFrom makes CopyBuffer use buf.
	// A small object of known size (a manifest, an index) gets a buffer
	// of its size, not 1 MiB.
	bufSize := putBufSize
	if size >= 0 && size < putBufSize {
		bufSize = int(size) + 1 // +1: never empty, and EOF in the same read
	}
	buf := make([]byte, bufSize)
	n, err := io.CopyBuffer(writerOnly{f}, ctxio.NewReader(ctx, r), buf)
	if err != nil {
		return fmt.Errorf("put %s: after %d bytes: %w", key, n, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("put %s: %w: announced %d bytes, got %d", key, backend.ErrSizeMismatch, size, n)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("put %s: fsync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("put %s: close: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("put %s: rename into place: %w", key, err)
	}
	// Some file systems cannot fsync a directory (EINVAL, ENOTSUP): the
	// object is still in place, so that is not an error here.
	if err := fsutil.SyncDir(dir); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("put %s: fsync directory: %w", key, err)
	}
	return nil
}

// putBufSize is Put's write size.
const putBufSize = 1 << 20

// writerOnly hides the ReadFrom of the *os.File it wraps.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

func mapErr(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%s %s: %w", op, key, backend.ErrNotExist)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

type sectionCloser struct {
	io.Reader
	f *os.File
}

func (s sectionCloser) Close() error { return s.f.Close() }

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, err
	}
	if err := backend.ValidateRange(off, length); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, mapErr("get", key, err)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		if err == nil {
			err = fs.ErrNotExist
		}
		return nil, mapErr("get", key, err)
	}
	if off > 0 && off >= fi.Size() {
		_ = f.Close()
		return nil, fmt.Errorf("get %s: %w: offset %d, size %d", key, backend.ErrInvalidRange, off, fi.Size())
	}
	n := fi.Size() - off
	if length > 0 && length < n {
		n = length
	}
	return sectionCloser{io.NewSectionReader(f, off, n), f}, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	p, err := b.path(key)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return backend.ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if err == nil && !fi.Mode().IsRegular() {
		err = fs.ErrNotExist
	}
	if err != nil {
		return backend.ObjectInfo{}, mapErr("stat", key, err)
	}
	return backend.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements backend.Backend. It walks only the directory that can hold
// keys with the prefix.
func (b *Backend) List(ctx context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	start := b.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = filepath.Join(b.root, filepath.FromSlash(prefix[:i]))
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // prefix directory absent, or removed while walking
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, rerr := filepath.Rel(b.root, p)
		if rerr != nil {
			return rerr
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if p != start && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), backend.TempPrefix) || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, ierr := d.Info()
		if errors.Is(ierr, fs.ErrNotExist) {
			return nil // deleted meanwhile
		}
		if ierr != nil {
			return ierr
		}
		return fn(backend.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("list %q: %w", prefix, err)
	}
	return nil
}

// Delete implements backend.Backend. Empty directories are left in place:
// removing them would race with a concurrent Put into the same directory.
func (b *Backend) Delete(ctx context.Context, key string) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || (err == nil && fi.IsDir()) {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// Close implements backend.Backend.
func (b *Backend) Close() error { return nil }
