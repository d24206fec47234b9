package s3opt

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"

	"github.com/gosst/gosst/storage/backend"
)

// ObjectKey is the bucket key that stores key under prefix: prefix/key,
// or key itself when the URL names no prefix.
func ObjectKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "/" + key
}

// RootCAs returns the system roots plus the PEM certificates of file (the
// URL's ca=). scheme ("s3", "minio") starts the error messages.
func RootCAs(scheme, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: CA file: %w", scheme, err)
	}
	roots, _ := x509.SystemCertPool()
	if roots == nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: CA file %s holds no PEM certificate", scheme, file)
	}
	return roots, nil
}

// TrustRoots makes tr verify servers against roots; a transport without a
// TLS configuration gets one that asks for TLS 1.2 at least.
func TrustRoots(tr *http.Transport, roots *x509.CertPool) {
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr.TLSClientConfig.RootCAs = roots
}

// Answer is what an S3 server said to a failed request: the HTTP status
// and the S3 error code (either may be zero).
type Answer struct {
	Status int
	Code   string
}

// MapError turns err, a request's failure that the server answered with a,
// into the backend error both S3 backends give for it: not found, no such
// bucket, invalid range, access denied, or transient (for the retry
// decorator). where names the request ("s3 GetObject s3://bucket/key"),
// bucket the bucket, creds what the operator should check on access denied.
// It returns nil when a does not classify err: the backend then applies its
// own rules or wraps err as it is.
func MapError(where, bucket, creds string, a Answer, err error) error {
	switch {
	case a.Code == "NoSuchKey",
		a.Status == http.StatusNotFound && a.Code != "NoSuchBucket" && a.Code != "NoSuchUpload":
		return fmt.Errorf("%s: %w", where, backend.ErrNotExist)
	case a.Code == "NoSuchBucket":
		return fmt.Errorf("%s: bucket %q does not exist: %w: %w", where, bucket, backend.ErrNoStorage, err)
	case a.Status == http.StatusRequestedRangeNotSatisfiable || a.Code == "InvalidRange":
		return fmt.Errorf("%s: %w", where, backend.ErrInvalidRange)
	case a.Status == http.StatusForbidden || a.Code == "InvalidAccessKeyId" || a.Code == "SignatureDoesNotMatch" || a.Code == "AccessDenied":
		return fmt.Errorf("%s: access denied, check the %s and the bucket policy: %w", where, creds, err)
	case a.Status >= 500, a.Status == http.StatusRequestTimeout, a.Status == http.StatusTooManyRequests,
		a.Code == "SlowDown", a.Code == "RequestTimeout", a.Code == "OperationAborted", a.Code == "InternalError":
		return backend.MarkTransient(fmt.Errorf("%s: %w", where, err))
	}
	return nil
}
