package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosst/gosst/storage"
	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/storage/limit"
	"github.com/gosst/gosst/storage/local"
	"github.com/gosst/gosst/storage/logging"
	"github.com/gosst/gosst/storage/retry"
	"github.com/gosst/gosst/storage/storagetest"
)

// mock fails the first `fails` calls of each method with err.
type mock struct {
	backend.Backend
	fails int
	err   error
	calls atomic.Int32
	list  []string
}

func (m *mock) fail() error {
	if int(m.calls.Add(1)) <= m.fails {
		return m.err
	}
	return nil
}

func (m *mock) Put(_ context.Context, _ string, r io.Reader, _ int64) error {
	b, _ := io.ReadAll(r)
	if err := m.fail(); err != nil {
		return err
	}
	if string(b) != "payload" {
		return fmt.Errorf("got %q: stream not rewound", b)
	}
	return nil
}

func (m *mock) Stat(context.Context, string) (backend.ObjectInfo, error) {
	return backend.ObjectInfo{}, m.fail()
}

func (m *mock) List(_ context.Context, _ string, fn func(backend.ObjectInfo) error) error {
	for i, k := range m.list {
		if i == 2 {
			if err := m.fail(); err != nil {
				return err
			}
		}
		if err := fn(backend.ObjectInfo{Key: k}); err != nil {
			return err
		}
	}
	return nil
}

func (m *mock) Close() error { return nil }

func fastRetry(n *atomic.Int32) retry.Config {
	return retry.Config{InitialBackoff: time.Millisecond, OnRetry: func(string, string, int, error, time.Duration) { n.Add(1) }}
}

func TestRetryClassification(t *testing.T) {
	ctx := context.Background()
	transient := backend.MarkTransient(errors.New("503 SlowDown"))
	cases := []struct {
		name      string
		err       error
		fails     int
		wantErr   bool
		wantCalls int32
	}{
		{"transient then success", transient, 2, false, 3},
		{"transient forever gives up", transient, 100, true, 5},
		{"permanent not retried", errors.New("403 InvalidAccessKeyId"), 100, true, 1},
		{"not found not retried", fmt.Errorf("x: %w", backend.ErrNotExist), 100, true, 1},
		{"cancelled not retried", context.Canceled, 100, true, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &mock{fails: c.fails, err: c.err}
			var n atomic.Int32
			be := retry.New(m, fastRetry(&n))
			_, err := be.Stat(ctx, "k")
			if (err != nil) != c.wantErr || m.calls.Load() != c.wantCalls {
				t.Fatalf("err %v after %d calls; want error %v after %d", err, m.calls.Load(), c.wantErr, c.wantCalls)
			}
		})
	}
}

func TestRetryPutRewindsOnlySeekers(t *testing.T) {
	ctx := context.Background()
	m := &mock{fails: 2, err: backend.MarkTransient(errors.New("reset"))}
	var n atomic.Int32
	be := retry.New(m, fastRetry(&n))
	if err := be.Put(ctx, "k", strings.NewReader("payload"), 7); err != nil {
		t.Fatalf("seekable Put: %v", err)
	}
	if n.Load() != 2 {
		t.Fatalf("%d retries, want 2", n.Load())
	}
	m = &mock{fails: 1, err: backend.MarkTransient(errors.New("reset"))}
	be = retry.New(m, fastRetry(&n))
	if err := be.Put(ctx, "k", io.MultiReader(strings.NewReader("payload")), 7); err == nil || m.calls.Load() != 1 {
		t.Fatalf("non-seekable Put: %v after %d calls; want the error after 1 call", err, m.calls.Load())
	}
}

func TestRetryListSkipsDelivered(t *testing.T) {
	m := &mock{fails: 1, err: backend.MarkTransient(errors.New("timeout")), list: []string{"a", "b", "c", "d"}}
	var n atomic.Int32
	var got []string
	err := retry.New(m, fastRetry(&n)).List(context.Background(), "", func(fi backend.ObjectInfo) error {
		got = append(got, fi.Key)
		return nil
	})
	if err != nil || strings.Join(got, ",") != "a,b,c,d" {
		t.Fatalf("List across a retry: %v, %v; want each key once", got, err)
	}
	stop := backend.MarkTransient(errors.New("fn's own error"))
	m = &mock{list: []string{"a", "b"}}
	err = retry.New(m, fastRetry(&n)).List(context.Background(), "", func(backend.ObjectInfo) error { return stop })
	if !errors.Is(err, stop) || m.calls.Load() != 0 {
		t.Fatalf("fn's error: %v (calls %d); want it returned, not retried", err, m.calls.Load())
	}
}

