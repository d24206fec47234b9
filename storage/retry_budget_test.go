package storage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
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

// defaultAttempts is the documented retry budget of one operation.
const defaultAttempts = 5

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// retryLines returns the retry warnings logged since the last call.
func (l *lockedBuffer) retryLines(t *testing.T) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "storage: retrying after transient error" {
			out = append(out, m)
		}
	}
	l.b.Reset()
	return out
}

// defaultURL is the URL an operator writes for host:port, without the
// max-attempts (max-retries) parameter: the documented default applies.
func defaultURL(t *testing.T, client, hostport, prefix string) string {
	u, err := url.Parse(backendURL(client, hostport, prefix, 1))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del("max-attempts")
	q.Del("max-retries")
	u.RawQuery = q.Encode()
	return u.String()
}

// checkRetryLog: attempts-1 warnings for one operation, each naming op,
// key, the failed attempt as n/max and the error.
func checkRetryLog(t *testing.T, lines []map[string]any, op, key string, attempts int, reason string) {
	t.Helper()
	if len(lines) != attempts-1 {
		t.Errorf("%s %s: %d retry warnings, want %d: %v", op, key, len(lines), attempts-1, lines)
		return
	}
	for i, m := range lines {
		want := fmt.Sprintf("%d/%d", i+1, attempts)
		if m["level"] != "WARN" || m["op"] != op || m["key"] != key || m["attempt"] != want ||
			!strings.Contains(fmt.Sprint(m["err"]), reason) || m["wait"] == nil {
			t.Errorf("%s %s: retry warning %d = %v; want level WARN, op %q, key %q, attempt %s, err with %q", op, key, i+1, m, op, key, want, reason)
		}
	}
}

// TestRetryBudget: against a server answering 503 SlowDown to every
// request, every operation makes exactly the documented 5 attempts in all
// (the client libraries' own retries used to multiply with the decorator's:
// up to 25 requests per call, none of them logged), logs each retry at
// warn, and fails with a transient error that says it gave up.
func TestRetryBudget(t *testing.T) {
	srv := s3server.Require(t, s3server.Options{Buckets: []string{bucket}})
	credEnv(t, srv.AccessKey, srv.SecretKey)
	ctx := context.Background()
	for _, client := range clients {
		t.Run(client, func(t *testing.T) {
			f, addr := newFlaky(t, srv, 1<<30, http.StatusServiceUnavailable)
			var logs lockedBuffer
			be := openT(t, defaultURL(t, client, addr, "budget-"+client), storage.Options{
				Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
				Retry:  retry.Config{InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond},
			})
			data := storagetest.Bytes(21, 1000)
			for _, tc := range []struct {
				name, op, key string
				do            func() error
			}{
				{"stat", "stat", "obj", func() error { _, err := be.Stat(ctx, "obj"); return err }},
				{"get", "get", "obj", func() error { _, err := be.Get(ctx, "obj", 0, -1); return err }},
				{"list", "list", "backups/", func() error {
					return be.List(ctx, "backups/", func(storage.ObjectInfo) error { return nil })
				}},
				{"delete", "delete", "obj", func() error { return be.Delete(ctx, "obj") }},
				{"put a byte slice", "put", "obj", func() error { return be.Put(ctx, "obj", bytes.NewReader(data), int64(len(data))) }},
				// Streams: the decorator cannot replay them; the backend
				// retries each request within the same budget.
				{"put a small stream", "put", "small", func() error {
					return be.Put(ctx, "small", io.MultiReader(bytes.NewReader(data)), -1)
				}},
				{"put a multipart stream", "create multipart upload", "big", func() error {
					return be.Put(ctx, "big", storagetest.NewStream(22, 6<<20), -1)
				}},
			} {
				before := f.total.Load()
				err := tc.do()
				reqs := int(f.total.Load() - before)
				if err == nil || !storage.IsTransient(err) || !strings.Contains(err.Error(), fmt.Sprintf("giving up after %d attempts", defaultAttempts)) {
					t.Errorf("%s: %v; want a transient error that gives up after %d attempts", tc.name, err, defaultAttempts)
				}
				if reqs != defaultAttempts {
					t.Errorf("%s: %d requests reached the server, want %d (one budget per operation)", tc.name, reqs, defaultAttempts)
				}
				reason := "injected by the test"
				if tc.op == "stat" {
					reason = "Service Unavailable" // a HEAD response has no body
				}
				checkRetryLog(t, logs.retryLines(t), tc.op, tc.key, defaultAttempts, reason)
				t.Logf("%s: %d requests: %v", tc.name, reqs, err)
			}
		})
	}
}

