// Package multipart streams a reader of unknown length into an S3-style
// multipart upload with a fixed number of part buffers, so memory stays at
// partSize × concurrency whatever the stream's length. It is shared by the
// s3 and minio backends; each supplies a Target speaking its client library.
package multipart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/gosst/gosst/storage/backend"
)

// S3 limits.
const (
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
	MaxParts    = 10000
)

// Part is one uploaded part, as CompleteMultipartUpload needs it.
type Part struct {
	Number   int32
	ETag     string
	Checksum string // base64 CRC32 if the target sends one, else ""
}

// Target is one object being written. Each call makes one request and
// does not retry it: the client libraries' retries are off, so that every
// retry goes through one loop that logs it and one budget (Config.Retry).
type Target interface {
	// PutSingle stores body as the whole object in one request; used when
	// the stream ends before the first part is full.
	PutSingle(ctx context.Context, body []byte) error
	// PutSection stores body (size bytes, seekable: the library rewinds it
	// to retry) as the whole object in one request.
	PutSection(ctx context.Context, body *io.SectionReader) error
	Create(ctx context.Context) (uploadID string, err error)
	UploadPart(ctx context.Context, uploadID string, n int32, body []byte) (Part, error)
	Complete(ctx context.Context, uploadID string, parts []Part) error
	Abort(ctx context.Context, uploadID string) error
}

// Config sets the memory bound.
type Config struct {
	PartSize    int // bytes per part, MinPartSize..MaxPartSize
	Concurrency int // parts in flight, and buffers allocated
	// SinglePutMax: a source of known size up to this many bytes that is
	// an io.ReaderAt and io.Seeker (a file, a byte slice) is sent as one
	// PUT straight from the source: no buffer, rewound by the library on
	// retry. 0 disables.
	SinglePutMax int64
	// Retry, if set, runs one request (op names it) and retries it on
	// transient errors. Upload uses it for every request of a streamed
	// source, whose parts are its own buffers, and for Abort; the requests
	// for a rewindable source (backend.Rewindable: file, byte slice, a
	// backend.RewindReader such as a decorator's wrapped body) are made once,
	// because the caller's retry decorator replays the whole Put from the
	// source: a request is retried by one layer, never by both.
	Retry func(ctx context.Context, op string, f func() error) error
}

// once runs f one time.
func once(_ context.Context, _ string, f func() error) error { return f() }

// rewindable reports whether r is a source the retry decorator replays.
func rewindable(r io.Reader) bool {
	_, ok := backend.Rewindable(r)
	return ok
}

// DefaultSinglePutMax is the default Config.SinglePutMax.
const DefaultSinglePutMax = 64 << 20

type readerAtSeeker interface {
	io.ReaderAt
	io.Seeker
}

// section returns the rest of r as a SectionReader if r can be read at
// offsets and its remaining length is size.
func section(r io.Reader, size int64) (*io.SectionReader, bool, error) {
	ras, ok := r.(readerAtSeeker)
	if !ok {
		return nil, false, nil
	}
	cur, err := ras.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, false, nil // a pipe or terminal: stream it
	}
	end, err := ras.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, false, nil
	}
	if _, err := ras.Seek(cur, io.SeekStart); err != nil {
		return nil, false, fmt.Errorf("read source: %w", err)
	}
	if end-cur != size {
		return nil, false, fmt.Errorf("%w: announced %d bytes, source has %d", backend.ErrSizeMismatch, size, end-cur)
	}
	return io.NewSectionReader(ras, cur, size), true, nil
}

// Check validates c.
func (c Config) Check() error {
	if c.PartSize < MinPartSize || c.PartSize > MaxPartSize {
		return fmt.Errorf("part size %d out of range: S3 needs %d MiB to %d GiB", c.PartSize, MinPartSize>>20, MaxPartSize>>30)
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		return fmt.Errorf("concurrency %d out of range 1..256", c.Concurrency)
	}
	return nil
}

// AbortTimeout bounds the clean-up request after a failed or cancelled upload.
const AbortTimeout = 30 * time.Second

// Put is a backend's Put over Upload: it checks key, retries each request
// of the upload through retry (op and key name it in the retry's log) and
// names key in the error.
func Put(ctx context.Context, t Target, key string, r io.Reader, size int64, c Config, retry func(ctx context.Context, op, key string, f func() error) error) error {
	if err := backend.ValidateKey(key); err != nil {
		return err
	}
	c.Retry = func(ctx context.Context, op string, f func() error) error { return retry(ctx, op, key, f) }
	if err := Upload(ctx, t, r, size, c); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Upload reads r to EOF and stores it through t. size is the announced
// length or -1. On any error or cancellation the multipart upload is
// aborted, so no object appears.
func Upload(ctx context.Context, t Target, r io.Reader, size int64, c Config) (err error) {
	if err := c.Check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if size > int64(MaxParts)*int64(c.PartSize) {
		return fmt.Errorf("object of %d bytes needs more than %d parts of %d MiB: raise the part size", size, MaxParts, c.PartSize>>20)
	}
	retry := c.Retry
	if retry == nil || rewindable(r) {
		retry = once
	}
	abortRetry := c.Retry
	if abortRetry == nil {
		abortRetry = once
	}
	if size >= 0 && size <= c.SinglePutMax {
		sec, ok, err := section(r, size)
		if err != nil {
			return err
		}
		if ok {
			if err := t.PutSection(ctx, sec); err != nil {
				return err
			}
			_, err := r.(io.Seeker).Seek(0, io.SeekEnd) // consumed, as a streamed source would be
			return err
		}
	}
	u := &uploader{t: t, c: c, size: size, retry: retry, pool: make(chan []byte, c.Concurrency)}
	for range c.Concurrency {
		u.pool <- nil // allocated on first use, so small objects stay small
	}

	// The first part is read into a buffer that grows as bytes arrive, so a
	// small object costs its own size, not a whole part.
	<-u.pool
	limit := c.PartSize
	if size >= 0 && size < int64(limit) {
		limit = int(size) + 1 // one more byte detects a longer stream
	}
	buf, n, rerr := readFirst(r, limit)
	u.total = int64(n)
	if rerr != nil && rerr != io.EOF {
		return fmt.Errorf("read source: %w", rerr)
	}
	if size >= 0 && u.total > size {
		return fmt.Errorf("%w: announced %d bytes, got more", backend.ErrSizeMismatch, size)
	}
	if rerr == io.EOF {
		if size >= 0 && u.total != size {
			return fmt.Errorf("%w: announced %d bytes, got %d", backend.ErrSizeMismatch, size, u.total)
		}
		return retry(ctx, "put", func() error { return t.PutSingle(ctx, buf[:n]) })
	}

	err = retry(ctx, "create multipart upload", func() (err error) {
		u.id, err = t.Create(ctx)
		return err
	})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), AbortTimeout)
			defer acancel()
			if aerr := abortRetry(actx, "abort multipart upload", func() error { return t.Abort(actx, u.id) }); aerr != nil {
				err = errors.Join(err, fmt.Errorf("abort multipart upload %s (the server keeps its parts until a lifecycle rule removes them): %w", u.id, aerr))
			}
		}
	}()
	return u.run(ctx, r, buf, n)
}

