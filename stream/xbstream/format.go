package xbstream

import (
	"errors"
	"fmt"
	"strconv"
)

// Magic is the 8-byte marker that starts every chunk.
const Magic = "XBSTCK01"

// ChunkType is the one-byte type code of a chunk.
type ChunkType byte

// Chunk types known to MariaDB 10.11.
const (
	TypePayload ChunkType = 'P' // file data at an offset
	TypeEOF     ChunkType = 'E' // end of a file
	TypeSeek    ChunkType = 'S' // set the write position of an open file
	TypeRename  ChunkType = 'R' // rename a closed file
	TypeRemove  ChunkType = 'D' // delete a closed file
)

// Known reports whether t is one of the five chunk types of MariaDB 10.11.
func (t ChunkType) Known() bool {
	switch t {
	case TypePayload, TypeEOF, TypeSeek, TypeRename, TypeRemove:
		return true
	}
	return false
}

func (t ChunkType) String() string {
	if t >= 0x21 && t < 0x7f {
		return string(rune(t))
	}
	return "0x" + strconv.FormatUint(uint64(t), 16)
}

// Flags is the flags byte of a chunk.
type Flags byte

const (
	// FlagIgnorable marks a chunk that a reader may skip when it does not
	// know its type. Such a chunk is laid out like a payload chunk.
	FlagIgnorable Flags = 0x01
	// FlagRewrite marks data of a file that mariabackup copies again; the
	// extractor truncates an earlier copy made by the same stream instead of
	// refusing to re-create it.
	FlagRewrite Flags = 0x02
)

const (
	// MaxPathLen is the largest path length, in bytes, that a 10.11 reader
	// accepts (FN_REFLEN-1). Longer paths are a format error.
	MaxPathLen = 511

	// DefaultChunkSize is the payload size of the chunks Writer.WriteFile
	// emits: mariabackup's XB_STREAM_MIN_CHUNK_SIZE and mbstream -c's read
	// size, 10 MiB.
	DefaultChunkSize = 10 << 20

	// DefaultMaxPayload is the default cap on a single chunk's payload length
	// enforced by Reader and Extract. The format allows any u64; mariabackup
	// 10.11 emits at most 10 MiB per chunk in practice.
	DefaultMaxPayload = 64 << 20

	prefixLen = 14 // magic + flags + type + path_len
)

// Chunk is one parsed chunk. Fields that do not apply to a chunk's type are
// zero.
type Chunk struct {
	Type  ChunkType
	Flags Flags
	Path  string

	// Offset is the file offset of a payload (P, and ignorable unknown types)
	// or the seek target (S).
	Offset int64

	// Payload holds the data of a P chunk (or an ignorable chunk of unknown
	// type). Chunks returned by Reader.Next share a buffer that the next call
	// overwrites; copy the data to keep it.
	Payload []byte

	// Checksum is the CRC-32 (IEEE) carried by a payload chunk. Reader has
	// verified it against Payload.
	Checksum uint32

	// NewPath is the destination of an R chunk.
	NewPath string

	// StreamOffset is the byte offset of the chunk's first byte in the
	// stream (set by Reader, ignored by Writer).
	StreamOffset int64
}

// FormatError reports a malformed or unacceptable stream.
//
// Offset is the stream byte offset of the first byte of the chunk in which
// the problem was found; Path is that chunk's path when it was already read
// (empty otherwise). Err, when set, is a wrapped cause such as
// io.ErrUnexpectedEOF for a truncated stream.
type FormatError struct {
	Offset int64
	Path   string
	Reason string
	Err    error
}

func (e *FormatError) Error() string {
	s := "xbstream: offset " + strconv.FormatInt(e.Offset, 10) + ": "
	if e.Path != "" {
		s += "file " + strconv.Quote(e.Path) + ": "
	}
	s += e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(off int64, path, format string, args ...any) *FormatError {
	return &FormatError{Offset: off, Path: path, Reason: fmt.Sprintf(format, args...)}
}

// errWriterFailed is returned by Writer methods after an earlier write
// failed and left the output in an undefined state.
var errWriterFailed = errors.New("xbstream: writer unusable after an earlier write error")
