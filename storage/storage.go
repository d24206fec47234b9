// Package storage is where backups and binlogs are written: one Backend
// contract (see backend.Backend, re-exported here) over a local directory,
// Amazon S3 or MinIO, chosen by URL with Open. The rest of gosst must not
// know which one it writes to.
//
//	be, err := storage.Open(ctx, "s3://bucket/galera?region=eu-west-1", storage.Options{Logger: log})
//
// See docs/storage.md for URLs, credentials, permissions and the
// memory/part-size trade-off.
package storage

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/storage/limit"
	"github.com/gosst/gosst/storage/local"
	"github.com/gosst/gosst/storage/logging"
	"github.com/gosst/gosst/storage/minio"
	"github.com/gosst/gosst/storage/retry"
	"github.com/gosst/gosst/storage/s3"
)

// Backend is the object-store contract; its rules are written on
// backend.Backend and checked for every implementation by storagetest.
type Backend = backend.Backend

// ObjectInfo describes a stored object.
type ObjectInfo = backend.ObjectInfo

// Errors every backend maps to; test with errors.Is.
var (
	ErrNotExist     = backend.ErrNotExist
	ErrInvalidRange = backend.ErrInvalidRange
	ErrInvalidKey   = backend.ErrInvalidKey
	ErrSizeMismatch = backend.ErrSizeMismatch
	ErrNoStorage    = backend.ErrNoStorage
)

// IsTransient reports whether an error is worth retrying.
func IsTransient(err error) bool { return backend.IsTransient(err) }

// Options for Open. The zero value is usable.
type Options struct {
	// Logger, if set, logs every operation (Debug), failure (Warn) and
	// retry (Warn). Without it the backends' own retries log to
	// slog.Default().
	Logger *slog.Logger
	// MaxConcurrent bounds concurrent operations; 0 for no limit.
	MaxConcurrent int
	// NoRetry disables the retry decorator: then only the requests of a
	// streamed upload are retried (by the S3/MinIO backends, which the
	// decorator cannot replay); the client libraries never retry.
	NoRetry bool
	// Retry configures the retry decorator: MaxAttempts per operation
	// (default 5), backoff, OnRetry (called for the decorator's retries
	// only). Its Logger defaults to Logger. The backoff also paces the
	// backends' retries of streamed-upload requests.
	Retry retry.Config
	// Create makes a missing local directory (mode 0700; its parent must
	// exist). Only commands that write a backup set it; without it a
	// missing directory is ErrNoStorage. Buckets are never created.
	Create bool

	createParents bool // OpenRaw: MkdirAll, as before
}

// Open returns the backend a URL names (see ParseURL), wrapped in the
// decorators retry(logging(limit(backend))):
//
//	/var/backups/galera, file:///var/backups/galera    local directory (default)
//	s3://bucket/prefix?region=&endpoint=&path-style=    Amazon S3 or compatible
//	minio://host:port/bucket/prefix?tls=&ca=            MinIO or compatible
//
// Open never creates storage unless opts.Create is set, and then only the
// last directory of a local path: a missing directory (or bucket) is
// ErrNoStorage, so a read-only command cannot leave an empty store behind.
// Buckets are never created.
func Open(ctx context.Context, rawURL string, opts Options) (Backend, error) {
	be, err := open(ctx, rawURL, opts)
	if err != nil {
		return nil, err
	}
	if opts.MaxConcurrent > 0 {
		be = limit.New(be, opts.MaxConcurrent)
	}
	if opts.Logger != nil {
		be = logging.New(be, opts.Logger)
	}
	if !opts.NoRetry {
		rc := opts.Retry
		if rc.Logger == nil {
			rc.Logger = opts.Logger
		}
		be = retry.New(be, rc)
	}
	return be, nil
}

// OpenRaw returns the backend a URL names without decorators; unlike Open
// it creates a missing local directory and its parents (for tests and
// tools; commands use Open).
func OpenRaw(ctx context.Context, rawURL string) (Backend, error) {
	return open(ctx, rawURL, Options{Create: true, createParents: true})
}

func open(ctx context.Context, rawURL string, opts Options) (Backend, error) {
	loc, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch loc.Kind {
	case KindLocal:
		switch {
		case opts.createParents:
			return local.New(ctx, loc.Path)
		case opts.Create:
			return local.Create(ctx, loc.Path)
		}
		return local.Open(ctx, loc.Path)
	case KindS3:
		c, err := s3.ParseURL(loc.URL)
		if err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
		c.Retry = uploadRetry(opts)
		return s3.New(ctx, c)
	case KindMinio:
		c, err := minio.ParseURL(loc.URL)
		if err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
		c.Retry = uploadRetry(opts)
		return minio.New(ctx, c)
	}
	return nil, fmt.Errorf("storage: unknown storage kind %q", loc.Kind)
}

// uploadRetry is how the S3 and MinIO backends retry the requests of a
// streamed upload: the decorator's backoff and logger, the URL's
// max-attempts (max-retries) as the budget of each request.
func uploadRetry(opts Options) retry.Config {
	return retry.Config{InitialBackoff: opts.Retry.InitialBackoff, MaxBackoff: opts.Retry.MaxBackoff, Logger: opts.Logger}
}
