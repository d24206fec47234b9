// Package backend defines the object-store contract every gosst storage
// backend implements (local filesystem, S3, MinIO) and the small set of
// errors and helpers they share. Callers normally use the storage package,
// which re-exports these names and opens a backend from a URL.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// Backend is a flat key → bytes object store. The contract, which the
// conformance suite in storage/storagetest checks for every implementation:
//
//   - Keys are relative, slash-separated paths checked by ValidateKey. A
//     backend configured with a prefix (s3://bucket/prefix) stores key k as
//     prefix/k and never shows the prefix to the caller. Never let one key be
//     a "directory" of another (x/f and x/f/g): filesystem-backed stores
//     cannot hold both (see docs/storage.md, key layout).
//   - Every method takes a ctx and returns promptly once it is cancelled,
//     except while blocked in a Read of the caller's own reader: a caller
//     whose source can stall should close it when ctx ends.
//   - Methods are safe for concurrent use, including concurrent Puts to
//     different keys.
//   - "Not found" is always reported as an error for which
//     errors.Is(err, ErrNotExist) is true, whatever the backend.
type Backend interface {
	// Put stores the bytes read from r until io.EOF under key, replacing any
	// object already there. size is the exact length if known, or -1.
	//
	// Memory is bounded by the backend's part size × concurrency, whatever
	// the length of the stream: r is read sequentially, once, and never
	// rewound; retries happen per part inside the backend, so a Put whose
	// error is returned consumed r and cannot be retried by the caller
	// unless the caller can produce the stream again.
	//
	// The object becomes visible (Stat, Get, List) only when Put returns nil,
	// complete and at once; readers see either the old object or the new
	// one, never a mix or a prefix. If Put fails or ctx is cancelled nothing
	// new is visible under key (a previous object stays), and the backend
	// cleans up what it staged on a best-effort basis. If size >= 0 and r
	// yields a different number of bytes, Put fails with ErrSizeMismatch.
	Put(ctx context.Context, key string, r io.Reader, size int64) error

	// Get returns a reader of length bytes starting at byte offset off, or of
	// everything from off if length < 0. A range reaching past the end is
	// cut at the end. off must be < the object's size, except that off == 0
	// is always allowed (an empty object read whole). Otherwise Get returns
	// an error matching ErrInvalidRange. length == 0 is invalid.
	// A missing key returns ErrNotExist from Get itself, not from Read.
	// The caller must Close the reader; errors while reading (a dropped
	// connection) surface from Read and are not retried.
	Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)

	// Stat returns the size and modification time of key, or ErrNotExist.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// List calls fn for every complete object whose key starts with prefix
	// (a plain string prefix, not a directory; "" lists everything), in no
	// guaranteed order, each key once. fn runs in the caller's goroutine,
	// one call at a time; if fn returns an error List stops and returns it.
	// Objects written or deleted during a List may or may not appear.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error

	// Delete removes key. Deleting a key that does not exist is not an error
	// (S3 semantics; it makes cleanup idempotent and retry-safe).
	Delete(ctx context.Context, key string) error

	// Close releases resources (idle connections). The backend must not be
	// used afterwards.
	Close() error
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key     string // relative to the backend's prefix
	Size    int64
	ModTime time.Time
}

var (
	// ErrNotExist is what every backend maps "no such key" to.
	ErrNotExist = errors.New("storage: object does not exist")
	// ErrInvalidRange is returned by Get for an offset past the end.
	ErrInvalidRange = errors.New("storage: requested range is past the end of the object")
	// ErrInvalidKey is returned for keys ValidateKey rejects.
	ErrInvalidKey = errors.New("storage: invalid key")
	// ErrSizeMismatch is returned by Put when the stream length differs from
	// the size the caller announced.
	ErrSizeMismatch = errors.New("storage: stream length differs from announced size")
	// ErrNoStorage: the storage itself (a local directory, a bucket) does
	// not exist. Never returned for a missing object (that is ErrNotExist).
	ErrNoStorage = errors.New("storage does not exist")
)

// Unwrapper is implemented by decorators; Unwrap returns the wrapped backend.
type Unwrapper interface {
	Unwrap() Backend
}

// As walks the decorator chain and returns the first layer of type B.
func As[B Backend](be Backend) (B, bool) {
	for be != nil {
		if b, ok := be.(B); ok {
			return b, true
		}
		u, ok := be.(Unwrapper)
		if !ok {
			break
		}
		be = u.Unwrap()
	}
	var zero B
	return zero, false
}

// TempPrefix starts the names of staging files the local backend writes;
// keys may not have a component starting with it.
const TempPrefix = ".gosst-tmp-"

// MaxComponent is the longest path component allowed in a key (the limit of
// most filesystems, and so of filesystem-backed S3 servers).
const MaxComponent = 255

// ValidateKey rejects keys that are not portable between backends: empty,
// absolute, with empty, "." or ".." components, trailing slash, NUL or
// backslash, invalid UTF-8, components longer than MaxComponent bytes, or a
// component starting with TempPrefix.
func ValidateKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why)
	}
	if key == "" {
		return bad("empty")
	}
	if !utf8.ValidString(key) {
		return bad("not valid UTF-8")
	}
	start := 0
	for i := 0; i <= len(key); i++ {
		if i < len(key) {
			switch key[i] {
			case 0:
				return bad("contains NUL")
			case '\\':
				return bad("contains a backslash")
			case '/':
			default:
				continue
			}
		}
		c := key[start:i]
		switch {
		case c == "" && start == 0:
			return bad("absolute or starts with /")
		case c == "":
			return bad("empty path component")
		case c == "." || c == "..":
			return bad("contains . or .. component")
		case len(c) > MaxComponent:
			return bad(fmt.Sprintf("path component longer than %d bytes", MaxComponent))
		case len(c) >= len(TempPrefix) && c[:len(TempPrefix)] == TempPrefix:
			return bad("component starts with the reserved " + TempPrefix)
		}
		start = i + 1
	}
	return nil
}

// ValidateRange checks Get's off/length arguments before any I/O.
func ValidateRange(off, length int64) error {
	if off < 0 {
		return fmt.Errorf("%w: negative offset %d", ErrInvalidRange, off)
	}
	if length == 0 {
		return fmt.Errorf("%w: zero length", ErrInvalidRange)
	}
	return nil
}
