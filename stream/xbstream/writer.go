package xbstream

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// Writer writes an xbstream to an io.Writer.
//
// Every chunk is written with at most two Write calls (header, then payload)
// and no buffering beyond WriteFile's chunk buffer; wrap the destination in a
// bufio.Writer for small chunks, and flush it yourself. Writer never closes
// the underlying writer. A failed Write leaves a partial chunk behind, so
// after the first write error every method returns an error. Paths must be
// relative, '/'-separated, without empty, "." or ".." components and at most
// MaxPathLen bytes (the rules Extract enforces); otherwise the method returns
// an error and writes nothing.
//
// mbstream -x creates only the immediate parent directory of a file, so a
// stream meant for it should not introduce a directory two levels deep
// before its parent exists (mariabackup paths are at most "db/file").
//
// A Writer is not safe for concurrent use.
type Writer struct {
	w         io.Writer
	chunkSize int
	buf       []byte // WriteFile's chunk buffer, allocated on first use
	hdr       []byte
	err       error
}

// NewWriter returns a Writer whose WriteFile emits DefaultChunkSize (10 MiB)
// payload chunks, like mariabackup.
func NewWriter(w io.Writer) *Writer { return NewWriterSize(w, DefaultChunkSize) }

// NewWriterSize returns a Writer whose WriteFile emits payload chunks of
// chunkSize bytes (the last chunk of a file may be shorter). chunkSize <= 0
// means DefaultChunkSize; values above DefaultMaxPayload are lowered to it so
// that the stream stays readable by Reader with default limits.
func NewWriterSize(w io.Writer, chunkSize int) *Writer {
	if chunkSize <= 0 {
		chunkSize = DefaultChunkSize
	}
	chunkSize = min(chunkSize, DefaultMaxPayload)
	return &Writer{w: w, chunkSize: chunkSize}
}

// WriteFile copies r to the stream as the file path: payload chunks from
// offset 0 in order, then an E chunk. An empty r produces only the E chunk,
// as mariabackup does. flags is applied to the payload chunks (use
// FlagRewrite for a re-copy of a file already in the stream, 0 otherwise).
// It returns the number of payload bytes written.
//
// If reading r fails, WriteFile returns that error after the chunks already
// written; the stream then holds the file without its E chunk, which Extract
// rejects, and the caller should abandon the stream.
func (w *Writer) WriteFile(path string, r io.Reader, flags Flags) (int64, error) {
	if err := w.checkPaths(path); err != nil {
		return 0, err
	}
	if w.buf == nil {
		w.buf = make([]byte, w.chunkSize)
	}
	var off int64
	for {
		n, rerr := io.ReadFull(r, w.buf)
		if n > 0 {
			if err := w.WritePayload(path, off, w.buf[:n], flags); err != nil {
				return off, err
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return off, fmt.Errorf("xbstream: reading data of %q at offset %d: %w", path, off, rerr)
		}
	}
	return off, w.WriteEOF(path)
}

// WritePayload writes one P chunk carrying data for path at file offset
// offset. Extractors require the offsets of a file to be contiguous: the
// first chunk at 0 (or at the target of a preceding S chunk), each next one
// where the previous ended.
func (w *Writer) WritePayload(path string, offset int64, data []byte, flags Flags) error {
	return w.WriteChunk(&Chunk{Type: TypePayload, Flags: flags, Path: path, Offset: offset, Payload: data})
}

// WriteEOF writes the E chunk that closes path.
func (w *Writer) WriteEOF(path string) error {
	return w.WriteChunk(&Chunk{Type: TypeEOF, Path: path})
}

// WriteSeek writes an S chunk that moves the write position of the open file
// path to offset; the next payload chunk of path must start there.
func (w *Writer) WriteSeek(path string, offset int64) error {
	return w.WriteChunk(&Chunk{Type: TypeSeek, Path: path, Offset: offset})
}

// WriteRename writes an R chunk renaming the closed file oldPath to newPath.
func (w *Writer) WriteRename(oldPath, newPath string) error {
	return w.WriteChunk(&Chunk{Type: TypeRename, Path: oldPath, NewPath: newPath})
}

// WriteRemove writes a D chunk deleting the closed file path.
func (w *Writer) WriteRemove(path string) error {
	return w.WriteChunk(&Chunk{Type: TypeRemove, Path: path})
}

// WriteChunk writes c. The checksum is computed from c.Payload (c.Checksum
// and c.StreamOffset are ignored). A chunk of a type other than the five
// known ones must carry FlagIgnorable and is written with the payload
// layout.
func (w *Writer) WriteChunk(c *Chunk) error {
	if w.err != nil {
		return errWriterFailed
	}
	paths := []string{c.Path}
	if c.Type == TypeRename {
		paths = append(paths, c.NewPath)
	}
	if err := w.checkPaths(paths...); err != nil {
		return err
	}
	if !c.Type.Known() && c.Flags&FlagIgnorable == 0 {
		return fmt.Errorf("xbstream: chunk type %s is unknown and not flagged ignorable", c.Type)
	}
	if c.Offset < 0 {
		return fmt.Errorf("xbstream: negative offset %d for %q", c.Offset, c.Path)
	}
	if len(c.Payload) > DefaultMaxPayload {
		return fmt.Errorf("xbstream: payload of %d bytes for %q exceeds %d", len(c.Payload), c.Path, DefaultMaxPayload)
	}
	w.hdr = appendHeader(w.hdr[:0], c)
	if _, err := w.w.Write(w.hdr); err != nil {
		w.err = err
		return fmt.Errorf("xbstream: writing %s chunk of %q: %w", c.Type, c.Path, err)
	}
	if hasPayload(c.Type) && len(c.Payload) > 0 {
		if _, err := w.w.Write(c.Payload); err != nil {
			w.err = err
			return fmt.Errorf("xbstream: writing payload of %q: %w", c.Path, err)
		}
	}
	return nil
}

func (w *Writer) checkPaths(paths ...string) error {
	if w.err != nil {
		return errWriterFailed
	}
	for _, p := range paths {
		if reason := checkPath(p); reason != "" {
			return fmt.Errorf("xbstream: invalid path %q: %s", p, reason)
		}
	}
	return nil
}

// hasPayload reports whether chunks of type t use the payload layout.
func hasPayload(t ChunkType) bool { return t == TypePayload || !t.Known() }

// appendHeader appends the encoding of c without its payload bytes. It does
// not validate c; Writer does.
func appendHeader(b []byte, c *Chunk) []byte {
	b = append(b, Magic...)
	b = append(b, byte(c.Flags), byte(c.Type))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(c.Path)))
	b = append(b, c.Path...)
	switch {
	case c.Type == TypeSeek:
		b = binary.LittleEndian.AppendUint64(b, uint64(c.Offset))
	case c.Type == TypeRename:
		b = binary.LittleEndian.AppendUint32(b, uint32(len(c.NewPath)))
		b = append(b, c.NewPath...)
	case hasPayload(c.Type):
		b = binary.LittleEndian.AppendUint64(b, uint64(len(c.Payload)))
		b = binary.LittleEndian.AppendUint64(b, uint64(c.Offset))
		b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(c.Payload))
	}
	return b
}
