package xbstream

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// Reader iterates over the chunks of an xbstream.
//
// Reader checks the framing of every chunk: magic, chunk type (unknown types
// are accepted only with FlagIgnorable), path lengths (at most MaxPathLen),
// payload length (at most MaxPayload), offsets that fit in an int64, and the
// CRC-32 of every payload. It does not interpret paths or the sequence of
// chunks; Extract does that.
//
// Reader buffers its input and may read past the last chunk. It never
// closes the underlying reader. A Reader is not safe for concurrent use.
type Reader struct {
	// MaxPayload caps the payload length of a single chunk; a longer chunk
	// is a *FormatError. Zero means DefaultMaxPayload. Memory is allocated
	// as payload bytes actually arrive, so a forged length alone does not
	// make the Reader allocate MaxPayload bytes.
	MaxPayload int

	br    *bufio.Reader
	off   int64
	err   error
	chunk Chunk
	buf   []byte // payload buffer, reused across chunks
	pbuf  []byte // path buffer
	hdr   [20]byte
}

// NewReader returns a Reader that reads chunks from r.
func NewReader(r io.Reader) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 64<<10 {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &Reader{br: br}
}

// Offset returns the number of stream bytes consumed so far, i.e. the
// stream offset just after the last chunk returned by Next.
func (r *Reader) Offset() int64 { return r.off }

// Next returns the next chunk.
//
// It returns io.EOF only when the input ends cleanly at a chunk boundary.
// A malformed chunk yields a *FormatError; input that ends inside a chunk
// yields a *FormatError wrapping io.ErrUnexpectedEOF. Other errors from the
// underlying reader are returned wrapped with the stream offset. Errors are
// sticky: after the first one, Next keeps returning it.
//
// The returned Chunk, including its Payload, is owned by the Reader and is
// valid only until the next call to Next.
func (r *Reader) Next() (*Chunk, error) {
	if r.err != nil {
		return nil, r.err
	}
	c, err := r.next()
	if err != nil {
		r.err = err
		return nil, err
	}
	return c, nil
}

func (r *Reader) maxPayload() int {
	if r.MaxPayload > 0 {
		return r.MaxPayload
	}
	return DefaultMaxPayload
}

// readFull reads exactly len(p) bytes, advancing the stream offset.
func (r *Reader) readFull(p []byte) (int, error) {
	n, err := io.ReadFull(r.br, p)
	r.off += int64(n)
	return n, err
}

// truncated builds the error for input that ended, or failed, inside the
// chunk starting at start while reading what. Only io.ReadFull's own
// verdicts (the input simply ended) make a truncated xbstream; an error of
// a layer below that merely wraps io.ErrUnexpectedEOF (a decompressor's
// "stream truncated", a cut ciphertext) is that layer's diagnosis and is
// passed on with its words, not reported as a cut xbstream.
func (r *Reader) truncated(start int64, path, what string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &FormatError{
			Offset: start,
			Path:   path,
			Reason: fmt.Sprintf("truncated stream: input ends at offset %d while reading %s", r.off, what),
			Err:    io.ErrUnexpectedEOF,
		}
	}
	if path != "" {
		return fmt.Errorf("xbstream: offset %d: file %q: reading %s: %w", start, path, what, err)
	}
	return fmt.Errorf("xbstream: offset %d: reading %s: %w", start, what, err)
}

