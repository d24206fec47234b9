// Package integrity seals a compressed stream with an end marker that
// carries the byte count and SHA-256 of the plaintext, and verifies it on
// the way back. A stream that is cut short, altered, or followed by extra
// bytes reads as an error, never as a clean io.EOF.
//
// The marker travels inside the compressed format as a block that the
// format's own decoders skip, so a stored object still decodes by hand:
//
//	age -d -i KEY object | zstd -d | mbstream -x
//
// For zstd the marker is a skippable frame (magic 0x184D2A5E) after the last
// frame; for s2 it is a skippable chunk (type 0xA7) after the last chunk.
// Codec "none" has no container for a marker, because a marker appended to
// an xbstream would break mbstream; such a stream is protected by age's
// authenticated encryption (which detects truncation) and by the size and
// hash recorded in the manifest, which the Reader checks when given
// WithExpected. docs/format.md describes every byte.
package integrity

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/gosst/gosst/stream/codec"
)

// Marker layout constants.
const (
	// MarkerVersion is the only marker version this package writes and reads.
	MarkerVersion = 1
	// MarkerPayloadSize is the size of the marker payload inside its container.
	MarkerPayloadSize = 64

	// ZstdMarkerMagic is the skippable frame magic of the zstd container.
	ZstdMarkerMagic uint32 = 0x184D2A5E
	// S2MarkerChunk is the skippable chunk type of the s2 container.
	S2MarkerChunk byte = 0xA7

	zstdMarkerSize = 8 + MarkerPayloadSize // magic, frame size, payload
	s2MarkerSize   = 4 + MarkerPayloadSize // type, 24-bit length, payload
)

