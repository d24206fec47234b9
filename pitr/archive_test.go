package pitr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/binlog"
	"github.com/gosst/gosst/storage/mem"
	"github.com/gosst/gosst/stream"
	"github.com/gosst/gosst/stream/codec"
)

// failingPut is a store whose Put reads a little of the stream, hands its
// context to the test and fails: storage failing mid-upload.
type failingPut struct {
	*mem.Backend
	ctxs chan<- context.Context
	err  error
}

func (s failingPut) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	s.ctxs <- ctx
	if _, err := io.ReadFull(r, make([]byte, 10)); err != nil {
		return err
	}
	return s.err
}

// parkingCodec passes bytes through (codec "none"), but once a write to its
// output fails it parks until park returns: it holds the sealing goroutine
// where the test can see whether upload waits for it.
type parkingCodec struct {
	codec.Codec
	park func()
}

func (c parkingCodec) NewWriter(w io.Writer) (io.WriteCloser, error) {
	inner, err := c.Codec.NewWriter(w)
	return parkingWriter{inner, c.park}, err
}

type parkingWriter struct {
	io.WriteCloser
	park func()
}

func (w parkingWriter) Write(p []byte) (int, error) {
	n, err := w.WriteCloser.Write(p)
	if err != nil {
		w.park()
	}
	return n, err
}

// archiveFrames returns the stacks of the goroutines other than the caller
// that are running code of archive.go.
func archiveFrames() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 { // the caller
			continue
		}
		for _, line := range strings.Split(g, "\n") {
			if strings.HasPrefix(line, "created by ") {
				break // what follows is where it was started, not what it runs
			}
			if strings.Contains(line, "/pitr/archive.go:") {
				found = append(found, g)
				break
			}
		}
	}
	return found
}

// When the storage fails mid-upload, upload returns only after its sealing
// goroutine has: nothing keeps reading the (by then closed) binlog file or
// writing the pipe behind the caller's back.
func TestUploadJoinsSealerWhenStorageFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mysql-bin.000001")
	if err := os.WriteFile(path, bytes.Repeat([]byte("binlog event "), 64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	ctxs := make(chan context.Context, 1)
	returned := make(chan struct{}) // closed once upload has returned
	// The sealer parks until the store's context ends (the errgroup
	// cancels it when Put fails) or upload has returned; only code that
	// does not join its goroutine gets to return while it is parked.
	park := func() {
		putCtx := <-ctxs
		select {
		case <-putCtx.Done():
		case <-returned:
		}
	}
	injected := errors.New("injected: storage failed mid-upload")
	a := &Archive{Store: failingPut{Backend: mem.New(), ctxs: ctxs, err: injected}}
	seg := &Segment{Format: SegmentFormat, Lineage: "00000000-0000-0000-0000-000000000001", Domain: 0, From: 0, To: 5}
	o := ArchiveOptions{Codec: parkingCodec{codec.None(), park}}

	done := make(chan error, 1)
	go func() { done <- a.upload(context.Background(), seg, path, [32]byte{}, o) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute): // safety net only
		t.Fatal("upload did not return after the storage failed")
	}
	leaked := archiveFrames()
	close(returned)
	if !errors.Is(err, injected) {
		t.Errorf("upload: %v, want the storage's error", err)
	}
	if err != nil && !strings.Contains(err.Error(), "upload "+seg.Key()) {
		t.Errorf("upload: %v, want it to name the object", err)
	}
	if len(leaked) > 0 {
		t.Errorf("upload returned while %d goroutine(s) of archive.go still ran:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
	if _, err := a.Store.Stat(context.Background(), seg.Key()+"/index.json"); err == nil {
		t.Error("an index was written for a failed upload")
	}
}

// The success path after the split: the stored object reads back as the
// file, and the index written after it describes it.
func TestUploadStoresSealedFileAndIndex(t *testing.T) {
	ctx := context.Background()
	plain := bytes.Repeat([]byte("binlog event "), 10<<10)
	path := filepath.Join(t.TempDir(), "mysql-bin.000007")
	if err := os.WriteFile(path, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := codec.Lookup(codec.NameZstd)
	if err != nil {
		t.Fatal(err)
	}
	a := &Archive{Store: mem.New()}
	seg := &Segment{Format: SegmentFormat, Lineage: "00000000-0000-0000-0000-000000000001", From: 3, To: 9,
		File: "mysql-bin.000007", ReplayFrom: 4, Binlog: &binlog.FileIndex{Size: int64(len(plain))}, Codecs: []string{"binlog", "zstd"}}
	if err := a.upload(ctx, seg, path, sha256.Sum256(plain), ArchiveOptions{Codec: c}); err != nil {
		t.Fatal(err)
	}
	got, err := a.load(ctx, seg.Key()+"/index.json")
	if err != nil {
		t.Fatal(err)
	}
	if got.Object != seg.Object || got.Object.PlainSize != int64(len(plain)) {
		t.Errorf("index object %+v, want %+v with plain size %d", got.Object, seg.Object, len(plain))
	}
	rc, err := a.Store.Get(ctx, got.Object.Key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var sum [32]byte
	copy(sum[:], mustHex(t, got.Object.PlainSHA256))
	sr, err := stream.NewReader(rc, stream.ReadOptions{Expected: &stream.Sum{Size: got.Object.PlainSize, SHA256: sum}})
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	back, err := io.ReadAll(sr)
	if err != nil || !bytes.Equal(back, plain) {
		t.Errorf("read back %d bytes (err %v), want the %d bytes of the file", len(back), err, len(plain))
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