// next reads one chunk: its header, then the body its type has.
func (r *Reader) next() (*Chunk, error) {
	c, err := r.readHeader()
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case TypeEOF, TypeRemove:
		// no body
	case TypeSeek:
		err = r.readSeek(c)
	case TypeRename:
		err = r.readRename(c)
	default: // TypePayload, or an ignorable chunk of unknown type (payload layout)
		err = r.readPayloadChunk(c)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// readHeader reads a chunk's fixed prefix and path into r.chunk and checks
// them: magic, a known chunk type (or FlagIgnorable), the path length. It
// returns nil, io.EOF when the input ends cleanly before a chunk.
func (r *Reader) readHeader() (*Chunk, error) {
	start := r.off
	var pre [prefixLen]byte
	n, err := r.readFull(pre[:])
	if err != nil {
		if n == 0 && err == io.EOF {
			return nil, io.EOF
		}
		return nil, r.truncated(start, "", "chunk header", err)
	}
	if string(pre[:8]) != Magic {
		return nil, formatErr(start, "", "bad chunk magic %q, want %q", pre[:8], Magic)
	}
	flags := Flags(pre[8])
	typ := ChunkType(pre[9])
	pathLen := binary.LittleEndian.Uint32(pre[10:14])
	if !typ.Known() && flags&FlagIgnorable == 0 {
		return nil, formatErr(start, "", "unknown chunk type %s (flags 0x%02x)", typ, byte(flags))
	}
	if pathLen > MaxPathLen {
		return nil, formatErr(start, "", "path length %d exceeds the limit of %d bytes", pathLen, MaxPathLen)
	}
	path, err := r.readPath(int(pathLen))
	if err != nil {
		return nil, r.truncated(start, "", "path", err)
	}
	c := &r.chunk
	*c = Chunk{Type: typ, Flags: flags, Path: path, StreamOffset: start}
	return c, nil
}

// readSeek reads a seek chunk's target offset, which must fit an int64.
func (r *Reader) readSeek(c *Chunk) error {
	if _, err := r.readFull(r.hdr[:8]); err != nil {
		return r.truncated(c.StreamOffset, c.Path, "seek offset", err)
	}
	off := binary.LittleEndian.Uint64(r.hdr[:8])
	if off > math.MaxInt64 {
		return formatErr(c.StreamOffset, c.Path, "seek offset %d out of range", off)
	}
	c.Offset = int64(off)
	return nil
}

// readRename reads a rename chunk's new path (at most MaxPathLen bytes).
func (r *Reader) readRename(c *Chunk) error {
	if _, err := r.readFull(r.hdr[:4]); err != nil {
		return r.truncated(c.StreamOffset, c.Path, "rename target length", err)
	}
	newLen := binary.LittleEndian.Uint32(r.hdr[:4])
	if newLen > MaxPathLen {
		return formatErr(c.StreamOffset, c.Path, "rename target length %d exceeds the limit of %d bytes", newLen, MaxPathLen)
	}
	np := make([]byte, newLen)
	if _, err := r.readFull(np); err != nil {
		return r.truncated(c.StreamOffset, c.Path, "rename target", err)
	}
	c.NewPath = string(np)
	return nil
}

// readPayloadChunk reads a payload chunk's length, file offset and CRC-32,
// then the payload: the length at most maxPayload, offset + length within
// an int64, the checksum matching.
func (r *Reader) readPayloadChunk(c *Chunk) error {
	start, path := c.StreamOffset, c.Path
	if _, err := r.readFull(r.hdr[:20]); err != nil {
		return r.truncated(start, path, "payload header", err)
	}
	length := binary.LittleEndian.Uint64(r.hdr[0:8])
	off := binary.LittleEndian.Uint64(r.hdr[8:16])
	sum := binary.LittleEndian.Uint32(r.hdr[16:20])
	if max := r.maxPayload(); length > uint64(max) {
		return formatErr(start, path, "payload length %d exceeds the limit of %d bytes", length, max)
	}
	if off > math.MaxInt64-length {
		return formatErr(start, path, "file offset %d + payload length %d out of range", off, length)
	}
	data, err := r.readPayload(int(length))
	if err != nil {
		return r.truncated(start, path, fmt.Sprintf("payload (%d of %d bytes)", len(data), length), err)
	}
	if got := crc32.ChecksumIEEE(data); got != sum {
		return formatErr(start, path, "payload checksum mismatch (got 0x%08x, want 0x%08x)", got, sum)
	}
	c.Offset = int64(off)
	c.Payload = data
	c.Checksum = sum
	return nil
}

// readPath reads n path bytes, reusing the previous chunk's string when the
// path repeats (consecutive chunks of one file).
func (r *Reader) readPath(n int) (string, error) {
	if cap(r.pbuf) < n {
		r.pbuf = make([]byte, n, MaxPathLen)
	}
	p := r.pbuf[:n]
	if _, err := r.readFull(p); err != nil {
		return "", err
	}
	if string(p) == r.chunk.Path {
		return r.chunk.Path, nil
	}
	return string(p), nil
}

// readPayload reads n bytes into the reused buffer, growing it only as data
// arrives so that a forged length cannot force a large allocation.
func (r *Reader) readPayload(n int) ([]byte, error) {
	buf := r.buf[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(n, max(2*cap(buf), 64<<10)))
			copy(nb, buf)
			buf = nb
		}
		m, err := r.readFull(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err != nil {
			if cap(buf) > cap(r.buf) {
				r.buf = buf[:0]
			}
			return buf, err
		}
	}
	if cap(buf) > cap(r.buf) {
		r.buf = buf[:0]
	}
	return buf, nil
}
