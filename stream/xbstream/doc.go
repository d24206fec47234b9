// Package xbstream reads, writes and extracts the xbstream archive format
// produced by `mariabackup --backup --stream=xbstream` and `mbstream -c`
// (MariaDB 10.11).
//
// A stream is a plain concatenation of chunks; there is no header, trailer or
// index, and a clean end of input at a chunk boundary ends the stream. Every
// chunk starts with the magic "XBSTCK01", a flags byte, a type byte and a
// length-prefixed path. Five chunk types exist in 10.11:
//
//	P  payload: file data at an explicit file offset, CRC-32 (IEEE) checked
//	E  end of file: closes the path
//	S  seek: moves the write position of an open file
//	R  rename a closed file
//	D  delete a closed file
//
// The package has three parts:
//
//   - [Reader] parses chunks from an io.Reader and validates the framing
//     (magic, type, lengths, checksums). It does not interpret paths.
//   - [Writer] produces chunks; its output is extractable by `mbstream -x`.
//   - [Extract] applies a stream to a directory, with checks stricter than
//     `mbstream -x` (path traversal, symlinks, pre-existing files, offsets,
//     truncation, files left open) and makes everything it wrote durable
//     before it returns (fsync per file; optionally O_DIRECT and one
//     syncfs on Linux).
//
// All malformed-stream conditions are reported as *[FormatError], which
// names the byte offset of the offending chunk in the stream and its path.
// A stream that ends inside a chunk yields a *FormatError wrapping
// io.ErrUnexpectedEOF.
//
// See docs/xbstream.md and /work/shared/docs/xbstream-format.md for the
// format itself.
package xbstream
