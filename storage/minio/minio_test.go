package minio_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gosst/gosst/storage"
	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/storage/storagetest"
	"github.com/gosst/gosst/test/s3server"
)

const bucket = "gosst-test"

var prefixes atomic.Int64

func minioURL(srv *s3server.Server, prefix string, extra url.Values) string {
	q := url.Values{}
	if srv.CAFile != "" {
		q.Set("tls", "true")
		q.Set("ca", srv.CAFile)
	} else {
		q.Set("tls", "false")
	}
	for k, v := range extra {
		q[k] = v
	}
	return fmt.Sprintf("minio://%s/%s/%s?%s", srv.Addr, bucket, prefix, q.Encode())
}

// credsFile writes the server's credentials the way an operator would: an
// AWS-format file of mode 0600.
func credsFile(t *testing.T, access, secret string, mode os.FileMode) string {
	p := filepath.Join(t.TempDir(), "minio.credentials")
	body := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", access, secret)
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func open(t *testing.T, rawURL string) backend.Backend {
	t.Helper()
	be, err := storage.OpenRaw(context.Background(), rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return be
}

func suite(srv *s3server.Server, creds string) storagetest.Suite {
	return storagetest.Suite{
		New: func(t *testing.T) backend.Backend {
			p := fmt.Sprintf("suite/%s/%d", filepath.Base(t.Name()), prefixes.Add(1))
			return open(t, minioURL(srv, p, url.Values{"part-size": {"5MiB"}, "threads": {"3"}, "list-page-size": {"100"}, "credentials": {creds}}))
		},
		PartSize:  5 << 20,
		Large:     1 << 30,
		MemBudget: 2*3*5<<20 + 48<<20,
		ListKeys:  1500,
	}
}

// TestConformanceTLS: the whole suite over HTTPS with credentials from a
// 0600 file.
func TestConformanceTLS(t *testing.T) {
	srv := s3server.Require(t, s3server.Options{TLS: true, Buckets: []string{bucket}})
	suite(srv, credsFile(t, srv.AccessKey, srv.SecretKey, 0o600)).Run(t)
}

// TestConformanceHTTP: over plain HTTP, credentials from the environment.
func TestConformanceHTTP(t *testing.T) {
	srv := s3server.Require(t, s3server.Options{Buckets: []string{bucket}})
	t.Setenv("MINIO_ACCESS_KEY", srv.AccessKey)
	t.Setenv("MINIO_SECRET_KEY", srv.SecretKey)
	s := suite(srv, "")
	s.ListKeys = 300
	s.New = func(t *testing.T) backend.Backend {
		p := fmt.Sprintf("suite/%s/%d", filepath.Base(t.Name()), prefixes.Add(1))
		return open(t, minioURL(srv, p, url.Values{"part-size": {"5MiB"}, "threads": {"2"}, "list-page-size": {"50"}}))
	}
	s.Run(t)
}

// TestCredentialsFileMode: a credentials file others can read is refused,
// and the error does not print the secret.
func TestCredentialsFileMode(t *testing.T) {
	p := credsFile(t, "AKIDEXAMPLE", "verysecretvalue", 0o644)
	_, err := storage.OpenRaw(context.Background(), "minio://127.0.0.1:1/b/p?tls=false&credentials="+url.QueryEscape(p))
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("open with a 0644 credentials file: %v; want a refusal naming chmod 600", err)
	}
	if strings.Contains(err.Error(), "verysecretvalue") {
		t.Fatalf("error leaks the secret: %v", err)
	}
	t.Setenv("MINIO_ACCESS_KEY", "")
	t.Setenv("MINIO_SECRET_KEY", "")
	t.Setenv("MINIO_ROOT_USER", "")
	t.Setenv("MINIO_ROOT_PASSWORD", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_ACCESS_KEY", "")
	t.Setenv("AWS_SECRET_KEY", "")
	if _, err := storage.OpenRaw(context.Background(), "minio://127.0.0.1:1/b/p?tls=false"); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Fatalf("open without credentials: %v", err)
	}
	if _, err := storage.OpenRaw(context.Background(), "minio://user:pw@127.0.0.1:1/b/p"); err == nil || strings.Contains(err.Error(), "pw") {
		t.Fatalf("credentials in the URL: %v; want a refusal that does not echo them", err)
	}
}
