package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosst/gosst/storage"
	"github.com/gosst/gosst/storage/retry"
	"github.com/gosst/gosst/storage/storagetest"
	"github.com/gosst/gosst/test/s3server"
)

const bucket = "gosst-fault"

// clients names the two client libraries; each fault test runs for both.
var clients = []string{"s3", "minio"}

// credEnv points both libraries' standard credential sources at access/secret.
func credEnv(t *testing.T, access, secret string) {
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
	t.Setenv("MINIO_ACCESS_KEY", access)
	t.Setenv("MINIO_SECRET_KEY", secret)
}

// backendURL builds the URL an operator would write for an HTTP endpoint
// host:port. attempts is the client library's per-request attempts.
func backendURL(client, hostport, prefix string, attempts int) string {
	q := url.Values{"part-size": {"5MiB"}, "region": {"us-east-1"}}
	if client == "s3" {
		q.Set("endpoint", "http://"+hostport)
		q.Set("path-style", "true")
		q.Set("concurrency", "3")
		q.Set("max-attempts", fmt.Sprint(attempts))
		return fmt.Sprintf("s3://%s/%s?%s", bucket, prefix, q.Encode())
	}
	q.Set("tls", "false")
	q.Set("threads", "3")
	q.Set("max-retries", fmt.Sprint(attempts))
	return fmt.Sprintf("minio://%s/%s/%s?%s", hostport, bucket, prefix, q.Encode())
}

