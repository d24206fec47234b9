// Package ctxio holds the reader wrappers every package shares: one that
// makes a plain reader notice context cancellation, one that counts the
// bytes read. It is a leaf: it imports only the standard library.
package ctxio

import (
	"context"
	"io"
)

// NewReader returns a reader that reads from r until ctx is done, then
// fails every Read with ctx.Err(), even if r still has data. It checks
// between reads: a Read blocked inside r is not interrupted (close r for
// that), but a long copy stops at the next one.
func NewReader(ctx context.Context, r io.Reader) io.Reader { return reader{ctx, r} }

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
