// Package limit is a storage decorator that bounds the number of operations
// running at once against the wrapped backend (connections to a server,
// file descriptors, memory of concurrent Puts).
package limit

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/gosst/gosst/storage/backend"
)

// Backend allows at most N concurrent Put, Get (until its reader is
// closed), Stat and Delete calls. List is not limited: its fn may call back
// into the backend, which would deadlock with a limit of 1.
type Backend struct {
	be  backend.Backend
	sem chan struct{}
}

var _ backend.Backend = (*Backend)(nil)

// New wraps be with a limit of n (n >= 1).
func New(be backend.Backend, n int) *Backend {
	if n < 1 {
		n = 1
	}
	return &Backend{be: be, sem: make(chan struct{}, n)}
}

// Unwrap returns the wrapped backend.
func (b *Backend) Unwrap() backend.Backend { return b.be }

func (b *Backend) String() string { return fmt.Sprint(b.be) }

func (b *Backend) acquire(ctx context.Context) error {
	select {
	case b.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Backend) release() { <-b.sem }

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	return b.be.Put(ctx, key, r, size)
}

type releaser struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (r *releaser) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(r.release)
	return err
}

// Get implements backend.Backend; the slot is held until the reader is closed.
func (b *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := b.acquire(ctx); err != nil {
		return nil, err
	}
	rc, err := b.be.Get(ctx, key, off, length)
	if err != nil {
		b.release()
		return nil, err
	}
	return &releaser{ReadCloser: rc, release: b.release}, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	if err := b.acquire(ctx); err != nil {
		return backend.ObjectInfo{}, err
	}
	defer b.release()
	return b.be.Stat(ctx, key)
}

// List implements backend.Backend (not limited).
func (b *Backend) List(ctx context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	return b.be.List(ctx, prefix, fn)
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	return b.be.Delete(ctx, key)
}

// Close implements backend.Backend.
func (b *Backend) Close() error { return b.be.Close() }