var markerID = [4]byte{'G', 'S', 'T', 'E'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors returned by the Reader and by ParseMarker; test with errors.Is.
var (
	// ErrMissingMarker: the stream ended without an end marker where one must
	// be, i.e. it was cut short or has extra bytes appended.
	ErrMissingMarker = errors.New("integrity: end marker missing (stream truncated or extra bytes appended)")
	// ErrCorruptMarker: the marker is present but damaged (bad checksum,
	// reserved bits set).
	ErrCorruptMarker = errors.New("integrity: end marker corrupt")
	// ErrUnsupportedVersion: the marker was written by a newer format version.
	ErrUnsupportedVersion = errors.New("integrity: unsupported end marker version")
	// ErrMismatch: the plaintext does not match the marker or the manifest.
	ErrMismatch = errors.New("integrity: content does not match end marker")
	// ErrTrailingData: bytes follow the compressed data that the decoder did
	// not consume.
	ErrTrailingData = errors.New("integrity: unexpected data after end of stream")
	// ErrNoMarker: the codec has no marker container and no expected sum was
	// given.
	ErrNoMarker = errors.New("integrity: codec none carries no end marker; pass the manifest's size and SHA-256 with WithExpected")
)

// Sum is the size and SHA-256 of a plaintext stream.
type Sum struct {
	Size   int64
	SHA256 [sha256.Size]byte
}

// String formats the sum as "SIZE sha256:HEX".
func (s Sum) String() string {
	return fmt.Sprintf("%d sha256:%s", s.Size, hex.EncodeToString(s.SHA256[:]))
}

// Marker is the decoded end marker payload.
type Marker struct {
	Version uint8
	Flags   uint8  // no flags are defined in version 1; must be zero
	Size    uint64 // plaintext bytes
	Stored  uint64 // stored (compressed) bytes before the marker container
	// StoredCRC is the CRC-32C of those stored bytes. A flipped bit in the
	// compressed data can decode to the same plaintext (a back-reference
	// to identical bytes); this catches that, so any altered byte fails.
	StoredCRC uint32
	SHA256    [sha256.Size]byte
}

// AppendPayload appends the 64-byte marker payload to dst.
func (m Marker) AppendPayload(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, markerID[:]...)
	dst = append(dst, m.Version, m.Flags, 0, 0)
	dst = binary.LittleEndian.AppendUint64(dst, m.Size)
	dst = binary.LittleEndian.AppendUint64(dst, m.Stored)
	dst = binary.LittleEndian.AppendUint32(dst, m.StoredCRC)
	dst = append(dst, m.SHA256[:]...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// ParseMarker decodes a 64-byte marker payload. It checks the identifier,
// the CRC-32C, the version and that reserved bits are zero; it does not
// compare the marker with any content.
func ParseMarker(b []byte) (Marker, error) {
	var m Marker
	if len(b) != MarkerPayloadSize {
		return m, fmt.Errorf("%w: payload is %d bytes, want %d", ErrCorruptMarker, len(b), MarkerPayloadSize)
	}
	if [4]byte(b[0:4]) != markerID {
		return m, fmt.Errorf("%w: identifier % x, want %q", ErrCorruptMarker, b[0:4], markerID[:])
	}
	if got, want := binary.LittleEndian.Uint32(b[60:64]), crc32.Checksum(b[:60], castagnoli); got != want {
		return m, fmt.Errorf("%w: checksum %08x, computed %08x", ErrCorruptMarker, got, want)
	}
	m.Version, m.Flags = b[4], b[5]
	if m.Version != MarkerVersion {
		return m, fmt.Errorf("%w %d (this build reads version %d)", ErrUnsupportedVersion, m.Version, MarkerVersion)
	}
	if m.Flags != 0 || b[6] != 0 || b[7] != 0 {
		return m, fmt.Errorf("%w: unknown flags %02x/reserved %02x%02x", ErrCorruptMarker, m.Flags, b[6], b[7])
	}
	m.Size = binary.LittleEndian.Uint64(b[8:16])
	m.Stored = binary.LittleEndian.Uint64(b[16:24])
	m.StoredCRC = binary.LittleEndian.Uint32(b[24:28])
	m.SHA256 = [32]byte(b[28:60])
	return m, nil
}

// containerSize returns the total marker size for a codec, 0 for none.
func containerSize(codecName string) (int, error) {
	switch codecName {
	case codec.NameZstd:
		return zstdMarkerSize, nil
	case codec.NameS2:
		return s2MarkerSize, nil
	case codec.NameNone:
		return 0, nil
	}
	return 0, fmt.Errorf("integrity: no end marker container for codec %q", codecName)
}

// AppendContainer appends m wrapped in the codec's skippable container.
func AppendContainer(dst []byte, codecName string, m Marker) ([]byte, error) {
	switch codecName {
	case codec.NameZstd:
		dst = binary.LittleEndian.AppendUint32(dst, ZstdMarkerMagic)
		dst = binary.LittleEndian.AppendUint32(dst, MarkerPayloadSize)
	case codec.NameS2:
		dst = append(dst, S2MarkerChunk, MarkerPayloadSize, 0, 0)
	default:
		return dst, fmt.Errorf("integrity: no end marker container for codec %q", codecName)
	}
	return m.AppendPayload(dst), nil
}

// looksLikeContainer reports whether b, the last bytes of a stored stream,
// is meant to be an end-marker container: it has the container's size and
// either its header or the marker identifier where the payload starts. One
// damaged byte cannot make a marker look absent.
func looksLikeContainer(codecName string, b []byte) bool {
	size, err := containerSize(codecName)
	if err != nil || size == 0 || len(b) != size {
		return false
	}
	var head []byte
	switch codecName {
	case codec.NameZstd:
		head = binary.LittleEndian.AppendUint32(nil, ZstdMarkerMagic)
		head = binary.LittleEndian.AppendUint32(head, MarkerPayloadSize)
	default: // s2
		head = []byte{S2MarkerChunk, MarkerPayloadSize, 0, 0}
	}
	h := len(head)
	return bytes.Equal(b[:h], head) || [4]byte(b[h:h+4]) == markerID
}

// ParseContainer decodes a marker in the codec's container. b must be
// exactly the container (the last bytes of the stored stream).
func ParseContainer(codecName string, b []byte) (Marker, error) {
	size, err := containerSize(codecName)
	if err != nil || size == 0 {
		return Marker{}, fmt.Errorf("integrity: no end marker container for codec %q", codecName)
	}
	if len(b) != size {
		return Marker{}, fmt.Errorf("%w: only %d bytes after the data", ErrMissingMarker, len(b))
	}
	switch codecName {
	case codec.NameZstd:
		if binary.LittleEndian.Uint32(b) != ZstdMarkerMagic || binary.LittleEndian.Uint32(b[4:]) != MarkerPayloadSize {
			return Marker{}, fmt.Errorf("%w: last %d bytes are not a zstd end-marker frame", ErrMissingMarker, size)
		}
		return ParseMarker(b[8:])
	default: // s2
		if b[0] != S2MarkerChunk || b[1] != MarkerPayloadSize || b[2] != 0 || b[3] != 0 {
			return Marker{}, fmt.Errorf("%w: last %d bytes are not an s2 end-marker chunk", ErrMissingMarker, size)
		}
		return ParseMarker(b[4:])
	}
}
