package s3opt

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosst/gosst/storage/backend"
)

func TestMapError(t *testing.T) {
	cause := errors.New("server said no")
	for _, tc := range []struct {
		name      string
		a         Answer
		is        error // nil: not classified, MapError returns nil
		transient bool
		says      string
	}{
		{name: "no such key", a: Answer{Code: "NoSuchKey"}, is: backend.ErrNotExist},
		{name: "404", a: Answer{Status: http.StatusNotFound}, is: backend.ErrNotExist},
		{name: "no such bucket", a: Answer{Status: http.StatusNotFound, Code: "NoSuchBucket"}, is: backend.ErrNoStorage, says: `bucket "b" does not exist`},
		{name: "404 no such upload", a: Answer{Status: http.StatusNotFound, Code: "NoSuchUpload"}},
		{name: "416", a: Answer{Status: http.StatusRequestedRangeNotSatisfiable}, is: backend.ErrInvalidRange},
		{name: "invalid range", a: Answer{Code: "InvalidRange"}, is: backend.ErrInvalidRange},
		{name: "403", a: Answer{Status: http.StatusForbidden}, is: cause, says: "access denied, check the AWS credentials and the bucket policy"},
		{name: "bad key id", a: Answer{Code: "InvalidAccessKeyId"}, is: cause, says: "access denied"},
		{name: "503", a: Answer{Status: http.StatusServiceUnavailable}, is: cause, transient: true},
		{name: "408", a: Answer{Status: http.StatusRequestTimeout}, is: cause, transient: true},
		{name: "429", a: Answer{Status: http.StatusTooManyRequests}, is: cause, transient: true},
		{name: "slow down", a: Answer{Code: "SlowDown"}, is: cause, transient: true},
		{name: "400", a: Answer{Status: http.StatusBadRequest, Code: "InvalidArgument"}},
		{name: "no answer", a: Answer{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := MapError("s3 GetObject s3://b/k", "b", "AWS credentials", tc.a, cause)
			if tc.is == nil {
				if err != nil {
					t.Fatalf("classified as %v; want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("%v is not %v", err, tc.is)
			}
			if !strings.HasPrefix(err.Error(), "s3 GetObject s3://b/k: ") || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("message %q: want the request first and %q", err, tc.says)
			}
			if got := backend.IsTransient(err); got != tc.transient {
				t.Errorf("transient = %v, want %v", got, tc.transient)
			}
		})
	}
}

func TestRootCAs(t *testing.T) {
	dir := t.TempDir()
	if _, err := RootCAs("minio", filepath.Join(dir, "missing.pem")); err == nil || !strings.HasPrefix(err.Error(), "minio: CA file: ") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RootCAs("s3", junk); err == nil || err.Error() != "s3: CA file "+junk+" holds no PEM certificate" {
		t.Errorf("file without PEM: %v", err)
	}
}

func TestObjectKey(t *testing.T) {
	for _, tc := range []struct{ prefix, key, want string }{
		{"", "backups/1/manifest.json", "backups/1/manifest.json"},
		{"galera", "backups/1/manifest.json", "galera/backups/1/manifest.json"},
		{"a/b", "k", "a/b/k"},
	} {
		if got := ObjectKey(tc.prefix, tc.key); got != tc.want {
			t.Errorf("ObjectKey(%q, %q) = %q, want %q", tc.prefix, tc.key, got, tc.want)
		}
	}
}
