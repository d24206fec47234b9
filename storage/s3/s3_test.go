package s3_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/gosst/gosst/storage"
	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/storage/storagetest"
	"github.com/gosst/gosst/test/s3server"
)

const bucket = "gosst-test"

var prefixes atomic.Int64

// awsEnv points the standard AWS credential chain at srv's root account,
// and away from any ~/.aws or instance metadata of the machine.
func awsEnv(t *testing.T, access, secret string) {
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_CA_BUNDLE", "")
}

// s3URL is the URL an operator would write for srv.
func s3URL(srv *s3server.Server, prefix string, extra url.Values) string {
	q := url.Values{}
	q.Set("endpoint", srv.Endpoint)
	q.Set("region", "us-east-1")
	q.Set("path-style", "true")
	if srv.CAFile != "" {
		q.Set("ca", srv.CAFile)
	}
	for k, v := range extra {
		q[k] = v
	}
	return fmt.Sprintf("s3://%s/%s?%s", bucket, prefix, q.Encode())
}

func open(t *testing.T, rawURL string) backend.Backend {
	t.Helper()
	be, err := storage.OpenRaw(context.Background(), rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return be
}

func suite(srv *s3server.Server, large int64) storagetest.Suite {
	return storagetest.Suite{
		New: func(t *testing.T) backend.Backend {
			p := fmt.Sprintf("suite/%s/%d", filepath.Base(t.Name()), prefixes.Add(1))
			return open(t, s3URL(srv, p, url.Values{"part-size": {"5MiB"}, "concurrency": {"4"}, "list-page-size": {"100"}}))
		},
		PartSize:  5 << 20,
		Large:     large,
		MemBudget: 2*4*5<<20 + 48<<20,
		ListKeys:  1500,
	}
}

// TestConformanceTLS runs the whole suite, including a 1 GiB stream, over
// HTTPS: the production path (streaming trailer checksums).
func TestConformanceTLS(t *testing.T) {
	srv := s3server.Require(t, s3server.Options{TLS: true, Buckets: []string{bucket}})
	awsEnv(t, srv.AccessKey, srv.SecretKey)
	suite(srv, 1<<30).Run(t)
}

// TestConformanceHTTP runs the suite over plain HTTP (our uploads always
// send seekable part buffers, so the SDK accepts them there too).
func TestConformanceHTTP(t *testing.T) {
	srv := s3server.Require(t, s3server.Options{Buckets: []string{bucket}})
	awsEnv(t, srv.AccessKey, srv.SecretKey)
	suite(srv, 0).Run(t)
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}
