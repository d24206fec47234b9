// Package ratelimit throttles byte streams with a token bucket
// (golang.org/x/time/rate), one token per byte.
//
// A *rate.Limiter may be shared by several readers and writers to cap their
// combined throughput (e.g. all stripes of one SST). Reads and writes larger
// than the limiter's burst are split into burst-sized pieces, so any size
// works. Waiting honours the context: when it is cancelled, the call returns
// an error wrapping ctx.Err().
package ratelimit

import (
	"context"
	"fmt"
	"io"

	"golang.org/x/time/rate"
)

// DefaultBurst is the bucket size NewLimiter uses when asked for 0: small
// enough to keep the rate smooth, large enough for few wake-ups per second.
const DefaultBurst = 256 << 10

// NewLimiter returns a limiter of bytesPerSec bytes per second with the
// given burst in bytes (0 means min(DefaultBurst, bytesPerSec), at least 1).
// bytesPerSec <= 0 means unlimited.
func NewLimiter(bytesPerSec int64, burst int) *rate.Limiter {
	if bytesPerSec <= 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	if burst <= 0 {
		burst = int(min(int64(DefaultBurst), bytesPerSec))
	}
	return rate.NewLimiter(rate.Limit(bytesPerSec), max(burst, 1))
}

// chunk returns the largest piece one WaitN may ask for.
func chunk(l *rate.Limiter, n int) int {
	if l.Limit() == rate.Inf {
		return n
	}
	return min(n, max(l.Burst(), 1))
}

func wait(ctx context.Context, l *rate.Limiter, n int) error {
	if l.Limit() == rate.Inf {
		return ctx.Err()
	}
	if err := l.WaitN(ctx, n); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("ratelimit: %w", ctx.Err())
		}
		// WaitN also fails at once when the wait would outlast ctx's deadline.
		return fmt.Errorf("ratelimit: %w", err)
	}
	return nil
}

// NewWriter returns a writer that waits for tokens before each piece it
// writes to w.
func NewWriter(ctx context.Context, w io.Writer, l *rate.Limiter) io.Writer {
	return &writer{ctx: ctx, w: w, l: l}
}

type writer struct {
	ctx context.Context
	w   io.Writer
	l   *rate.Limiter
}

func (w *writer) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := chunk(w.l, len(p))
		if err := wait(w.ctx, w.l, k); err != nil {
			return written, err
		}
		n, err := w.w.Write(p[:k])
		written += n
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

// NewReader returns a reader that reads at most a burst at a time from r and
// waits for tokens for what it read before returning it.
func NewReader(ctx context.Context, r io.Reader, l *rate.Limiter) io.Reader {
	return &reader{ctx: ctx, r: r, l: l}
}

type reader struct {
	ctx context.Context
	r   io.Reader
	l   *rate.Limiter
}

func (r *reader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, fmt.Errorf("ratelimit: %w", err)
	}
	n, err := r.r.Read(p[:chunk(r.l, len(p))])
	if n > 0 {
		if werr := wait(r.ctx, r.l, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}
