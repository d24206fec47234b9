// Package codec compresses and decompresses byte streams.
//
// Three codecs exist: "zstd" (the default), "s2" (klauspost's S2 in the
// snappy framing format) and "none" (bytes pass through unchanged). Every
// codec is a value built from explicit options; nothing is registered
// globally and no size or concurrency is inherited from GOMAXPROCS.
//
// Contracts shared by all codecs:
//
//   - NewWriter returns a writer that compresses into w. The caller must call
//     Close, also after a failed Write, to flush the last block and release
//     goroutines and buffers. Close never closes w.
//   - NewReader returns a reader of the decompressed bytes of r. The caller
//     must call Close to release goroutines; Close never closes r. A reader
//     returns io.EOF only at a clean end of the compressed stream; corrupt
//     input yields an error that starts with the codec name.
//   - Codec values are safe for concurrent use; each writer or reader they
//     return is not.
//
// The compressed formats carry no end marker of their own that guards
// against a cut between frames; package stream/integrity adds one.
package codec

import (
	"errors"
	"fmt"
	"io"
)

// Codec names as they appear in manifests and on the wire.
const (
	NameZstd = "zstd"
	NameS2   = "s2"
	NameNone = "none"
)

// Codec is one compression format.
type Codec interface {
	// Name is the stable identifier stored in manifests: "zstd", "s2" or "none".
	Name() string
	// NewWriter returns a compressing writer into w; see the package doc.
	NewWriter(w io.Writer) (io.WriteCloser, error)
	// NewReader returns a decompressing reader of r; see the package doc.
	NewReader(r io.Reader) (io.ReadCloser, error)
}

// ErrUnknownCodec is returned by Lookup for a name it does not know.
var ErrUnknownCodec = errors.New("codec: unknown codec")

// Lookup returns the codec called name with default options. The empty name
// means the default codec, zstd.
func Lookup(name string) (Codec, error) {
	switch name {
	case NameZstd, "":
		return NewZstd(ZstdOptions{})
	case NameS2:
		return NewS2(S2Options{})
	case NameNone:
		return None(), nil
	}
	return nil, fmt.Errorf("%w %q (known: zstd, s2, none)", ErrUnknownCodec, name)
}

// None returns the identity codec: its writer and reader copy bytes as they
// are. A "none" stream has no magic bytes and no checksum of its own.
func None() Codec { return noneCodec{} }

type noneCodec struct{}

func (noneCodec) Name() string { return NameNone }

func (noneCodec) NewWriter(w io.Writer) (io.WriteCloser, error) { return nopWriteCloser{w}, nil }

func (noneCodec) NewReader(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(r), nil }

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
