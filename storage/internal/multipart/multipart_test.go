package multipart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gosst/gosst/storage/backend"
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
