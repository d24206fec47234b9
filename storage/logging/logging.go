// Package logging is a storage decorator that logs every operation with
// slog: key, size, duration and error. It logs keys and sizes only, never
// data, URLs' query strings or credentials.
package logging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/gosst/gosst/internal/ctxio"
	"github.com/gosst/gosst/storage/backend"
)

// Backend logs calls to the wrapped backend: successes at Debug, failures at
// Warn (a missing key at Debug: callers probe for it).
type Backend struct {
	be  backend.Backend
	log *slog.Logger
}

var _ backend.Backend = (*Backend)(nil)

// New wraps be.
func New(be backend.Backend, log *slog.Logger) *Backend {
	return &Backend{be: be, log: log.With("storage", fmt.Sprint(be))}
}

// Unwrap returns the wrapped backend.
func (b *Backend) Unwrap() backend.Backend { return b.be }

func (b *Backend) String() string { return fmt.Sprint(b.be) }

func (b *Backend) done(ctx context.Context, op, key string, start time.Time, err error, attrs ...slog.Attr) {
	level := slog.LevelDebug
	if err != nil && !errors.Is(err, backend.ErrNotExist) {
		level = slog.LevelWarn
	}
	attrs = append(attrs, slog.String("key", key), slog.Duration("took", time.Since(start)))
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	b.log.LogAttrs(ctx, level, "storage "+op, attrs...)
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	start := time.Now()
	cr := &ctxio.CountingReader{R: r}
	// WrapBody keeps a rewindable body rewindable for the retry decorator
	// above; bytes re-sent by a retry are counted too, as before.
	err := b.be.Put(ctx, key, backend.WrapBody(r, cr, nil), size)
	b.done(ctx, "put", key, start, err, slog.Int64("bytes", cr.N))
	return err
}

// Get implements backend.Backend (logs the open, not the read).
func (b *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := b.be.Get(ctx, key, off, length)
	b.done(ctx, "get", key, start, err, slog.Int64("off", off), slog.Int64("length", length))
	return rc, err
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	start := time.Now()
	fi, err := b.be.Stat(ctx, key)
	b.done(ctx, "stat", key, start, err)
	return fi, err
}

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	start := time.Now()
	n := 0
	err := b.be.List(ctx, prefix, func(fi backend.ObjectInfo) error {
		n++
		return fn(fi)
	})
	b.done(ctx, "list", prefix, start, err, slog.Int("objects", n))
	return err
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := b.be.Delete(ctx, key)
	b.done(ctx, "delete", key, start, err)
	return err
}

// Close implements backend.Backend.
func (b *Backend) Close() error { return b.be.Close() }
