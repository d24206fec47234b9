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
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

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
)

// IsTransient reports whether an error is worth retrying.
func IsTransient(err error) bool { return backend.IsTransient(err) }

// Options for Open. The zero value is usable.
type Options struct {
	// Logger, if set, logs every operation (Debug) and failure (Warn).
	Logger *slog.Logger
	// MaxConcurrent bounds concurrent operations; 0 for no limit.
	MaxConcurrent int
	// NoRetry disables the retry decorator (the backends' per-request
	// retries stay).
	NoRetry bool
	// Retry configures the retry decorator.
	Retry retry.Config
}

// Open returns the backend a URL names, wrapped in the decorators
// retry(logging(limit(backend))):
//
//	/var/backups/galera, file:///var/backups/galera    local directory (default)
//	s3://bucket/prefix?region=&endpoint=&path-style=    Amazon S3 or compatible
//	minio://host:port/bucket/prefix?tls=&ca=            MinIO or compatible
func Open(ctx context.Context, rawURL string, opts Options) (Backend, error) {
	be, err := OpenRaw(ctx, rawURL)
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
		if rc.OnRetry == nil && opts.Logger != nil {
			log := opts.Logger
			rc.OnRetry = func(op, key string, attempt int, err error, wait time.Duration) {
				log.Warn("storage: retrying after transient error", "op", op, "key", key,
					"attempt", attempt, "wait", wait, "err", err.Error())
			}
		}
		be = retry.New(be, rc)
	}
	return be, nil
}

// OpenRaw returns the backend a URL names without decorators.
func OpenRaw(ctx context.Context, rawURL string) (Backend, error) {
	if rawURL == "" {
		return nil, errors.New("storage: empty URL")
	}
	scheme, _, hasScheme := strings.Cut(rawURL, "://")
	if !hasScheme {
		return local.New(ctx, rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the URL; strip it in case it carries a secret.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("storage: cannot parse %s:// URL: %w", scheme, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("storage: file URL with host %q: use file:///path", u.Host)
		}
		if u.RawQuery != "" {
			return nil, errors.New("storage: file URLs take no parameters")
		}
		return local.New(ctx, u.Path)
	case "s3":
		c, err := s3.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
		return s3.New(ctx, c)
	case "minio":
		c, err := minio.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
		return minio.New(ctx, c)
	}
	return nil, fmt.Errorf("storage: unknown URL scheme %q (want a path, file://, s3:// or minio://)", u.Scheme)
}
