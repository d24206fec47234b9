// Package storagetest is the conformance suite every storage backend runs:
// the contract written on backend.Backend, checked the same way for the
// local directory, S3 and MinIO backends against a real server.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gosst/gosst/storage/backend"
)

// Suite configures a run for one backend.
type Suite struct {
	// New returns a backend over an empty namespace (a fresh directory or
	// prefix); called once per subtest.
	New func(t *testing.T) backend.Backend
	// PartSize of the backend's uploads (0 if it has none): round trips are
	// run at part-size boundaries.
	PartSize int
	// Large is the size of the streamed round trip with bounded memory
	// (skipped under -short or when 0).
	Large int64
	// MemBudget is the largest heap growth allowed during the Large round
	// trip (part buffers plus slack).
	MemBudget uint64
	// ListKeys objects are listed (default 1500); make New use a small page
	// size so that listing paginates.
	ListKeys int
}

// opaque hides io.Seeker and io.WriterTo: every upload in the suite takes the
// streaming path of a reader of unknown origin.
type opaque struct{ r io.Reader }

func (o opaque) Read(p []byte) (int, error) { return o.r.Read(p) }

// Run runs every test of the suite as subtests of t.
func (s Suite) Run(t *testing.T) {
	if s.ListKeys == 0 {
		s.ListKeys = 1500
	}
	tests := []struct {
		name string
		f    func(*testing.T, backend.Backend)
	}{
		{"RoundTrip", s.testRoundTrip},
		{"SeekableSource", s.testSeekable},
		{"RangedGet", s.testRangedGet},
		{"Missing", s.testMissing},
		{"InvalidKeys", s.testInvalidKeys},
		{"Overwrite", s.testOverwrite},
		{"Delete", s.testDelete},
		{"SizeMismatch", s.testSizeMismatch},
		{"ReaderError", s.testReaderError},
		{"CancelMidUpload", s.testCancel},
		{"ConcurrentWriters", s.testConcurrent},
		{"List", s.testList},
		{"LargeStream", s.testLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := s.New(t)
			t.Cleanup(func() { _ = be.Close() })
			tc.f(t, be)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func get(t *testing.T, ctx context.Context, be backend.Backend, key string, off, length int64) ([]byte, error) {
	t.Helper()
	rc, err := be.Get(ctx, key, off, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func mustGet(t *testing.T, ctx context.Context, be backend.Backend, key string) []byte {
	t.Helper()
	b, err := get(t, ctx, be, key, 0, -1)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	return b
}

func mustPut(t *testing.T, ctx context.Context, be backend.Backend, key string, data []byte, size int64) {
	t.Helper()
	if err := be.Put(ctx, key, opaque{bytes.NewReader(data)}, size); err != nil {
		t.Fatalf("Put %s (%d bytes, size %d): %v", key, len(data), size, err)
	}
}

func assertMissing(t *testing.T, ctx context.Context, be backend.Backend, key string) {
	t.Helper()
	if fi, err := be.Stat(ctx, key); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Stat %s = %+v, %v; want ErrNotExist", key, fi, err)
	}
	if _, err := get(t, ctx, be, key, 0, -1); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Get %s: %v; want ErrNotExist", key, err)
	}
	err := be.List(ctx, "", func(fi backend.ObjectInfo) error {
		if fi.Key == key {
			return fmt.Errorf("listed %s (%d bytes), which must not be visible", key, fi.Size)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func (s Suite) sizes() []int64 {
	sz := []int64{0, 1, 2, 1000, 64 << 10, 64<<10 + 1, 1 << 20}
	if p := int64(s.PartSize); p > 0 {
		sz = append(sz, p-1, p, p+1, 2*p, 2*p+7)
	}
	return sz
}

func (s Suite) testRoundTrip(t *testing.T, be backend.Backend) {
	ctx := ctxT(t)
	for i, n := range s.sizes() {
		for _, known := range []bool{false, true} {
			key := fmt.Sprintf("rt/%d-%v", n, known)
			data := Bytes(uint64(i), n)
			size := int64(-1)
			if known {
				size = n
			}
			mustPut(t, ctx, be, key, data, size)
			fi, err := be.Stat(ctx, key)
			if err != nil || fi.Size != n || fi.Key != key {
				t.Fatalf("Stat %s = %+v, %v; want size %d", key, fi, err, n)
			}
			if fi.ModTime.IsZero() || time.Since(fi.ModTime) > time.Hour || time.Until(fi.ModTime) > time.Hour {
				t.Errorf("Stat %s: implausible ModTime %v", key, fi.ModTime)
			}
			if got := mustGet(t, ctx, be, key); !bytes.Equal(got, data) {
				t.Fatalf("%s: read back %d bytes, differ from the %d written", key, len(got), len(data))
			}
		}
	}
	// A nested key works like a flat one.
	mustPut(t, ctx, be, "a/b/c/nested", []byte("deep"), -1)
	if got := mustGet(t, ctx, be, "a/b/c/nested"); string(got) != "deep" {
		t.Fatalf("nested key: got %q", got)
	}
}

// testSeekable: files and byte slices of known size (the path backends may
// send in one request without buffering) store exactly the bytes from the
// reader's current position.
func (s Suite) testSeekable(t *testing.T, be backend.Backend) {
	ctx := ctxT(t)
	dir := t.TempDir()
	for i, n := range []int64{0, 1, 1000, 1 << 20, int64(s.PartSize) + 1} {
		data := Bytes(uint64(200+i), n+3)
		br := bytes.NewReader(data)
		_, _ = br.Seek(3, io.SeekStart)
		key := fmt.Sprintf("seek/bytes-%d", n)
		if err := be.Put(ctx, key, br, n); err != nil {
			t.Fatalf("Put %s from a bytes.Reader at offset 3: %v", key, err)
		}
		if got := mustGet(t, ctx, be, key); !bytes.Equal(got, data[3:]) {
			t.Fatalf("%s: read back %d bytes, differ from the %d written", key, len(got), n)
		}
		p := filepath.Join(dir, key[5:])
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.Seek(3, io.SeekStart)
		key = fmt.Sprintf("seek/file-%d", n)
		err = be.Put(ctx, key, f, n)
		f.Close()
		if err != nil {
			t.Fatalf("Put %s from an *os.File: %v", key, err)
		}
		if got := mustGet(t, ctx, be, key); !bytes.Equal(got, data[3:]) {
			t.Fatalf("%s: read back %d bytes, differ from the %d written", key, len(got), n)
		}
	}
	for _, c := range []struct{ n, announced int64 }{{10, 11}, {10, 9}, {0, 1}} {
		key := fmt.Sprintf("seek/mismatch-%d-%d", c.n, c.announced)
		if err := be.Put(ctx, key, bytes.NewReader(Bytes(1, c.n)), c.announced); !errors.Is(err, backend.ErrSizeMismatch) {
			t.Errorf("Put of a %d-byte slice announced as %d: %v; want ErrSizeMismatch", c.n, c.announced, err)
		}
		assertMissing(t, ctx, be, key)
	}
}

func (s Suite) testRangedGet(t *testing.T, be backend.Backend) {
	ctx := ctxT(t)
	const n = 10000
	data := Bytes(7, n)
	mustPut(t, ctx, be, "range/obj", data, n)
	cases := []struct {
		off, length int64
		want        []byte
	}{
		{0, -1, data},
		{0, 1, data[:1]},
		{0, n, data},
		{0, n + 100, data},
		{n - 1, 1, data[n-1:]},
		{n - 1, -1, data[n-1:]},
		{n - 10, 100, data[n-10:]},
		{100, 200, data[100:300]},
		{1, -1, data[1:]},
	}
	for _, c := range cases {
		got, err := get(t, ctx, be, "range/obj", c.off, c.length)
		if err != nil {
			t.Errorf("Get(off %d, len %d): %v", c.off, c.length, err)
			continue
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("Get(off %d, len %d): %d bytes, want %d", c.off, c.length, len(got), len(c.want))
		}
	}
	for _, c := range []struct{ off, length int64 }{{n, 1}, {n, -1}, {n + 5, -1}, {1 << 40, 10}} {
		if b, err := get(t, ctx, be, "range/obj", c.off, c.length); !errors.Is(err, backend.ErrInvalidRange) {
			t.Errorf("Get(off %d, len %d) past the end = %d bytes, %v; want ErrInvalidRange", c.off, c.length, len(b), err)
		}
	}
	for _, c := range []struct{ off, length int64 }{{-1, 1}, {0, 0}} {
		if _, err := be.Get(ctx, "range/obj", c.off, c.length); err == nil {
			t.Errorf("Get(off %d, len %d) succeeded; want an error", c.off, c.length)
		}
	}
	// An empty object read whole, and a range from 0 of it.
	mustPut(t, ctx, be, "range/empty", nil, 0)
	for _, l := range []int64{-1, 10} {
		if b, err := get(t, ctx, be, "range/empty", 0, l); err != nil || len(b) != 0 {
			t.Errorf("Get(empty, 0, %d) = %d bytes, %v; want 0 bytes", l, len(b), err)
		}
	}
}

func (s Suite) testMissing(t *testing.T, be backend.Backend) {
	ctx := ctxT(t)
	assertMissing(t, ctx, be, "nope")
	assertMissing(t, ctx, be, "no/such/dir/key")
	if _, err := be.Get(ctx, "nope", 5, 10); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("ranged Get of a missing key: %v; want ErrNotExist", err)
	}
	n := 0
	if err := be.List(ctx, "nothing/here/", func(backend.ObjectInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("List of an empty prefix: %d objects, %v", n, err)
	}
}

func (s Suite) testInvalidKeys(t *testing.T, be backend.Backend) {
	ctx := ctxT(t)
	for _, k := range []string{"", "/abs", "a//b", "a/", "../x", "a/../b", "./a", "a/.", "a\x00b", strings.Repeat("x", 256), backend.TempPrefix + "x"} {
		if err := be.Put(ctx, k, strings.NewReader("x"), 1); !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("Put %q: %v; want ErrInvalidKey", k, err)
		}
		if _, err := be.Get(ctx, k, 0, -1); !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("Get %q: %v; want ErrInvalidKey", k, err)
		}
		if _, err := be.Stat(ctx, k); !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("Stat %q: %v; want ErrInvalidKey", k, err)
		}
		if err := be.Delete(ctx, k); !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("Delete %q: %v; want ErrInvalidKey", k, err)
		}
	}
}

func (s Suite) testOverwrite(t *testing.T, be backend.Backend) {
	ctx := ctxT(t)
	big := Bytes(1, int64(max(s.PartSize, 64<<10))+123)
	mustPut(t, ctx, be, "ow/key", big, -1)
	small := []byte("second version")
	mustPut(t, ctx, be, "ow/key", small, int64(len(small)))
	if got := mustGet(t, ctx, be, "ow/key"); !bytes.Equal(got, small) {
		t.Fatalf("after overwrite read %d bytes, want the %d of the second version", len(got), len(small))
	}
	if fi, err := be.Stat(ctx, "ow/key"); err != nil || fi.Size != int64(len(small)) {
		t.Fatalf("Stat after overwrite = %+v, %v", fi, err)
	}
	mustPut(t, ctx, be, "ow/key", nil, 0)
	if got := mustGet(t, ctx, be, "ow/key"); len(got) != 0 {
		t.Fatalf("overwrite with empty: read %d bytes", len(got))
	}
}

func (s Suite) testDelete(t *testing.T, be backend.Backend) {
	ctx := ctxT(t)
	if err := be.Delete(ctx, "del/never-existed"); err != nil {
		t.Fatalf("Delete of a missing key: %v; the contract says it is not an error", err)
	}
	mustPut(t, ctx, be, "del/x", []byte("x"), 1)
	mustPut(t, ctx, be, "del/y", []byte("y"), 1)
	if err := be.Delete(ctx, "del/x"); err != nil {
		t.Fatal(err)
	}
	assertMissing(t, ctx, be, "del/x")
	if err := be.Delete(ctx, "del/x"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if got := mustGet(t, ctx, be, "del/y"); string(got) != "y" {
		t.Fatalf("neighbour damaged by Delete: %q", got)
	}
	// The key can be written again.
	mustPut(t, ctx, be, "del/x", []byte("again"), -1)
	if got := mustGet(t, ctx, be, "del/x"); string(got) != "again" {
		t.Fatalf("rewrite after delete: %q", got)
	}
}

func (s Suite) testSizeMismatch(t *testing.T, be backend.Backend) {
	ctx := ctxT(t)
	big := int64(max(s.PartSize, 64<<10)) + 10
	for _, c := range []struct {
		n, announced int64
	}{{5, 10}, {15, 10}, {0, 1}, {big, big - 1}, {big, big + 1}} {
		key := fmt.Sprintf("mismatch/%d-%d", c.n, c.announced)
		err := be.Put(ctx, key, opaque{NewStream(3, c.n)}, c.announced)
		if !errors.Is(err, backend.ErrSizeMismatch) {
			t.Errorf("Put of %d bytes announced as %d: %v; want ErrSizeMismatch", c.n, c.announced, err)
		}
		assertMissing(t, ctx, be, key)
	}
}

type failingReader struct {
	r     io.Reader
	after int64
	err   error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, f.err
	}
	if int64(len(p)) > f.after {
		p = p[:f.after]
	}
	n, err := f.r.Read(p)
	f.after -= int64(n)
	return n, err
}

var errSource = errors.New("storagetest: source failed")

func (s Suite) testReaderError(t *testing.T, be backend.Backend) {
	ctx := ctxT(t)
	for _, after := range []int64{0, 100, int64(s.PartSize)*2 + 5} {
		key := fmt.Sprintf("rderr/%d", after)
		err := be.Put(ctx, key, &failingReader{NewStream(4, 1<<40), after, errSource}, -1)
		if !errors.Is(err, errSource) {
			t.Errorf("Put with a source failing after %d bytes: %v; want the source's error", after, err)
		}
		assertMissing(t, ctx, be, key)
	}
	// A failed overwrite leaves the old object intact.
	mustPut(t, ctx, be, "rderr/keep", []byte("old"), -1)
	if err := be.Put(ctx, "rderr/keep", &failingReader{NewStream(4, 1<<40), int64(s.PartSize) + 1, errSource}, -1); err == nil {
		t.Fatal("Put with failing source succeeded")
	}
	if got := mustGet(t, ctx, be, "rderr/keep"); string(got) != "old" {
		t.Fatalf("failed overwrite changed the object: %d bytes", len(got))
	}
}

// cancelReader cancels ctx after n bytes and then keeps producing.
type cancelReader struct {
	r      io.Reader
	n      int64
	cancel func()
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.n <= 0 && c.cancel != nil {
		c.cancel()
		c.cancel = nil
		time.Sleep(10 * time.Millisecond)
	}
	if c.n > 0 && int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

func (s Suite) testCancel(t *testing.T, be backend.Backend) {
	ctx := ctxT(t)
	for _, after := range []int64{0, 1000, int64(s.PartSize)*2 + 5} {
		key := fmt.Sprintf("cancel/%d", after)
		cctx, cancel := context.WithCancel(ctx)
		total := after + int64(max(s.PartSize, 1<<20))*3
		err := be.Put(cctx, key, &cancelReader{NewStream(5, total), after, cancel}, -1)
		cancel()
		if err == nil {
			t.Errorf("Put cancelled after %d bytes returned nil", after)
		} else if !errors.Is(err, context.Canceled) {
			t.Logf("Put cancelled after %d bytes: %v (not context.Canceled)", after, err)
		}
		assertMissing(t, ctx, be, key)
	}
	// Cancelled before the call: nothing happens.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := be.Put(cctx, "cancel/before", strings.NewReader("x"), 1); err == nil {
		t.Error("Put with a cancelled ctx succeeded")
	}
	assertMissing(t, ctx, be, "cancel/before")
	// A cancelled overwrite keeps the old version.
	mustPut(t, ctx, be, "cancel/keep", []byte("old"), -1)
	cctx, cancel = context.WithCancel(ctx)
	_ = be.Put(cctx, "cancel/keep", &cancelReader{NewStream(6, int64(s.PartSize)*4+1), int64(s.PartSize) + 1, cancel}, -1)
	cancel()
	if got := mustGet(t, ctx, be, "cancel/keep"); string(got) != "old" {
		t.Fatalf("cancelled overwrite changed the object: %d bytes", len(got))
	}
}

func (s Suite) testConcurrent(t *testing.T, be backend.Backend) {
	ctx := ctxT(t)
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	size := func(i int) int64 { return int64(i)*1000 + 100<<10 }
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("conc/w%d", i)
			if err := be.Put(ctx, key, opaque{NewStream(uint64(100+i), size(i))}, -1); err != nil {
				errs <- fmt.Errorf("writer %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range writers {
		got := mustGet(t, ctx, be, fmt.Sprintf("conc/w%d", i))
		if !bytes.Equal(got, Bytes(uint64(100+i), size(i))) {
			t.Errorf("writer %d: content differs", i)
		}
	}
}

func (s Suite) testList(t *testing.T, be backend.Backend) {
	ctx := ctxT(t)
	want, err := s.putListKeys(ctx, be)
	if err != nil {
		t.Fatalf("creating %d keys: %v", s.ListKeys, err)
	}
	mustPut(t, ctx, be, "listx", []byte("x"), 1)
	mustPut(t, ctx, be, "other/a", []byte("a"), 1)

	collect := func(prefix string) map[string]int64 {
		got := map[string]int64{}
		err := be.List(ctx, prefix, func(fi backend.ObjectInfo) error {
			if _, dup := got[fi.Key]; dup {
				t.Errorf("List(%q) returned %s twice", prefix, fi.Key)
			}
			got[fi.Key] = fi.Size
			return nil
		})
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		return got
	}
	got := collect("list/")
	if len(got) != len(want) {
		t.Fatalf("List(list/) returned %d keys, want %d", len(got), len(want))
	}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("List: %s size %d, want %d", k, got[k], n)
		}
	}
	if n := len(collect("list/k001")); n != 100 {
		t.Errorf("List(list/k001) returned %d keys, want 100", n)
	}
	if all := collect(""); len(all) != len(want)+2 {
		t.Errorf("List(\"\") returned %d keys, want %d", len(all), len(want)+2)
	}
	if g := collect("list"); len(g) != len(want)+1 {
		t.Errorf("List(list) (a plain string prefix) returned %d keys, want %d", len(g), len(want)+1)
	}
	// fn's error stops the listing and comes back unchanged.
	stop := errors.New("enough")
	calls := 0
	err = be.List(ctx, "list/", func(backend.ObjectInfo) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("List with fn failing at call 3: %d calls, %v", calls, err)
	}
	// fn runs in the caller's goroutine: it may call the backend.
	keys := make([]string, 0, 5)
	err = be.List(ctx, "list/k0000", func(fi backend.ObjectInfo) error {
		keys = append(keys, fi.Key)
		_, err := be.Stat(ctx, fi.Key)
		return err
	})
	sort.Strings(keys)
	if err != nil || len(keys) != 10 {
		t.Errorf("List with Stat inside fn: %v, %d keys", err, len(keys))
	}
}

// putListKeys creates s.ListKeys objects under list/ (eight at a time) and
// returns their sizes by key.
func (s Suite) putListKeys(ctx context.Context, be backend.Backend) (map[string]int64, error) {
	want := map[string]int64{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range s.ListKeys {
		key := fmt.Sprintf("list/k%05d", i)
		n := int64(i % 7)
		want[key] = n
		g.Go(func() error { return be.Put(gctx, key, bytes.NewReader(Bytes(uint64(i), n)), n) })
	}
	return want, g.Wait()
}

func (s Suite) testLarge(t *testing.T, be backend.Backend) {
	if s.Large == 0 {
		t.Skip("no large size configured for this backend")
	}
	if testing.Short() {
		t.Skip("-short: skipping the streamed round trip of large objects")
	}
	ctx := ctxT(t)
	runtime.GC()
	const seed = 42
	want, err := HashStream(seed, s.Large)
	if err != nil {
		t.Fatal(err)
	}
	mw := StartMemWatch()
	start := time.Now()
	if err := be.Put(ctx, "large/stream", opaque{NewStream(seed, s.Large)}, -1); err != nil {
		mw.Stop()
		t.Fatalf("Put %d bytes: %v", s.Large, err)
	}
	up := time.Since(start)
	start = time.Now()
	rc, err := be.Get(ctx, "large/stream", 0, -1)
	if err != nil {
		mw.Stop()
		t.Fatal(err)
	}
	h := Hasher()
	n, err := io.CopyBuffer(h, rc, make([]byte, 1<<20))
	rc.Close()
	down := time.Since(start)
	base, peak, rss := mw.Stop()
	if err != nil || n != s.Large {
		t.Fatalf("read back %d of %d bytes: %v", n, s.Large, err)
	}
	if h.Sum64() != want {
		t.Fatalf("read back %d bytes whose hash differs from what was written", n)
	}
	mib := float64(s.Large) / (1 << 20)
	t.Logf("%.0f MiB: put %.0f MiB/s, get %.0f MiB/s; heap %d MiB at start, peak %d MiB; peak RSS %d MiB",
		mib, mib/up.Seconds(), mib/down.Seconds(), base>>20, peak>>20, rss>>20)
	if s.MemBudget > 0 && peak > base+s.MemBudget {
		t.Errorf("heap grew by %d MiB while streaming %.0f MiB; the budget is %d MiB", (peak-base)>>20, mib, s.MemBudget>>20)
	}
	if err := be.Delete(ctx, "large/stream"); err != nil {
		t.Error(err)
	}
}