// uploader sends the parts of one multipart upload, up to c.Concurrency at
// a time, each from a buffer of the pool.
type uploader struct {
	t     Target
	c     Config
	id    string
	size  int64 // announced, or -1
	total int64 // bytes read so far
	retry func(ctx context.Context, op string, f func() error) error
	pool  chan []byte

	gctx   context.Context
	cancel context.CancelCauseFunc
	mu     sync.Mutex
	parts  []Part
	wg     sync.WaitGroup
	ferr   error
}

func (u *uploader) getBuf(ctx context.Context) ([]byte, error) {
	select {
	case b := <-u.pool:
		if b == nil {
			b = make([]byte, u.c.PartSize)
		}
		return b, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (u *uploader) fail(err error) {
	u.mu.Lock()
	if u.ferr == nil {
		u.ferr = err
	}
	u.mu.Unlock()
	u.cancel(err)
}

// send uploads part num from b[:n] on its own goroutine, joined by run.
func (u *uploader) send(num int32, b []byte, n int) {
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		var p Part
		err := u.retry(u.gctx, fmt.Sprintf("upload part %d", num), func() (err error) {
			p, err = u.t.UploadPart(u.gctx, u.id, num, b[:n])
			return err
		})
		u.pool <- b
		if err != nil {
			u.fail(fmt.Errorf("upload part %d: %w", num, err))
			return
		}
		u.mu.Lock()
		u.parts = append(u.parts, p)
		u.mu.Unlock()
	}()
}

// run uploads the first part (buf[:n]) and the rest of r, waits for every
// part and completes the upload.
func (u *uploader) run(ctx context.Context, r io.Reader, buf []byte, n int) error {
	u.gctx, u.cancel = context.WithCancelCause(ctx)
	defer u.cancel(nil)
	num := int32(1)
	u.send(num, buf, n)
	for {
		b, err := u.getBuf(u.gctx)
		if err != nil {
			break
		}
		n, rerr := io.ReadFull(r, b)
		u.total += int64(n)
		if u.size >= 0 && u.total > u.size {
			u.fail(fmt.Errorf("%w: announced %d bytes, got more", backend.ErrSizeMismatch, u.size))
			u.pool <- b
			break
		}
		if n > 0 {
			num++
			if num > MaxParts {
				u.fail(fmt.Errorf("stream longer than %d parts of %d MiB: raise the part size", MaxParts, u.c.PartSize>>20))
				u.pool <- b
				break
			}
			u.send(num, b, n)
		} else {
			u.pool <- b
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			u.fail(fmt.Errorf("read source: %w", rerr))
			break
		}
	}
	u.wg.Wait()
	return u.finish(ctx)
}

// finish completes the upload once every part is in, or returns the first
// failure.
func (u *uploader) finish(ctx context.Context) error {
	ferr := u.ferr
	if ferr == nil && ctx.Err() != nil {
		ferr = context.Cause(ctx)
	}
	if ferr == nil && u.size >= 0 && u.total != u.size {
		ferr = fmt.Errorf("%w: announced %d bytes, got %d", backend.ErrSizeMismatch, u.size, u.total)
	}
	if ferr != nil {
		return ferr
	}
	sort.Slice(u.parts, func(i, j int) bool { return u.parts[i].Number < u.parts[j].Number })
	return u.retry(ctx, "complete multipart upload", func() error { return u.t.Complete(ctx, u.id, u.parts) })
}

// readFirst reads up to limit bytes, growing the buffer geometrically. It
// returns io.EOF if the stream ended before limit bytes, nil if limit bytes
// were read.
func readFirst(r io.Reader, limit int) ([]byte, int, error) {
	buf := make([]byte, min(limit, 64<<10))
	n := 0
	for {
		m, err := io.ReadFull(r, buf[n:])
		n += m
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return buf, n, io.EOF
		}
		if err != nil {
			return buf, n, err
		}
		if n == limit {
			return buf, n, nil
		}
		nb := make([]byte, min(limit, 2*len(buf)))
		copy(nb, buf[:n])
		buf = nb
	}
}
