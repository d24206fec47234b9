// Package wire frames an SST byte stream for the transport between donor
// and joiner (normally inside TLS).
//
// A stream is the 8-byte magic "GSSTWIRE", a hello frame, any number of data
// frames (and, with FlagBlocks, block frames: S2-compressed data; with
// FlagZstdBlocks, zstd block frames: one zstd frame of data each) and one
// end frame that carries the byte count and SHA-256 (or, with FlagCRC32C,
// CRC-32C) of all frame payloads as sent. Every frame is a 1-byte type and a 4-byte big-endian payload length
// followed by the payload; docs/format.md has the byte layout.
//
// The reader trusts nothing: a wrong magic, an unknown version, a frame
// larger than its limit, a malformed payload, a stream that ends before the
// end frame, or an end frame that does not match the data is an error that
// wraps one of the sentinel errors below. Read returns io.EOF only after a
// matching end frame. The reader never reads past the end frame, so the
// connection can carry a reply afterwards.
package wire

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sync"

	"github.com/gosst/gosst/stream/integrity"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Format constants.
const (
	Magic   = "GSSTWIRE"
	Version = 1

	headerSize = 5 // type, u32 length

	// DefaultFrameSize is the data payload a FrameWriter puts in one frame.
	DefaultFrameSize = 256 << 10
	// DefaultMaxFrameSize is the largest payload a FrameReader accepts by
	// default; it bounds the reader's buffering against a hostile peer.
	DefaultMaxFrameSize = 1 << 20
	// HardMaxFrameSize is the largest frame size either side may configure.
	HardMaxFrameSize = 16 << 20

	// MaxTokenSize bounds the auth token in the hello frame.
	MaxTokenSize = 1024
	// MaxCodecNameSize bounds the codec name in the hello frame.
	MaxCodecNameSize = 32

	endPayloadSize    = 8 + sha256.Size
	endPayloadSizeCRC = 8 + 4
)

// FlagCRC32C in the hello says the end frame carries the CRC-32C
// (Castagnoli) of the data instead of its SHA-256. It is for transfers
// whose content is already checked elsewhere — TLS authenticates every
// record, and an xbstream carries a checksum per chunk — where SHA-256 is
// otherwise the most expensive thing done per byte on each side (an SST
// on two cores). Without TLS neither sum resists a deliberate forger: both
// are unkeyed. The end frame's byte count is checked either way.
const FlagCRC32C uint16 = 0x0001

// FlagBlocks in the hello says data may also come in block frames: one
// frame's data compressed as a single S2 block (klauspost/compress/s2,
// block format). A writer with AdaptiveOptions sends them only where
// compressing moves the data faster. The end frame's count and checksum
// cover the frame payloads as sent.
const FlagBlocks uint16 = 0x0002

// FlagZstdBlocks in the hello says data may also come in zstd block
// frames (FrameBlockZstd): one frame's data compressed as a single zstd
// frame (RFC 8878, level 1, single segment, no dictionary). A writer sets
// it only when AdaptiveOptions.Zstd says the reader can decode them (an
// SST joiner offers it in its ready address): a reader that predates the
// flag refuses the whole stream with ErrVersion. The reader rejects a zstd
// block frame unless the hello announced the flag, and never decodes more
// than its MaxFrameSize from one frame.
const FlagZstdBlocks uint16 = 0x0004

const knownFlags = FlagCRC32C | FlagBlocks | FlagZstdBlocks

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Frame types. Types 0x80-0xFF are extensions: a reader skips those it does
// not know. An unknown type below 0x80 is an error.
const (
	FrameHello byte = 0x01
	FrameData  byte = 0x02
	FrameEnd   byte = 0x03
	FrameBlock byte = 0x04 // with FlagBlocks: one S2 block of data
	// FrameBlockZstd, with FlagZstdBlocks: one zstd frame of data.
	FrameBlockZstd byte = 0x05
)