func openT(t *testing.T, rawURL string, opts storage.Options) storage.Backend {
	t.Helper()
	be, err := storage.Open(context.Background(), rawURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

// killingReader kills the server once n bytes have been read, then keeps
// producing data.
type killingReader struct {
	r    io.Reader
	n    int64
	kill func()
}

func (k *killingReader) Read(p []byte) (int, error) {
	if k.n <= 0 && k.kill != nil {
		k.kill()
		k.kill = nil
	}
	if k.n > 0 && int64(len(p)) > k.n {
		p = p[:k.n]
	}
	n, err := k.r.Read(p)
	k.n -= int64(n)
	return n, err
}

func assertAbsent(t *testing.T, be storage.Backend, key string) {
	t.Helper()
	ctx := context.Background()
	if fi, err := be.Stat(ctx, key); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat %s after the failed upload = %+v, %v; want ErrNotExist (no half object)", key, fi, err)
	}
	err := be.List(ctx, "", func(fi storage.ObjectInfo) error {
		if fi.Key == key {
			t.Errorf("List shows %s (%d bytes) after the failed upload", key, fi.Size)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func checkContent(t *testing.T, be storage.Backend, key string, seed uint64, n int64) {
	t.Helper()
	rc, err := be.Get(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := storagetest.Hasher()
	got, err := io.Copy(h, rc)
	want, _ := storagetest.HashStream(seed, n)
	if err != nil || got != n || h.Sum64() != want {
		t.Fatalf("read back %d of %d bytes (err %v), hash match %v", got, n, err, h.Sum64() == want)
	}
}

// TestServerKilledMidUpload: the server dies (SIGKILL) while a stream of
// unknown size is being uploaded. Put must return a clear error in bounded
// time and leave no object; once the server is back, the upload of the same
// stream (produced again by the caller) succeeds.
func TestServerKilledMidUpload(t *testing.T) {
	srv := s3server.Require(t, s3server.Options{Buckets: []string{bucket}})
	credEnv(t, srv.AccessKey, srv.SecretKey)
	for _, client := range clients {
		t.Run(client, func(t *testing.T) {
			if srv.PID() == 0 {
				if err := srv.Restart(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			var retries atomic.Int32
			be := openT(t, backendURL(client, srv.Addr, "kill-"+client, 3), storage.Options{
				Retry: retry.Config{OnRetry: func(string, string, int, error, time.Duration) { retries.Add(1) }},
			})
			const n, killAt = 64 << 20, 20 << 20
			start := time.Now()
			err := be.Put(context.Background(), "backup/big", &killingReader{r: storagetest.NewStream(9, n), n: killAt, kill: func() { _ = srv.Kill() }}, -1)
			took := time.Since(start)
			if err == nil {
				t.Fatal("Put succeeded although the server was killed mid-upload")
			}
			t.Logf("Put with the server killed after %d MiB failed after %v: %v", killAt>>20, took.Round(time.Millisecond), err)
			if !strings.Contains(err.Error(), "backup/big") || !strings.Contains(err.Error(), "connection refused") && !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "EOF") {
				t.Errorf("error does not name the key and the network failure: %v", err)
			}
			if took > 90*time.Second {
				t.Errorf("Put took %v to give up", took)
			}
			if r := retries.Load(); r != 0 {
				t.Errorf("the retry decorator re-sent a non-rewindable stream %d times", r)
			}
			if err := srv.Restart(context.Background()); err != nil {
				t.Fatal(err)
			}
			assertAbsent(t, be, "backup/big")
			if err := be.Put(context.Background(), "backup/big", storagetest.NewStream(9, n), -1); err != nil {
				t.Fatalf("Put after the server came back: %v", err)
			}
			checkContent(t, be, "backup/big", 9, n)

			// A rewindable source (a file, a byte slice) is retried whole by
			// the decorator while the server is down, and lands once it is back.
			if err := srv.Kill(); err != nil {
				t.Fatal(err)
			}
			// The server comes back once the decorator has seen it down
			// and is waiting to retry (not after a guessed delay).
			restarted := make(chan error, 1)
			firstRetry, putDone := make(chan struct{}), make(chan struct{})
			var once sync.Once
			go func() {
				select {
				case <-firstRetry:
				case <-putDone: // no retry at all: the assertion below reports it
				}
				restarted <- srv.Restart(context.Background())
			}()
			var waits atomic.Int32
			be2 := openT(t, backendURL(client, srv.Addr, "kill-"+client, 1), storage.Options{Retry: retry.Config{
				MaxAttempts: 30, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
				OnRetry: func(string, string, int, error, time.Duration) {
					waits.Add(1)
					once.Do(func() { close(firstRetry) })
				},
			}})
			data := storagetest.Bytes(13, 7<<20)
			err = be2.Put(context.Background(), "backup/file", bytes.NewReader(data), int64(len(data)))
			close(putDone)
			if rerr := <-restarted; rerr != nil {
				t.Fatal(rerr)
			}
			if err != nil {
				t.Fatalf("rewindable Put across a server restart: %v", err)
			}
			if waits.Load() == 0 {
				t.Error("the server was down but the decorator never retried")
			}
			checkContent(t, be2, "backup/file", 13, 7<<20)
			t.Logf("rewindable Put retried %d times while the server was down, then succeeded", waits.Load())
		})
	}
}

// flaky is a reverse proxy in front of the server that answers 503
// SlowDown to the first `fails` attempts of every distinct request.
type flaky struct {
	fails   int
	mu      sync.Mutex
	seen    map[string]int
	total   atomic.Int32
	refused atomic.Int32
	proxy   *httputil.ReverseProxy
	status  int
}

func newFlaky(t *testing.T, srv *s3server.Server, fails, status int) (*flaky, string) {
	target, _ := url.Parse(srv.Endpoint)
	f := &flaky{fails: fails, seen: map[string]int{}, proxy: httputil.NewSingleHostReverseProxy(target), status: status}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	return f, strings.TrimPrefix(ts.URL, "http://")
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.total.Add(1)
	id := r.Method + " " + r.URL.Path + "?" + r.URL.Query().Get("partNumber") + r.URL.Query().Get("uploads")
	f.mu.Lock()
	f.seen[id]++
	fail := f.seen[id] <= f.fails
	f.mu.Unlock()
	if fail {
		f.refused.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(f.status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected by the test</Message></Error>`)
		return
	}
	f.proxy.ServeHTTP(w, r)
}

// Test503ThenSuccess: every request first gets 503 twice. The backend
// retries each request of a streamed upload (max-attempts; the part is its
// own buffer) and the upload of a non-rewindable 3-part stream succeeds;
// with max-attempts=1 the retry decorator retries Stat, Get and a
// rewindable Put, and refuses to retry a non-rewindable one.
func Test503ThenSuccess(t *testing.T) {
	srv := s3server.Require(t, s3server.Options{Buckets: []string{bucket}})
	credEnv(t, srv.AccessKey, srv.SecretKey)
	ctx := context.Background()
	for _, client := range clients {
		t.Run(client+"/parts", func(t *testing.T) {
			f, addr := newFlaky(t, srv, 2, http.StatusServiceUnavailable)
			be := openT(t, backendURL(client, addr, "flaky-"+client, 5), storage.Options{NoRetry: true})
			const n = 12<<20 + 5
			if err := be.Put(ctx, "s", storagetest.NewStream(11, n), -1); err != nil {
				t.Fatalf("Put through 503s: %v", err)
			}
			// Read back straight from the server: without the decorator
			// nothing retries a Get (the libraries' retries are off).
			checkContent(t, openT(t, backendURL(client, srv.Addr, "flaky-"+client, 1), storage.Options{NoRetry: true}), "s", 11, n)
			t.Logf("%d requests, %d answered 503", f.total.Load(), f.refused.Load())
			if f.refused.Load() < 8 { // create + 3 parts + complete, twice each at least
				t.Errorf("only %d 503s were served", f.refused.Load())
			}
		})
		t.Run(client+"/decorator", func(t *testing.T) {
			f, addr := newFlaky(t, srv, 2, http.StatusServiceUnavailable)
			var retries atomic.Int32
			be := openT(t, backendURL(client, addr, "deco-"+client, 1), storage.Options{Retry: retry.Config{
				InitialBackoff: 10 * time.Millisecond,
				OnRetry:        func(string, string, int, error, time.Duration) { retries.Add(1) },
			}})
			data := storagetest.Bytes(12, 1000)
			if err := be.Put(ctx, "small", bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatalf("rewindable Put through 503s: %v", err)
			}
			if _, err := be.Stat(ctx, "small"); err != nil {
				t.Fatalf("Stat through 503s: %v", err)
			}
			rc, err := be.Get(ctx, "small", 10, 20)
			if err != nil {
				t.Fatalf("Get through 503s: %v", err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, data[10:30]) {
				t.Fatal("ranged Get returned wrong bytes")
			}
			if retries.Load() < 6 {
				t.Errorf("decorator retried %d times, want >= 6", retries.Load())
			}
			// A stream cannot be rewound: one attempt, a transient error, no object.
			before := retries.Load()
			err = be.Put(ctx, "stream", io.MultiReader(strings.NewReader("not rewindable")), -1)
			if err == nil || !storage.IsTransient(err) {
				t.Fatalf("non-rewindable Put through a 503: %v; want a transient error", err)
			}
			if retries.Load() != before {
				t.Errorf("the decorator retried a non-rewindable stream")
			}
			assertAbsent(t, be, "stream")
			t.Logf("%d requests, %d answered 503, %d decorator retries", f.total.Load(), f.refused.Load(), retries.Load())
		})
	}
}

// TestWrongCredentials: a bad secret is a clear, permanent error and is not
// retried, neither by the libraries nor by the decorator.
func TestWrongCredentials(t *testing.T) {
	srv := s3server.Require(t, s3server.Options{Buckets: []string{bucket}})
	credEnv(t, srv.AccessKey, "wrong-"+srv.SecretKey[:8])
	ctx := context.Background()
	for _, client := range clients {
		t.Run(client, func(t *testing.T) {
			f, addr := newFlaky(t, srv, 0, 0)
			var retries atomic.Int32
			be := openT(t, backendURL(client, addr, "creds-"+client, 5), storage.Options{Retry: retry.Config{
				OnRetry: func(string, string, int, error, time.Duration) { retries.Add(1) },
			}})
			ops := map[string]func() error{
				"put":  func() error { return be.Put(ctx, "k", bytes.NewReader([]byte("x")), 1) },
				"stat": func() error { _, err := be.Stat(ctx, "k"); return err },
				"list": func() error { return be.List(ctx, "", func(storage.ObjectInfo) error { return nil }) },
				"get":  func() error { _, err := be.Get(ctx, "k", 0, -1); return err },
			}
			for name, op := range ops {
				before := f.total.Load()
				err := op()
				reqs := f.total.Load() - before
				if err == nil {
					t.Fatalf("%s with a wrong secret succeeded", name)
				}
				if storage.IsTransient(err) {
					t.Errorf("%s: wrong credentials classified as transient: %v", name, err)
				}
				if name != "stat" && !strings.Contains(err.Error(), "access denied") {
					t.Errorf("%s: error does not say access denied: %v", name, err)
				}
				if strings.Contains(err.Error(), srv.SecretKey[:8]) {
					t.Errorf("%s: error leaks the secret", name)
				}
				if reqs > 2 {
					t.Errorf("%s: %d requests for one operation with wrong credentials (retry storm)", name, reqs)
				}
				t.Logf("%s: %d request(s): %v", name, reqs, err)
			}
			if r := retries.Load(); r != 0 {
				t.Errorf("the decorator retried %d times", r)
			}
		})
	}
}
