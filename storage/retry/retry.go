// Package retry is a storage decorator that retries operations failing with
// transient errors (backend.IsTransient: timeouts, 5xx, throttling,
// connection resets and refusals, truncated bodies) with exponential backoff
// and full jitter. Permanent errors (403, NoSuchBucket, invalid keys,
// ErrNotExist, a cancelled ctx) return at once.
//
// Put is retried only when the reader can be rewound (backend.Rewindable: a
// backend.RewindReader, or an io.Seeker such as a file or byte slice): a
// stream is never re-sent from a position it cannot return to.
// For non-rewindable streams the backend's own per-part retries are the only
// ones. Get retries opening the object, not a read failing half-way through.
// List retries restart the listing and skip keys already passed to fn.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/gosst/gosst/storage/backend"
)

// Config of the retry decorator. Zero fields take the defaults.
type Config struct {
	MaxAttempts    int           // including the first; default 5
	InitialBackoff time.Duration // default 250ms
	MaxBackoff     time.Duration // default 15s
	// OnRetry, if set, is called before each wait (for tests).
	OnRetry func(op, key string, attempt int, err error, wait time.Duration)
	// Logger, if set, gets one Warn line per retry: op, key, the attempt
	// that failed as n/max, the wait and the error.
	Logger *slog.Logger
}

// ForRequests is c as a backend uses it for the requests of a streamed
// upload: maxAttempts attempts per request, and slog.Default() when c has
// no Logger, so that those retries are never silent.
func (c Config) ForRequests(maxAttempts int) Config {
	c.MaxAttempts = maxAttempts
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.InitialBackoff <= 0 {
		c.InitialBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 15 * time.Second
	}
	return c
}

// Do runs f until it succeeds, fails with an error IsTransient rejects,
// has made MaxAttempts attempts, or ctx ends. It is the one retry loop of
// the storage packages: the decorator uses it for whole operations and the
// S3/MinIO backends for the requests of a streamed upload, which the
// decorator cannot replay.
func (c Config) Do(ctx context.Context, op, key string, f func() error) error {
	return c.withDefaults().do(ctx, op, key, f, func(error) bool { return false })
}

// Backend retries transient failures of the wrapped backend.
type Backend struct {
	be  backend.Backend
	cfg Config
}

var _ backend.Backend = (*Backend)(nil)

// New wraps be.
func New(be backend.Backend, cfg Config) *Backend {
	return &Backend{be: be, cfg: cfg.withDefaults()}
}

// Unwrap returns the wrapped backend.
func (b *Backend) Unwrap() backend.Backend { return b.be }

func (b *Backend) String() string { return fmt.Sprint(b.be) }

// do runs f until it succeeds, fails permanently, runs out of attempts, or
// ctx ends.
func (b *Backend) do(ctx context.Context, op, key string, f func() error) error {
	return b.cfg.do(ctx, op, key, f, func(err error) bool { return errors.As(err, new(errFn)) })
}

func (c Config) do(ctx context.Context, op, key string, f func() error, final func(error) bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: not started, context already done: %w", op, key, err)
	}
	backoff := c.InitialBackoff
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || !backend.IsTransient(err) || ctx.Err() != nil || final(err) {
			return err
		}
		if attempt >= c.MaxAttempts {
			return fmt.Errorf("giving up after %d attempts: %w", attempt, err)
		}
		wait := time.Duration(rand.Int64N(int64(backoff)) + 1) // full jitter
		if c.Logger != nil {
			c.Logger.LogAttrs(ctx, slog.LevelWarn, "storage: retrying after transient error",
				slog.String("op", op), slog.String("key", key),
				slog.String("attempt", fmt.Sprintf("%d/%d", attempt, c.MaxAttempts)),
				slog.Duration("wait", wait), slog.String("err", err.Error()))
		}
		if c.OnRetry != nil {
			c.OnRetry(op, key, attempt, err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, c.MaxBackoff)
	}
}

// Put implements backend.Backend; see the package comment.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	rr, ok := backend.Rewindable(r)
	if !ok { // a stream (or a pipe, whose Seek fails): one attempt
		if err := ctx.Err(); err != nil {
			return err
		}
		return b.be.Put(ctx, key, r, size)
	}
	first := true
	return b.do(ctx, "put", key, func() error {
		if !first {
			if err := rr.Rewind(); err != nil {
				return fmt.Errorf("put %s: rewind for retry: %w", key, err)
			}
		}
		first = false
		return b.be.Put(ctx, key, r, size)
	})
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key string, off, length int64) (rc io.ReadCloser, err error) {
	err = b.do(ctx, "get", key, func() error {
		rc, err = b.be.Get(ctx, key, off, length)
		return err
	})
	return rc, err
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (fi backend.ObjectInfo, err error) {
	err = b.do(ctx, "stat", key, func() error {
		fi, err = b.be.Stat(ctx, key)
		return err
	})
	return fi, err
}

// errFn marks an error returned by the caller's fn: never retried.
type errFn struct{ err error }

func (e errFn) Error() string { return e.err.Error() }
func (e errFn) Unwrap() error { return e.err }

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	seen := map[string]struct{}{}
	err := b.do(ctx, "list", prefix, func() error {
		return b.be.List(ctx, prefix, func(fi backend.ObjectInfo) error {
			if _, ok := seen[fi.Key]; ok {
				return nil
			}
			seen[fi.Key] = struct{}{}
			if err := fn(fi); err != nil {
				return errFn{err}
			}
			return nil
		})
	})
	var ef errFn
	if errors.As(err, &ef) {
		return ef.err
	}
	return err
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	return b.do(ctx, "delete", key, func() error { return b.be.Delete(ctx, key) })
}

// Close implements backend.Backend.
func (b *Backend) Close() error { return b.be.Close() }