// Errors, to be tested with errors.Is.
var (
	ErrBadMagic      = errors.New("wire: not a gosst SST stream (bad magic)")
	ErrVersion       = errors.New("wire: unsupported protocol version")
	ErrAuth          = errors.New("wire: authentication token mismatch")
	ErrMalformed     = errors.New("wire: malformed frame")
	ErrFrameTooLarge = errors.New("wire: frame too large")
	ErrTruncated     = errors.New("wire: stream ended before the end frame")
	ErrMismatch      = errors.New("wire: data does not match end frame")
)

// Hello is the handshake frame's content.
type Hello struct {
	Version uint16
	// Flags are capability bits (FlagCRC32C); a reader refuses a hello
	// with unknown bits, since a flag may change how the data must be read.
	Flags uint16
	// Codec names the compression of the data ("zstd", "s2", "none"); the
	// framing does not interpret it.
	Codec string
	// Token is an optional shared secret the joiner checks.
	Token []byte
}

func (h Hello) appendPayload(dst []byte) ([]byte, error) {
	if len(h.Codec) > MaxCodecNameSize {
		return nil, fmt.Errorf("wire: codec name longer than %d bytes", MaxCodecNameSize)
	}
	if len(h.Token) > MaxTokenSize {
		return nil, fmt.Errorf("wire: token longer than %d bytes", MaxTokenSize)
	}
	dst = binary.BigEndian.AppendUint16(dst, h.Version)
	dst = binary.BigEndian.AppendUint16(dst, h.Flags)
	dst = append(dst, byte(len(h.Codec)))
	dst = append(dst, h.Codec...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(h.Token)))
	return append(dst, h.Token...), nil
}

// ParseHello decodes a hello payload. It checks the layout, not the version.
func ParseHello(b []byte) (Hello, error) {
	var h Hello
	if len(b) < 7 {
		return h, fmt.Errorf("%w: hello payload of %d bytes", ErrMalformed, len(b))
	}
	h.Version = binary.BigEndian.Uint16(b)
	h.Flags = binary.BigEndian.Uint16(b[2:])
	n := int(b[4])
	b = b[5:]
	if n > MaxCodecNameSize || len(b) < n+2 {
		return h, fmt.Errorf("%w: hello codec name length %d", ErrMalformed, n)
	}
	h.Codec = string(b[:n])
	for _, c := range []byte(h.Codec) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return h, fmt.Errorf("%w: hello codec name %q", ErrMalformed, h.Codec)
		}
	}
	b = b[n:]
	t := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if t > MaxTokenSize || len(b) != t {
		return h, fmt.Errorf("%w: hello token length %d with %d bytes left", ErrMalformed, t, len(b))
	}
	if t > 0 {
		h.Token = append([]byte(nil), b...)
	}
	return h, nil
}

// WriterOptions configures a FrameWriter.
type WriterOptions struct {
	Codec     string // recorded in the hello frame
	Token     []byte // optional auth token, at most MaxTokenSize bytes
	FrameSize int    // data payload per frame; 0 means DefaultFrameSize
	// CRC32C ends the stream with a CRC-32C instead of a SHA-256 (see
	// FlagCRC32C).
	CRC32C bool
	// Adaptive, if not nil, sets FlagBlocks and compresses frames while
	// that is faster (see AdaptiveOptions).
	Adaptive *AdaptiveOptions
}

// hasher is the running checksum of the data: SHA-256 inline or on its
// own goroutine, or CRC-32C.
type hasher interface {
	Write(p []byte) (int, error)
	Current() [32]byte // a CRC-32C is in the first 4 bytes, big-endian
	Close()
}

type crcHash struct{ crc uint32 }

func (c *crcHash) Write(p []byte) (int, error) {
	c.crc = crc32.Update(c.crc, castagnoli, p)
	return len(p), nil
}
func (c *crcHash) Current() (out [32]byte) {
	binary.BigEndian.PutUint32(out[:], c.crc)
	return out
}
func (c *crcHash) Close() {}

type syncHash struct{ h hash.Hash }

func (s syncHash) Write(p []byte) (int, error) { return s.h.Write(p) }
func (s syncHash) Current() (out [32]byte) {
	s.h.Sum(out[:0])
	return out
}
func (s syncHash) Close() {}

