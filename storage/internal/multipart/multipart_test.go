package multipart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/storage/retry"
)

// fake records what an uploader does.
type fake struct {
	mu        sync.Mutex
	parts     map[int32][]byte
	single    []byte
	created   int
	completed []Part
	aborted   int
	inflight  atomic.Int32
	peak      atomic.Int32
	failPart  int32
}

func (f *fake) PutSingle(_ context.Context, b []byte) error {
	f.single = append([]byte{}, b...)
	return nil
}
func (f *fake) PutSection(_ context.Context, b *io.SectionReader) error {
	f.single, _ = io.ReadAll(b)
	return nil
}
func (f *fake) Create(context.Context) (string, error) { f.created++; return "id", nil }
func (f *fake) UploadPart(_ context.Context, _ string, n int32, b []byte) (Part, error) {
	c := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for p := f.peak.Load(); c > p && !f.peak.CompareAndSwap(p, c); p = f.peak.Load() {
	}
	if n == f.failPart {
		return Part{}, backend.MarkTransient(errors.New("injected"))
	}
	f.mu.Lock()
	f.parts[n] = append([]byte{}, b...)
	f.mu.Unlock()
	return Part{Number: n, ETag: fmt.Sprint(n)}, nil
}
func (f *fake) Complete(_ context.Context, _ string, p []Part) error { f.completed = p; return nil }
func (f *fake) Abort(context.Context, string) error                  { f.aborted++; return nil }

const ps = MinPartSize

func TestUploadShapes(t *testing.T) {
	for _, n := range []int{0, 1, ps - 1, ps, ps + 1, 3*ps + 17} {
		for _, size := range []int64{-1, int64(n)} {
			f := &fake{parts: map[int32][]byte{}}
			data := bytes.Repeat([]byte{byte(n)}, n)
			for i := range data {
				data[i] = byte(i * 7)
			}
			if err := Upload(context.Background(), f, bytes.NewReader(data), size, Config{PartSize: ps, Concurrency: 2}); err != nil {
				t.Fatalf("n=%d size=%d: %v", n, size, err)
			}
			var got []byte
			if f.created == 0 {
				got = f.single
			} else {
				for i, p := range f.completed {
					if p.Number != int32(i+1) {
						t.Fatalf("n=%d: parts out of order: %+v", n, f.completed)
					}
					got = append(got, f.parts[p.Number]...)
				}
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("n=%d size=%d: stored %d bytes, differ", n, size, len(got))
			}
			if wantMulti := n >= ps; (f.created == 1) != wantMulti {
				t.Fatalf("n=%d: multipart %v", n, f.created == 1)
			}
		}
	}
}

func TestUploadFailureAborts(t *testing.T) {
	f := &fake{parts: map[int32][]byte{}, failPart: 2}
	err := Upload(context.Background(), f, io.LimitReader(zero{}, 10*ps), -1, Config{PartSize: ps, Concurrency: 3})
	if err == nil || f.aborted != 1 || f.completed != nil {
		t.Fatalf("err %v, aborted %d, completed %v", err, f.aborted, f.completed)
	}
	if !backend.IsTransient(err) {
		t.Errorf("the part's classification is lost: %v", err)
	}
	if p := f.peak.Load(); p > 3 {
		t.Errorf("%d parts in flight with concurrency 3", p)
	}
}

func TestUploadLimits(t *testing.T) {
	f := &fake{parts: map[int32][]byte{}}
	if err := Upload(context.Background(), f, zero{}, int64(MaxParts)*ps+1, Config{PartSize: ps, Concurrency: 1}); err == nil {
		t.Fatal("accepted a size beyond 10,000 parts")
	}
	if err := (Config{PartSize: ps - 1, Concurrency: 1}).Check(); err == nil {
		t.Fatal("accepted a part below 5 MiB")
	}
}

type zero struct{}

func (zero) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestSinglePutForSeekableSources(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefgh"), ps)
	cfg := Config{PartSize: ps, Concurrency: 2, SinglePutMax: 16 * ps}
	f := &fake{parts: map[int32][]byte{}}
	br := bytes.NewReader(data)
	if err := Upload(context.Background(), f, br, int64(len(data)), cfg); err != nil {
		t.Fatal(err)
	}
	if f.created != 0 || !bytes.Equal(f.single, data) || br.Len() != 0 {
		t.Fatalf("a %d-byte slice of known size: multipart %v, single %d bytes, %d left unread", len(data), f.created != 0, len(f.single), br.Len())
	}
	f = &fake{parts: map[int32][]byte{}}
	cfg.SinglePutMax = ps
	if err := Upload(context.Background(), f, bytes.NewReader(data), int64(len(data)), cfg); err != nil || f.created != 1 {
		t.Fatalf("above SinglePutMax: err %v, multipart %v", err, f.created == 1)
	}
	f = &fake{parts: map[int32][]byte{}}
	cfg.SinglePutMax = 16 * ps
	if err := Upload(context.Background(), f, bytes.NewReader(data), -1, cfg); err != nil || f.created != 1 {
		t.Fatalf("unknown size: err %v, multipart %v", err, f.created == 1)
	}
}

// flakyTarget fails the first `fails` calls of every request kind with a
// transient error and counts the calls.
type flakyTarget struct {
	fake
	fails int
	calls sync.Map // kind → *atomic.Int32
}

