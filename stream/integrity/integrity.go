package integrity

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/gosst/gosst/stream/codec"
)

// Writer compresses plaintext with a codec and, on Close, appends the end
// marker. It is not safe for concurrent use.
type Writer struct {
	dst   io.Writer
	cw    countingWriter
	enc   io.WriteCloser
	codec string
	h     *asyncHash
	n     int64
	err   error
	done  bool
}

// NewWriter returns a Writer that compresses into w with c. Close must be
// called to flush the codec, write the marker and stop the hashing
// goroutine (also after an error); Close does not close w.
// After an error every further call returns that error.
func NewWriter(w io.Writer, c codec.Codec) (*Writer, error) {
	if _, err := containerSize(c.Name()); err != nil {
		return nil, err
	}
	iw := &Writer{dst: w, codec: c.Name()}
	iw.cw.w = w
	enc, err := c.NewWriter(&iw.cw)
	if err != nil {
		return nil, err
	}
	iw.enc = enc
	iw.h = newAsyncHash()
	return iw, nil
}

// Write hashes and compresses p.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("integrity: write after close")
	}
	n, err := w.enc.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Close flushes the codec and writes the end marker (none for codec
// "none"). It is safe to call more than once.
func (w *Writer) Close() error {
	if w.done {
		return w.err
	}
	w.done = true
	w.h.Close()
	if err := w.enc.Close(); err != nil && w.err == nil {
		w.err = err
	}
	if w.err != nil || w.codec == codec.NameNone {
		return w.err
	}
	s := w.Sum()
	m := Marker{Version: MarkerVersion, Size: uint64(s.Size), Stored: uint64(w.cw.n), StoredCRC: w.cw.crc, SHA256: s.SHA256}
	buf, err := AppendContainer(nil, w.codec, m)
	if err == nil {
		_, err = w.cw.Write(buf)
	}
	if err != nil {
		w.err = fmt.Errorf("integrity: write end marker: %w", err)
	}
	return w.err
}

// ErrAborted is returned by a Writer after Abort.
var ErrAborted = errors.New("integrity: stream aborted")

// Abort ends a stream that failed: it releases the codec and the hashing
// goroutine but writes **no** end marker, and drops what the codec would
// write to finish its frame (zstd: the last block and the frame checksum),
// so a reader of whatever reached the destination sees a truncated stream,
// never a sealed one, nor a complete frame that a reader without the marker
// (zstd -d, or stream decode of a foreign stream) would take for the whole.
// Close after Abort returns ErrAborted.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.h.Close()
	w.cw.discard = true
	_ = w.enc.Close()
	w.err = ErrAborted
}

// Sum returns the size and SHA-256 of the plaintext written so far; after
// Close it is the value in the marker, to be recorded in the manifest.
func (w *Writer) Sum() Sum {
	s := Sum{Size: w.n}
	w.h.Sum(s.SHA256[:0])
	return s
}

// StoredSize returns the number of bytes written to the underlying writer,
// the marker included once Close has returned.
func (w *Writer) StoredSize() int64 { return w.cw.n }