func newHasher(async, crc bool) hasher {
	if crc {
		return &crcHash{}
	}
	if async {
		return integrity.NewAsyncSHA256()
	}
	return syncHash{sha256.New()}
}

// FrameWriter writes a framed stream. It is not safe for concurrent use.
type FrameWriter struct {
	w       io.Writer
	buf     []byte // header space + pending data
	size    int
	h       hasher
	crc     bool
	n       int64 // payload bytes sent
	err     error // guarded by mu
	done    bool
	aborted bool

	ch   *chooser      // with AdaptiveOptions
	enc  []byte        // header space + compressed frame (no pipe)
	zenc *zstd.Encoder // with AdaptiveOptions.Zstd
	pipe *blockPipe    // with AdaptiveOptions and more than one worker
	cur  *frameJob     // the pipe's job that buf belongs to

	// mu guards what the pipe's sender shares with the caller: the
	// chooser, stats and err.
	mu    sync.Mutex
	stats AdaptiveStats
}

// NewFrameWriter writes the magic and the hello frame to w and returns a
// writer for the data. Close must be called to write the end frame; it does
// not close w. Data is sent in frames of FrameSize bytes; call Flush to send
// a partial frame early.
func NewFrameWriter(w io.Writer, o WriterOptions) (*FrameWriter, error) {
	if o.FrameSize == 0 {
		o.FrameSize = DefaultFrameSize
	}
	if o.FrameSize < 1 || o.FrameSize > HardMaxFrameSize {
		return nil, fmt.Errorf("wire: frame size %d out of range 1-%d", o.FrameSize, HardMaxFrameSize)
	}
	var flags uint16
	if o.CRC32C {
		flags |= FlagCRC32C
	}
	if o.Adaptive != nil {
		flags |= FlagBlocks
		if o.Adaptive.Zstd {
			flags |= FlagZstdBlocks
		}
	}
	hello, err := Hello{Version: Version, Flags: flags, Codec: o.Codec, Token: o.Token}.appendPayload(nil)
	if err != nil {
		return nil, err
	}
	msg := append([]byte(Magic), FrameHello)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(hello)))
	msg = append(msg, hello...)
	if _, err := w.Write(msg); err != nil {
		return nil, err
	}
	fw := &FrameWriter{w: w, size: o.FrameSize, h: newHasher(false, o.CRC32C), crc: o.CRC32C}
	if o.Adaptive != nil {
		fw.ch = newChooser(*o.Adaptive)
		workers := o.Adaptive.Workers
		if workers <= 0 {
			workers = pipeWorkers()
		}
		if o.Adaptive.Zstd {
			// One encoder, reused for every frame (by up to workers
			// compressors at once): EncodeAll writes single-segment
			// frames whose window is the frame.
			fw.zenc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
				zstd.WithEncoderConcurrency(workers), zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true))
			if err != nil {
				return nil, fmt.Errorf("wire: zstd encoder: %w", err)
			}
		}
		encSize := s2.MaxEncodedLen(o.FrameSize)
		if workers > 1 {
			fw.cur = fw.startPipe(workers, encSize)
			fw.buf = fw.cur.buf
		} else {
			fw.enc = make([]byte, headerSize, headerSize+encSize)
		}
	}
	if fw.buf == nil { // the pipe's jobs bring their own
		fw.buf = make([]byte, headerSize, headerSize+o.FrameSize)
	}
	return fw, nil
}

func (fw *FrameWriter) failed() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.err
}

// fail records the first error: every later call returns it.
func (fw *FrameWriter) fail(err error) {
	fw.mu.Lock()
	if fw.err == nil {
		fw.err = err
	}
	fw.mu.Unlock()
}