func (f *flakyTarget) fail(kind string) error {
	v, _ := f.calls.LoadOrStore(kind, new(atomic.Int32))
	if int(v.(*atomic.Int32).Add(1)) <= f.fails {
		return backend.MarkTransient(fmt.Errorf("%s: 503 injected", kind))
	}
	return nil
}

func (f *flakyTarget) count(kind string) int {
	v, ok := f.calls.Load(kind)
	if !ok {
		return 0
	}
	return int(v.(*atomic.Int32).Load())
}

func (f *flakyTarget) PutSingle(ctx context.Context, b []byte) error {
	if err := f.fail("single"); err != nil {
		return err
	}
	return f.fake.PutSingle(ctx, b)
}
func (f *flakyTarget) PutSection(ctx context.Context, b *io.SectionReader) error {
	if err := f.fail("section"); err != nil {
		return err
	}
	return f.fake.PutSection(ctx, b)
}
func (f *flakyTarget) Create(ctx context.Context) (string, error) {
	if err := f.fail("create"); err != nil {
		return "", err
	}
	return f.fake.Create(ctx)
}
func (f *flakyTarget) UploadPart(ctx context.Context, id string, n int32, b []byte) (Part, error) {
	if err := f.fail(fmt.Sprint("part", n)); err != nil {
		return Part{}, err
	}
	return f.fake.UploadPart(ctx, id, n, b)
}
func (f *flakyTarget) Complete(ctx context.Context, id string, p []Part) error {
	if err := f.fail("complete"); err != nil {
		return err
	}
	return f.fake.Complete(ctx, id, p)
}
func (f *flakyTarget) Abort(ctx context.Context, id string) error {
	if err := f.fail("abort"); err != nil {
		return err
	}
	return f.fake.Abort(ctx, id)
}

// streamOnly hides io.Seeker: a source the retry decorator cannot replay.
type streamOnly struct{ io.Reader }

// TestRetryOneLayer: the requests of a streamed source are retried by the
// uploader, each within the budget; those of a rewindable source are made
// once (the retry decorator above replays the whole Put), so a request is
// never retried by two layers.
func TestRetryOneLayer(t *testing.T) {
	ctx := context.Background()
	const budget = 3
	var retries atomic.Int32
	rc := retry.Config{MaxAttempts: budget, InitialBackoff: time.Microsecond, MaxBackoff: time.Microsecond,
		OnRetry: func(string, string, int, error, time.Duration) { retries.Add(1) }}
	cfg := Config{PartSize: ps, Concurrency: 2, SinglePutMax: 64 << 20,
		Retry: func(ctx context.Context, op string, f func() error) error { return rc.Do(ctx, op, "k", f) }}
	data := bytes.Repeat([]byte("0123456789abcdef"), (2*ps+100)/16)

	// A stream through budget-1 failures of every request: stored.
	f := &flakyTarget{fake: fake{parts: map[int32][]byte{}}, fails: budget - 1}
	if err := Upload(ctx, f, streamOnly{bytes.NewReader(data)}, -1, cfg); err != nil {
		t.Fatalf("stream through %d failures per request: %v", budget-1, err)
	}
	for _, kind := range []string{"create", "part1", "part2", "part3", "complete"} {
		if n := f.count(kind); n != budget {
			t.Errorf("%s: %d attempts, want %d", kind, n, budget)
		}
	}
	small := &flakyTarget{fake: fake{parts: map[int32][]byte{}}, fails: budget - 1}
	if err := Upload(ctx, small, streamOnly{bytes.NewReader(data[:100])}, -1, cfg); err != nil || small.count("single") != budget {
		t.Errorf("small stream: %v after %d attempts", err, small.count("single"))
	}

	// One failure more than the budget: the upload fails, and is aborted
	// (the abort retried too).
	f = &flakyTarget{fake: fake{parts: map[int32][]byte{}}, fails: budget}
	err := Upload(ctx, f, streamOnly{bytes.NewReader(data)}, -1, cfg)
	if err == nil || !backend.IsTransient(err) || !strings.Contains(err.Error(), fmt.Sprintf("giving up after %d attempts", budget)) {
		t.Fatalf("stream through %d failures per request: %v; want a transient error after %d attempts", budget, err, budget)
	}
	if n := f.count("create"); n != budget {
		t.Errorf("create: %d attempts, want %d", n, budget)
	}

	// Rewindable sources: each request once, whatever the budget.
	for _, tc := range []struct {
		name string
		r    io.Reader
		size int64
		kind string
	}{
		{"section", bytes.NewReader(data), int64(len(data)), "section"},
		{"multipart", bytes.NewReader(data), -1, "create"},
	} {
		f := &flakyTarget{fake: fake{parts: map[int32][]byte{}}, fails: 1}
		before := retries.Load()
		err := Upload(ctx, f, tc.r, tc.size, cfg)
		if err == nil || !backend.IsTransient(err) {
			t.Errorf("%s: %v; want the transient error of the one attempt", tc.name, err)
		}
		if n := f.count(tc.kind); n != 1 {
			t.Errorf("%s: %d attempts of %s for a rewindable source, want 1", tc.name, n, tc.kind)
		}
		if retries.Load() != before {
			t.Errorf("%s: the uploader retried a request of a rewindable source", tc.name)
		}
	}
}
