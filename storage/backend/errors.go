package backend

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
)

// transient marks an error a retry may cure.
type transient struct{ err error }

func (e transient) Error() string   { return e.err.Error() }
func (e transient) Unwrap() error   { return e.err }
func (e transient) Transient() bool { return true }

// MarkTransient wraps err so that IsTransient reports true. Backends call it
// where they classify their client library's errors (5xx, throttling,
// timeouts); everything they do not mark is treated as permanent unless it
// is a network-level failure IsTransient recognises itself.
func MarkTransient(err error) error {
	if err == nil {
		return nil
	}
	return transient{err}
}

// IsTransient reports whether retrying the failed operation may succeed:
// errors marked with MarkTransient, network timeouts, connection resets and
// refusals, HTTP connections closed before the response, and truncated
// bodies. A cancelled or expired context, ErrNotExist, ErrNoStorage,
// ErrInvalidKey, ErrInvalidRange and ErrSizeMismatch are never transient.
func IsTransient(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrNotExist),
		errors.Is(err, ErrNoStorage),
		errors.Is(err, ErrInvalidKey),
		errors.Is(err, ErrInvalidRange),
		errors.Is(err, ErrSizeMismatch):
		return false
	}
	var t interface{ Transient() bool }
	if errors.As(err, &t) && t.Transient() {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	// An HTTP request whose connection closed before the response: the
	// client libraries retried these; with their retries off, we do.
	// net/http reports a pooled connection the server closed before the
	// response as "server closed idle connection" (an unexported error),
	// so the message is all there is to match.
	if ue := (*url.Error)(nil); errors.As(err, &ue) &&
		(errors.Is(ue.Err, io.EOF) || strings.Contains(ue.Err.Error(), "server closed idle connection")) {
		return true
	}
	return errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF)
}