// Write buffers p and sends every full frame.
func (fw *FrameWriter) Write(p []byte) (int, error) {
	if err := fw.failed(); err != nil {
		return 0, err
	}
	if fw.done {
		return 0, errors.New("wire: write after close")
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), fw.size-(len(fw.buf)-headerSize))
		fw.buf = append(fw.buf, p[:k]...)
		n += k
		p = p[k:]
		if len(fw.buf)-headerSize == fw.size {
			if err := fw.Flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// Flush sends buffered data as one data frame (or block frame). With a
// pipeline (AdaptiveOptions.Workers) it hands the frame on and may return
// before it is sent; a failed send is returned by a later call, and Close
// waits for every frame.
func (fw *FrameWriter) Flush() error {
	if err := fw.failed(); err != nil || len(fw.buf) == headerSize {
		return err
	}
	mode := modePlain
	if fw.ch != nil {
		fw.mu.Lock()
		mode = fw.ch.mode()
		fw.mu.Unlock()
	}
	if fw.pipe != nil {
		fw.cur.buf, fw.cur.mode = fw.buf, mode
		fw.cur = fw.pipe.submit(fw.cur)
		fw.buf = fw.cur.buf
		return fw.failed()
	}
	frame, typ := fw.buf, FrameData
	if fw.ch != nil {
		frame, typ = fw.encode(mode, fw.buf, fw.enc)
	}
	if err := fw.send(frame, typ, int64(len(fw.buf)-headerSize), mode); err != nil {
		fw.fail(err)
		return err
	}
	fw.buf = fw.buf[:headerSize]
	return nil
}

// encode returns the frame to send for buf's data in mode: a block frame
// built in enc, or buf itself when the mode is plain or the block would
// not save enough.
func (fw *FrameWriter) encode(mode int, buf, enc []byte) ([]byte, byte) {
	data := buf[headerSize:]
	var out []byte
	kind := FrameData
	switch mode {
	case modeS2:
		out, kind = s2.Encode(enc[headerSize:cap(enc)], data), FrameBlock
	case modeZstd:
		// EncodeAll reallocates only for an output larger than enc's
		// room, which is larger than data: such a block is sent plain.
		out, kind = fw.zenc.EncodeAll(data, enc[headerSize:headerSize]), FrameBlockZstd
	}
	// Only a block that saves something is worth its decoding.
	if kind != FrameData && len(out) < len(data)-len(data)/32 {
		return enc[:headerSize+len(out)], kind
	}
	return buf, FrameData
}

// send writes one frame (header space included) that carries n data
// bytes picked for mode, and tells the chooser how long the connection
// took it.
func (fw *FrameWriter) send(frame []byte, typ byte, n int64, mode int) error {
	frame[0] = typ
	binary.BigEndian.PutUint32(frame[1:], uint32(len(frame)-headerSize))
	fw.h.Write(frame[headerSize:])
	fw.n += int64(len(frame) - headerSize)
	if fw.ch == nil {
		_, err := fw.w.Write(frame)
		return err
	}
	fw.mu.Lock()
	switch typ {
	case FrameBlock:
		fw.stats.S2++
	case FrameBlockZstd:
		fw.stats.Zstd++
	default:
		fw.stats.Plain++
	}
	fw.mu.Unlock()
	t0 := fw.ch.now()
	if _, err := fw.w.Write(frame); err != nil {
		return err
	}
	wait := fw.ch.now().Sub(t0)
	fw.mu.Lock()
	fw.stats.Wait += wait
	fw.ch.done(n, wait, mode)
	fw.mu.Unlock()
	return nil
}

// AdaptiveStats counts the data frames sent plain and compressed (zero
// without WriterOptions.Adaptive).
func (fw *FrameWriter) AdaptiveStats() AdaptiveStats {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.stats
}

// Close flushes, waits for every frame to be sent, and writes the end
// frame. It does not close the underlying writer. It is safe to call more
// than once, and after Abort (which it then reports).
func (fw *FrameWriter) Close() error {
	if fw.done {
		if err := fw.failed(); err != nil {
			return err
		}
		if fw.aborted {
			return errAborted
		}
		return nil
	}
	fw.done = true
	ferr := fw.Flush()
	if fw.pipe != nil {
		fw.pipe.stop()
	}
	if err := fw.failed(); err != nil {
		return err
	}
	if ferr != nil {
		return ferr
	}
	sum := fw.h.Current()
	end := []byte{FrameEnd, 0, 0, 0, endPayloadSize}
	digest := sum[:]
	if fw.crc {
		end[4], digest = endPayloadSizeCRC, sum[:4]
	}
	end = binary.BigEndian.AppendUint64(end, uint64(fw.n))
	end = append(end, digest...)
	if _, err := fw.w.Write(end); err != nil {
		fw.fail(err)
	}
	return fw.failed()
}

// Abort ends a stream that must not be completed: it stops the pipeline's
// goroutines (a frame being written is finished, queued ones are dropped)
// and writes no end frame. Later writes fail. It is safe to call at any time after
// the last Write, more than once, and after Close (then it does nothing).
func (fw *FrameWriter) Abort() {
	if !fw.done {
		fw.done, fw.aborted = true, true
		// The sender drops what is queued: it waits only for a write
		// already under way.
		fw.fail(errAborted)
	}
	if fw.pipe != nil {
		fw.pipe.stop()
	}
}

var errAborted = errors.New("wire: stream aborted")

// Sum returns the count and SHA-256 of the frame payloads sent so far (a
// zero SHA-256 when the stream uses CRC-32C). Without block frames these
// are the data bytes. With a pipeline (AdaptiveOptions.Workers) call it
// only after Close or Abort: until then the sender goroutine updates them.
func (fw *FrameWriter) Sum() integrity.Sum {
	if fw.crc {
		return integrity.Sum{Size: fw.n}
	}
	return integrity.Sum{Size: fw.n, SHA256: fw.h.Current()}
}

// ReaderOptions configures a FrameReader.
type ReaderOptions struct {
	// Token, if not nil, must equal the hello's token (compared in constant
	// time), else NewFrameReader fails with ErrAuth. The token is checked
	// before the version and flags: with a Token, ErrVersion means the
	// peer knew the token.
	Token []byte
	// MaxFrameSize is the largest frame payload accepted; 0 means
	// DefaultMaxFrameSize. It must cover the writer's FrameSize.
	MaxFrameSize int
	// AsyncHash computes a SHA-256 stream's hash on a goroutine of its
	// own, so it overlaps with the caller's work (bulk transfers on few
	// cores); it ends with the first error Read returns, io.EOF included.
	AsyncHash bool
}

// FrameReader reads a framed stream. It is not safe for concurrent use.
type FrameReader struct {
	r     io.Reader
	hello Hello
	max   int
	left  int // unread bytes of the current data frame
	h     hasher
	crc   bool // FlagCRC32C
	n     int64
	err   error // sticky; io.EOF after a verified end frame

	blocks   bool          // FlagBlocks
	zdec     *zstd.Decoder // FlagZstdBlocks
	raw, dec []byte        // a block frame's payload and its decoded data
	pending  []byte        // decoded data not yet returned
}

// NewFrameReader reads and checks the magic and the hello frame.
func NewFrameReader(r io.Reader, o ReaderOptions) (*FrameReader, error) {
	if o.MaxFrameSize == 0 {
		o.MaxFrameSize = DefaultMaxFrameSize
	}
	if o.MaxFrameSize < 1 || o.MaxFrameSize > HardMaxFrameSize {
		return nil, fmt.Errorf("wire: max frame size %d out of range 1-%d", o.MaxFrameSize, HardMaxFrameSize)
	}
	fr := &FrameReader{r: r, max: o.MaxFrameSize}
	var magic [len(Magic)]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, fr.readErr("magic", err)
	}
	if string(magic[:]) != Magic {
		return nil, fmt.Errorf("%w: got %q", ErrBadMagic, magic[:])
	}
	typ, size, err := fr.header()
	if err != nil {
		return nil, err
	}
	if typ != FrameHello {
		return nil, fmt.Errorf("%w: first frame has type 0x%02x, want hello", ErrMalformed, typ)
	}
	if size > 7+MaxCodecNameSize+MaxTokenSize {
		return nil, fmt.Errorf("%w: hello of %d bytes", ErrFrameTooLarge, size)
	}
	payload := make([]byte, size)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, fr.readErr("hello", err)
	}
	h, err := ParseHello(payload)
	if err != nil {
		return nil, err
	}
	// The token first: nothing else a peer says counts before it has
	// proven it knows the secret, so a stranger's hello with another
	// version is ErrAuth, never ErrVersion.
	if o.Token != nil && subtle.ConstantTimeCompare(o.Token, h.Token) != 1 {
		return nil, ErrAuth
	}
	if h.Version != Version {
		return nil, fmt.Errorf("%w %d (this build speaks version %d)", ErrVersion, h.Version, Version)
	}
	if h.Flags&^knownFlags != 0 {
		return nil, fmt.Errorf("%w: unknown capability flags 0x%04x", ErrVersion, h.Flags&^knownFlags)
	}
	fr.hello = h
	fr.crc = h.Flags&FlagCRC32C != 0
	fr.blocks = h.Flags&FlagBlocks != 0
	if h.Flags&FlagZstdBlocks != 0 {
		// One synchronous decoder for the stream, bounded like a frame:
		// no zstd frame may decode to more than max bytes or ask for a
		// larger window, whatever its header claims.
		fr.zdec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(uint64(fr.max)), zstd.WithDecoderMaxWindow(uint64(max(fr.max, zstd.MinWindowSize))))
		if err != nil {
			return nil, fmt.Errorf("wire: zstd decoder: %w", err)
		}
	}
	fr.h = newHasher(o.AsyncHash, fr.crc) // only now: no goroutine for a refused stream
	return fr, nil
}