func TestRetryRefusesCancelledContext(t *testing.T) {
	m := &mock{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var n atomic.Int32
	if _, err := retry.New(m, fastRetry(&n)).Stat(ctx, "k"); !errors.Is(err, context.Canceled) || m.calls.Load() != 0 {
		t.Fatalf("Stat with a cancelled ctx: %v, %d calls", err, m.calls.Load())
	}
}

// slow counts concurrent calls; each call announces itself on entered and
// holds its slot until the test sends on release.
type slow struct {
	backend.Backend
	cur, peak atomic.Int32
	entered   chan struct{}
	release   chan struct{}
}

func (s *slow) Stat(context.Context, string) (backend.ObjectInfo, error) {
	c := s.cur.Add(1)
	for {
		p := s.peak.Load()
		if c <= p || s.peak.CompareAndSwap(p, c) {
			break
		}
	}
	s.entered <- struct{}{}
	<-s.release
	s.cur.Add(-1)
	return backend.ObjectInfo{}, nil
}

func TestLimit(t *testing.T) {
	s := &slow{entered: make(chan struct{}, 20), release: make(chan struct{})}
	be := limit.New(s, 3)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = be.Stat(context.Background(), "k") }()
	}
	// Three calls hold the three slots at once (no sleep needed for them
	// to overlap); then they are let go one at a time.
	for range 3 {
		<-s.entered
	}
	for range 20 {
		s.release <- struct{}{}
	}
	wg.Wait()
	if p := s.peak.Load(); p != 3 {
		t.Errorf("peak concurrency %d with a limit of 3 and 20 waiting callers; want 3", p)
	}
	if p := s.peak.Load(); p > 3 || p < 2 {
		t.Fatalf("peak concurrency %d with a limit of 3", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	// A Get holds its slot until the reader is closed.
	lb := limit.New(mustLocal(t), 1)
	if err := lb.Put(context.Background(), "x", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	r1, err := lb.Get(context.Background(), "x", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Stat(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stat while the only slot is held by an open reader: %v; want a ctx timeout", err)
	}
	r1.Close()
	if _, err := lb.Stat(context.Background(), "x"); err != nil {
		t.Fatalf("Stat after Close: %v", err)
	}
}

func mustLocal(t *testing.T) backend.Backend {
	be, err := local.New(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return be
}

func TestLoggingAndUnwrap(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	be, err := storage.Open(context.Background(), "file://"+filepath.ToSlash(dir), storage.Options{Logger: log, MaxConcurrent: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := be.Put(ctx, "k/v", storagetest.NewStream(1, 1000), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Stat(ctx, "nope"); !errors.Is(err, storage.ErrNotExist) {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"storage put", "key=k/v", "bytes=1000", "storage stat", "key=nope"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if _, ok := backend.As[*local.Backend](be); !ok {
		t.Error("As cannot find the local backend under the decorators")
	}
	if _, ok := backend.As[*logging.Backend](be); !ok {
		t.Error("As cannot find the logging decorator")
	}
	if _, ok := backend.As[*limit.Backend](be); !ok {
		t.Error("As cannot find the limit decorator")
	}
}

func TestOpenURLs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, u := range []string{dir, "file://" + dir, filepath.Join(dir, "sub")} {
		be, err := storage.OpenRaw(ctx, u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if _, ok := be.(*local.Backend); !ok {
			t.Fatalf("%s: %T, want local", u, be)
		}
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	bad := map[string]string{
		"ftp://x/y":                          "unknown URL scheme",
		"file://host/x":                      "use file:///path",
		"s3://b/p?part-size=1MiB":            "part size",
		"s3://b/p?bogus=1":                   "unknown parameter",
		"s3://AKID:SECRET@b/p":               "not accepted",
		"s3://b/p?sse=rot13":                 "sse",
		"s3://b/p?sse-kms-key-id=k":          "sse=aws:kms",
		"minio://h:1/b?threads=-1&tls=false": "concurrency",
		"minio://h:1?tls=false":              "bucket",
		"s3:///p":                            "no bucket",
		"s3://b/p?concurrency=1000":          "concurrency",
		"minio://h:1/b?list-page-size=x":     "list-page-size",
		"s3://b/p?list-page-size=5000":       "list-page-size",
		"minio://h:1/b?credentials=/nonexis": "credentials file",
	}
	for u, want := range bad {
		_, err := storage.OpenRaw(ctx, u)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("OpenRaw(%q) = %v; want an error about %q", u, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("OpenRaw(%q) error leaks the secret: %v", u, err)
		}
	}
	be, err := storage.OpenRaw(ctx, "s3://b/p?region=eu-west-1&sse=aws:kms&sse-kms-key-id=alias/x&storage-class=STANDARD_IA&part-size=64MiB&concurrency=2")
	if err != nil {
		t.Fatal(err)
	}
	be.Close()
}