// countingWriter counts the stored bytes and keeps their CRC-32C. Once
// discard is set it drops everything (see Abort).
type countingWriter struct {
	w       io.Writer
	n       int64
	crc     uint32
	discard bool
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.discard {
		return len(p), nil
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	return n, err
}

// Option configures a Reader.
type Option func(*Reader)

// WithExpected makes the Reader also compare the plaintext with s, the size
// and hash recorded in a manifest. It is required for codec "none".
func WithExpected(s Sum) Option {
	return func(r *Reader) { r.expect = &s }
}

// WithOptionalMarker accepts a stream that ends without an end marker, as
// one written by the stock zstd CLI does: its last bytes then go to the
// decoder like all the others, the stream is checked only as far as the
// codec checks itself (zstd: each frame's content checksum, when the writer
// set it, and a cut inside a frame), and Sealed reports false. A stream whose
// last bytes still look like a marker (its container header or its
// identifier) is held to that marker, so a damaged marker remains an error.
//
// Without a marker a cut between two frames cannot be detected. gosst writes
// one frame per stream, so a gosst stream that lost exactly its marker still
// decodes to its complete, checksummed plaintext. Use this option only for a
// codec whose frames end in a checksum (zstd), never for s2, whose chunk
// stream can be cut anywhere between chunks.
func WithOptionalMarker() Option {
	return func(r *Reader) { r.optional = true }
}

// Reader decompresses a sealed stream and verifies its end marker. Read
// returns io.EOF only after the marker (or the expected sum) matched the
// plaintext; otherwise the last Read returns an error wrapping one of this
// package's sentinel errors or the codec's own error. The plaintext is handed
// out before it is verified: a consumer must treat everything it received as
// untrusted until Read has returned io.EOF.
type Reader struct {
	codec  string
	tail   *tailReader // nil for codec none
	raw    io.Reader
	dec    io.ReadCloser
	h      hash.Hash
	n      int64
	expect *Sum
	// optional: a stream without a marker is read to its end (see
	// WithOptionalMarker).
	optional bool
	err      error // sticky; io.EOF after success
}

// NewReader returns a Reader of the plaintext of r, compressed with c. The
// caller must Close it; Close does not close r.
func NewReader(r io.Reader, c codec.Codec, opts ...Option) (*Reader, error) {
	size, err := containerSize(c.Name())
	if err != nil {
		return nil, err
	}
	ir := &Reader{codec: c.Name(), raw: r, h: sha256.New()}
	for _, o := range opts {
		o(ir)
	}
	src := r
	if size == 0 {
		if ir.expect == nil {
			return nil, ErrNoMarker
		}
	} else {
		ir.tail = newTailReader(r, size, c.Name(), ir.optional)
		src = ir.tail
	}
	ir.dec, err = c.NewReader(src)
	if err != nil {
		return nil, err
	}
	return ir, nil
}

// NewDetectingReader is NewReader with the codec recognised from the first
// bytes of r (see codec.Detect).
func NewDetectingReader(r io.Reader, opts ...Option) (*Reader, error) {
	c, br, err := codec.Detect(r)
	if err != nil {
		return nil, err
	}
	return NewReader(br, c, opts...)
}

// Codec returns the name of the codec the stream is read with.
func (r *Reader) Codec() string { return r.codec }

// Read reads plaintext. See the type documentation for the error contract.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.dec.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	switch {
	case err == io.EOF:
		r.err = r.verify()
		if r.err == nil {
			r.err = io.EOF
		}
	case err != nil:
		r.err = err
	}
	return n, r.err
}

func (r *Reader) verify() error {
	got := r.Sum()
	if r.tail != nil {
		if err := r.verifyMarker(got); err != nil {
			return err
		}
	}
	if r.expect != nil {
		if r.expect.Size != got.Size {
			return fmt.Errorf("%w: manifest says %d plaintext bytes, decoded %d", ErrMismatch, r.expect.Size, got.Size)
		}
		if r.expect.SHA256 != got.SHA256 {
			return fmt.Errorf("%w: SHA-256 differs from manifest", ErrMismatch)
		}
	}
	return nil
}

// verifyMarker checks the held-back end marker against the stored bytes
// and got, the plaintext's sum.
func (r *Reader) verifyMarker(got Sum) error {
	// The decoder reached the end of its input; anything it left unread
	// was not part of the compressed stream.
	if n, _ := io.Copy(io.Discard, r.tail); n > 0 {
		return fmt.Errorf("%w: %d bytes the %s decoder did not consume", ErrTrailingData, n, r.codec)
	}
	if r.tail.err != io.EOF {
		return fmt.Errorf("integrity: read: %w", r.tail.err)
	}
	if !r.tail.sealed {
		// Only with WithOptionalMarker: the decoder had every byte
		// and found the frames complete; no marker to compare.
		return nil
	}
	m, err := ParseContainer(r.codec, r.tail.pending())
	if err != nil {
		return err
	}
	if m.Stored != uint64(r.tail.passed) {
		return fmt.Errorf("%w: marker says %d stored bytes precede it, found %d", ErrMismatch, m.Stored, r.tail.passed)
	}
	if m.StoredCRC != r.tail.crc {
		return fmt.Errorf("%w: CRC-32C of the %d stored bytes is %08x, marker says %08x (the compressed data was altered)", ErrMismatch, r.tail.passed, r.tail.crc, m.StoredCRC)
	}
	if m.Size != uint64(got.Size) {
		return fmt.Errorf("%w: marker says %d plaintext bytes, decoded %d", ErrMismatch, m.Size, got.Size)
	}
	if subtle.ConstantTimeCompare(m.SHA256[:], got.SHA256[:]) != 1 {
		return fmt.Errorf("%w: SHA-256 differs", ErrMismatch)
	}
	return nil
}