// Hello returns the peer's hello frame.
func (fr *FrameReader) Hello() Hello { return fr.hello }

// Sum returns the count and SHA-256 of the data read so far; after io.EOF it
// is the verified sum of the whole stream. The SHA-256 is zero when the
// writer chose CRC-32C (Hello().Flags has FlagCRC32C).
func (fr *FrameReader) Sum() integrity.Sum {
	if fr.crc {
		return integrity.Sum{Size: fr.n}
	}
	return integrity.Sum{Size: fr.n, SHA256: fr.h.Current()}
}

// readErr maps an end of input to ErrTruncated.
func (fr *FrameReader) readErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w (in %s after %d data bytes)", ErrTruncated, what, fr.n)
	}
	return fmt.Errorf("wire: read %s: %w", what, err)
}

func (fr *FrameReader) header() (byte, int, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return 0, 0, fr.readErr("frame header", err)
	}
	size := binary.BigEndian.Uint32(hdr[1:])
	if size > uint32(fr.max) {
		return 0, 0, fmt.Errorf("%w: type 0x%02x frame of %d bytes, limit %d", ErrFrameTooLarge, hdr[0], size, fr.max)
	}
	return hdr[0], int(size), nil
}

// Read reads data. See the package documentation for the error contract.
func (fr *FrameReader) Read(p []byte) (int, error) {
	for fr.left == 0 && len(fr.pending) == 0 {
		if fr.err != nil {
			return 0, fr.err
		}
		if fr.err = fr.next(); fr.err != nil {
			defer fr.release() // after the end frame's check
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(fr.pending) > 0 {
		n := copy(p, fr.pending)
		fr.pending = fr.pending[n:]
		return n, nil
	}
	n, err := fr.r.Read(p[:min(len(p), fr.left)])
	fr.left -= n
	fr.h.Write(p[:n])
	fr.n += int64(n)
	if err != nil && (fr.left > 0 || err != io.EOF) {
		fr.err = fr.readErr("data frame", err)
		fr.release()
		return n, fr.err
	}
	return n, nil
}

// release ends the hash goroutine and the zstd decoder once the stream
// has ended.
func (fr *FrameReader) release() {
	fr.h.Close()
	if fr.zdec != nil {
		fr.zdec.Close()
	}
}

// next reads frame headers until a data frame with payload starts or the
// stream ends. It returns nil with fr.left > 0, or the error to keep.
func (fr *FrameReader) next() error {
	typ, size, err := fr.header()
	if err != nil {
		return err
	}
	switch {
	case typ == FrameData:
		if size == 0 {
			return fmt.Errorf("%w: empty data frame", ErrMalformed)
		}
		fr.left = size
		return nil
	case typ == FrameBlock && fr.blocks:
		return fr.block(size)
	case typ == FrameBlockZstd && fr.zdec != nil:
		return fr.blockZstd(size)
	case typ == FrameEnd:
		want, name := endPayloadSize, "SHA-256"
		if fr.crc {
			want, name = endPayloadSizeCRC, "CRC-32C"
		}
		if size != want {
			return fmt.Errorf("%w: end frame of %d bytes, want %d", ErrMalformed, size, want)
		}
		var b [endPayloadSize]byte
		if _, err := io.ReadFull(fr.r, b[:want]); err != nil {
			return fr.readErr("end frame", err)
		}
		if n := binary.BigEndian.Uint64(b[:8]); n != uint64(fr.n) {
			return fmt.Errorf("%w: end frame says %d bytes, received %d", ErrMismatch, n, fr.n)
		}
		sum := fr.h.Current()
		if subtle.ConstantTimeCompare(b[8:want], sum[:want-8]) != 1 {
			return fmt.Errorf("%w: %s differs", ErrMismatch, name)
		}
		return io.EOF
	case typ == FrameHello:
		return fmt.Errorf("%w: second hello frame", ErrMalformed)
	case typ >= 0x80:
		// Extension frame: skip its payload.
		if _, err := io.CopyN(io.Discard, fr.r, int64(size)); err != nil {
			return fr.readErr("extension frame", err)
		}
		return nil
	default:
		return fmt.Errorf("%w: unknown frame type 0x%02x", ErrMalformed, typ)
	}
}

// readBlock reads a block frame's payload of size bytes into fr.raw and
// counts it into the sums.
func (fr *FrameReader) readBlock(size int) ([]byte, error) {
	if size == 0 {
		return nil, fmt.Errorf("%w: empty block frame", ErrMalformed)
	}
	if cap(fr.raw) < size {
		fr.raw = make([]byte, size)
	}
	raw := fr.raw[:size]
	if _, err := io.ReadFull(fr.r, raw); err != nil {
		return nil, fr.readErr("block frame", err)
	}
	fr.h.Write(raw)
	fr.n += int64(size)
	return raw, nil
}

// blockZstd reads a zstd block frame of size bytes and decodes it into
// fr.pending.
func (fr *FrameReader) blockZstd(size int) error {
	raw, err := fr.readBlock(size)
	if err != nil {
		return err
	}
	if fr.dec == nil {
		fr.dec = make([]byte, 0, fr.max)
	}
	dec, err := fr.zdec.DecodeAll(raw, fr.dec[:0])
	if err != nil {
		return fmt.Errorf("%w: zstd block frame: %v", ErrMalformed, err)
	}
	if len(dec) == 0 || len(dec) > fr.max {
		return fmt.Errorf("%w: zstd block frame decodes to %d bytes (limit %d)", ErrMalformed, len(dec), fr.max)
	}
	fr.dec, fr.pending = dec, dec
	return nil
}

// block reads a block frame of size bytes and decodes it into fr.pending.
func (fr *FrameReader) block(size int) error {
	raw, err := fr.readBlock(size)
	if err != nil {
		return err
	}
	n, err := s2.DecodedLen(raw)
	if err != nil || n == 0 || n > fr.max {
		return fmt.Errorf("%w: block frame decodes to %d bytes (limit %d): %v", ErrMalformed, n, fr.max, err)
	}
	if cap(fr.dec) < n {
		fr.dec = make([]byte, n)
	}
	dec, err := s2.Decode(fr.dec[:n], raw)
	if err != nil {
		return fmt.Errorf("%w: block frame: %v", ErrMalformed, err)
	}
	fr.pending = dec
	return nil
}