// closingServer accepts TCP connections on loopback and closes each at
// once, before any response: the failure of a server that crashes or a
// proxy that drops connections.
func closingServer(t *testing.T) (addr string, conns *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = new(atomic.Int32)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), conns
}

// TestRetryBudgetConnectionClosed: a server that closes every connection
// before answering is retried (the libraries did this silently before),
// within the same budget, and each retry is logged.
func TestRetryBudgetConnectionClosed(t *testing.T) {
	credEnv(t, "AKIDTEST", "secret-not-used-for-anything")
	ctx := context.Background()
	for _, client := range clients {
		t.Run(client, func(t *testing.T) {
			addr, conns := closingServer(t)
			var logs lockedBuffer
			be := openT(t, defaultURL(t, client, addr, "closed"), storage.Options{
				Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
				Retry:  retry.Config{InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond},
			})
			_, err := be.Stat(ctx, "obj")
			if err == nil || !storage.IsTransient(err) || errors.Is(err, storage.ErrNotExist) {
				t.Fatalf("Stat against a server that closes connections: %v; want a transient error", err)
			}
			if n := conns.Load(); n != defaultAttempts {
				t.Errorf("%d connections, want %d", n, defaultAttempts)
			}
			checkRetryLog(t, logs.retryLines(t), "stat", "obj", defaultAttempts, "")
			t.Logf("%d connections: %v", conns.Load(), err)
		})
	}
}

// TestMissingBucket: a bucket that does not exist is ErrNoStorage (not a
// missing object, so a listing is not mistaken for an empty one), is not
// retried, and is not created by reading or writing.
func TestMissingBucket(t *testing.T) {
	srv := s3server.Require(t, s3server.Options{Buckets: []string{bucket}})
	credEnv(t, srv.AccessKey, srv.SecretKey)
	ctx := context.Background()
	for _, client := range clients {
		t.Run(client, func(t *testing.T) {
			f, addr := newFlaky(t, srv, 0, 0)
			u := strings.Replace(defaultURL(t, client, addr, "p"), bucket, "no-such-bucket", 1)
			be := openT(t, u, storage.Options{Retry: retry.Config{InitialBackoff: time.Millisecond}})
			for name, op := range map[string]func() error{
				"list": func() error { return be.List(ctx, "", func(storage.ObjectInfo) error { return nil }) },
				"get":  func() error { _, err := be.Get(ctx, "k", 0, -1); return err },
				"put":  func() error { return be.Put(ctx, "k", bytes.NewReader([]byte("x")), 1) },
			} {
				before := f.total.Load()
				err := op()
				if !errors.Is(err, storage.ErrNoStorage) || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
					t.Errorf("%s on a missing bucket: %v; want ErrNoStorage naming the bucket", name, err)
				}
				if errors.Is(err, storage.ErrNotExist) || storage.IsTransient(err) {
					t.Errorf("%s: a missing bucket must be neither a missing object nor transient: %v", name, err)
				}
				if n := f.total.Load() - before; n != 1 {
					t.Errorf("%s: %d requests, want 1", name, n)
				}
			}
			// Still no such bucket: nothing created it.
			if err := be.List(ctx, "", func(storage.ObjectInfo) error { return nil }); !errors.Is(err, storage.ErrNoStorage) {
				t.Errorf("after the failed operations the bucket exists: %v", err)
			}
		})
	}
}