// Sum returns the size and SHA-256 of the plaintext read so far; once Read
// has returned io.EOF it is the verified sum of the whole stream.
func (r *Reader) Sum() Sum {
	s := Sum{Size: r.n}
	r.h.Sum(s.SHA256[:0])
	return s
}

// Sealed reports whether the stream ended in an end marker. Once Read has
// returned io.EOF, true means the marker matched the plaintext; false is
// possible only with WithOptionalMarker (or for codec none) and means no
// marker was there to check.
func (r *Reader) Sealed() bool { return r.tail != nil && r.tail.sealed }

// Close releases the decoder. It does not close the underlying reader.
func (r *Reader) Close() error { return r.dec.Close() }

// tailReader passes on all bytes of r except the last keep, which it holds
// back so the end marker never reaches the decoder. When r ends, it decides
// whether those bytes are a marker: if they are, they stay held back (for
// verify); if not, a strict reader fails with ErrMissingMarker, and an
// optional one (WithOptionalMarker) hands them to the decoder, because then
// they are the end of the compressed data.
type tailReader struct {
	r        io.Reader
	keep     int
	codec    string
	optional bool
	buf      []byte
	off, end int
	err      error  // sticky error of r, io.EOF at the end
	decided  bool   // the end was reached and the held-back bytes judged
	sealed   bool   // they are a marker (set once decided)
	passed   int64  // bytes handed to the decoder
	crc      uint32 // CRC-32C of those bytes
}

func newTailReader(r io.Reader, keep int, codecName string, optional bool) *tailReader {
	return &tailReader{r: r, keep: keep, codec: codecName, optional: optional, buf: make([]byte, 64<<10+keep)}
}

func (t *tailReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for t.end-t.off <= t.keep {
		if t.err != nil {
			if !t.decided {
				t.decide()
				continue
			}
			return 0, t.err
		}
		if t.off > 0 {
			t.end = copy(t.buf, t.buf[t.off:t.end])
			t.off = 0
		}
		n, err := t.r.Read(t.buf[t.end:])
		t.end += n
		if err != nil {
			t.err = err
		}
	}
	n := copy(p, t.buf[t.off:t.end-t.keep])
	t.crc = crc32.Update(t.crc, castagnoli, p[:n])
	t.off += n
	t.passed += int64(n)
	return n, nil
}

// decide judges the held-back bytes once r has ended.
func (t *tailReader) decide() {
	t.decided = true
	if t.err != io.EOF {
		return // a read error below: it is passed on as it is
	}
	tail := t.pending()
	switch {
	case looksLikeContainer(t.codec, tail):
		t.sealed = true
	case t.optional && t.passed+int64(len(tail)) > 0:
		t.keep = 0 // the end of the compressed data: let the decoder have it
	case t.passed+int64(len(tail)) == 0:
		t.err = fmt.Errorf("%w: the stream is empty", ErrMissingMarker)
	default:
		t.err = fmt.Errorf("%w: the last %d bytes are not a gosst end marker; the stream was cut short, has bytes appended, or was not written by gosst",
			ErrMissingMarker, len(tail))
	}
}

// pending returns the held-back bytes; after io.EOF they should be the marker.
func (t *tailReader) pending() []byte { return t.buf[t.off:t.end] }
