package storage_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/storage/limit"
	"github.com/gosst/gosst/storage/logging"
	"github.com/gosst/gosst/storage/retry"
)

// rewinder is a replayable body that is not an io.Seeker: only the
// RewindReader contract makes it retryable.
type rewinder struct {
	s       string
	r       *strings.Reader
	rewinds int
}

func newRewinder(s string) *rewinder           { return &rewinder{s: s, r: strings.NewReader(s)} }
func (w *rewinder) Read(p []byte) (int, error) { return w.r.Read(p) }
func (w *rewinder) Rewind() error              { w.rewinds++; w.r = strings.NewReader(w.s); return nil }
func (w *rewinder) Length() int64              { return int64(len(w.s)) }

// TestRetryPutRewindsThroughDecorators: a rewindable body stays
// rewindable through every decorator of storage.Open's stack
// (retry(logging(limit(backend)))), by the RewindReader type rather than
// by each decorator forwarding Seek; a stream stays one attempt.
func TestRetryPutRewindsThroughDecorators(t *testing.T) {
	ctx := context.Background()
	stack := func(m *mock, n *atomic.Int32) backend.Backend {
		return retry.New(logging.New(limit.New(m, 2), slog.New(slog.DiscardHandler)), fastRetry(n))
	}
	for _, tc := range []struct {
		name      string
		body      func() io.Reader
		wantCalls int32
		wantErr   bool
	}{
		{"seeker", func() io.Reader { return strings.NewReader("payload") }, 3, false},
		{"rewind reader", func() io.Reader { return newRewinder("payload") }, 3, false},
		{"stream", func() io.Reader { return io.MultiReader(strings.NewReader("payload")) }, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &mock{fails: 2, err: backend.MarkTransient(errors.New("reset"))}
			var n atomic.Int32
			err := stack(m, &n).Put(ctx, "k", tc.body(), 7)
			if (err != nil) != tc.wantErr || m.calls.Load() != tc.wantCalls {
				t.Fatalf("Put: %v after %d calls; want error=%v after %d", err, m.calls.Load(), tc.wantErr, tc.wantCalls)
			}
		})
	}
}

func TestRewindable(t *testing.T) {
	r := strings.NewReader("xxpayload")
	_, _ = r.Seek(2, io.SeekStart)
	rr, ok := backend.Rewindable(r)
	if !ok || rr.Length() != 7 {
		t.Fatalf("seeker: %v, length %d", ok, rr.Length())
	}
	b, _ := io.ReadAll(rr)
	if err := rr.Rewind(); err != nil || string(b) != "payload" {
		t.Fatalf("%q %v", b, err)
	}
	if b, _ := io.ReadAll(rr); string(b) != "payload" {
		t.Fatalf("after rewind: %q", b)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	if _, ok := backend.Rewindable(pr); ok {
		t.Fatal("pipe is rewindable")
	}
	w := newRewinder("abc")
	if rr, ok := backend.Rewindable(w); !ok || rr != backend.RewindReader(w) {
		t.Fatal("a RewindReader must be used as is")
	}
	// WrapBody: a counting wrapper stays rewindable and is reset.
	resets := 0
	body := backend.WrapBody(w, io.LimitReader(w, 100), func() { resets++ })
	wr, ok := body.(backend.RewindReader)
	if !ok || wr.Length() != 3 {
		t.Fatalf("wrapped body not rewindable: %T", body)
	}
	_, _ = io.ReadAll(wr)
	if err := wr.Rewind(); err != nil || w.rewinds != 1 || resets != 1 {
		t.Fatalf("rewind: %v, %d rewinds, %d resets", err, w.rewinds, resets)
	}
	stream := io.MultiReader(strings.NewReader("x"))
	if got := backend.WrapBody(stream, stream, nil); got != stream {
		t.Fatalf("stream wrapped as %T", got)
	}
}
