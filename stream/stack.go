package stream

import (
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	"github.com/gosst/gosst/stream/codec"
	"github.com/gosst/gosst/stream/crypt"
	"github.com/gosst/gosst/stream/integrity"
)

// Codec compresses and decompresses one stream (see package codec).
type Codec = codec.Codec

// Sum is the size and SHA-256 of a stream's plaintext, as its end marker
// and a manifest record them.
type Sum = integrity.Sum

// Codec names, as manifests, indexes and the --codec flags spell them.
const (
	CodecZstd = codec.NameZstd
	CodecS2   = codec.NameS2
	CodecNone = codec.NameNone
)

// DefaultLevel is the zstd level of every stored stream unless the operator
// chose another: level 1 keeps up with mariabackup on one core. The SST
// transport's compression-level defaults to the same constant.
const DefaultLevel = codec.StreamLevel

// CodecOptionError is NewCodec's error when the codec name or level the
// operator gave (--codec, --level) is not valid: a usage error.
type CodecOptionError struct{ Msg string }

func (e *CodecOptionError) Error() string { return e.Msg }

// DefaultCodec is the codec of stored streams when none was chosen.
func DefaultCodec() (Codec, error) {
	return codec.NewZstd(codec.ZstdOptions{Level: DefaultLevel})
}

// ValidCodec reports whether name is a codec a stored stream may use.
func ValidCodec(name string) bool {
	switch name {
	case CodecZstd, CodecS2, CodecNone:
		return true
	}
	return false
}

// NewCodec returns the codec an operator named, with its level (zstd: 1
// fastest .. 19 smallest; s2: 1 fast, 2 better, 3 best) and compression
// goroutines.
func NewCodec(name string, level, concurrency int) (Codec, error) {
	switch name {
	case CodecZstd:
		return codec.NewZstd(codec.ZstdOptions{Level: level, Concurrency: concurrency})
	case CodecS2:
		levels := map[int]string{1: "fast", 2: "better", 3: "best"}
		l, ok := levels[level]
		if !ok {
			return nil, &CodecOptionError{fmt.Sprintf("--level %d: s2 levels are 1 (fast), 2 (better), 3 (best)", level)}
		}
		return codec.NewS2(codec.S2Options{Level: l, Concurrency: concurrency})
	case CodecNone:
		return codec.None(), nil
	}
	return nil, &CodecOptionError{fmt.Sprintf("--codec %q: want zstd, s2 or none", name)}
}

// NewAsyncSHA256 returns a SHA-256 that hashes on its own goroutine, for
// the stored bytes of a stream; Sum stops the goroutine.
func NewAsyncSHA256() *AsyncSHA256 { return integrity.NewAsyncSHA256() }

// AsyncSHA256 is the hash NewAsyncSHA256 returns.
type AsyncSHA256 = integrity.AsyncSHA256

// WriteOptions choose the layers of a stored stream.
type WriteOptions struct {
	Codec      Codec           // required
	Recipients []age.Recipient // encrypt with age to these; none: no age layer
}

// Writer writes the stored form of a stream: plaintext → codec with end
// marker (none for codec none) → age, when there are recipients → dst.
type Writer struct {
	iw  *integrity.Writer
	enc io.WriteCloser // nil without encryption
}

// NewWriter returns a Writer into dst. Close (or Abort) must be called;
// neither closes dst.
func NewWriter(dst io.Writer, o WriteOptions) (*Writer, error) {
	if o.Codec == nil {
		return nil, errors.New("stream: no codec")
	}
	w := &Writer{}
	if len(o.Recipients) > 0 {
		e, err := crypt.Encrypt(dst, o.Recipients...)
		if err != nil {
			return nil, err
		}
		w.enc, dst = e, e
	}
	iw, err := integrity.NewWriter(dst, o.Codec)
	if err != nil {
		return nil, err
	}
	w.iw = iw
	return w, nil
}

func (w *Writer) Write(p []byte) (int, error) { return w.iw.Write(p) }

// Close writes the end marker and finishes the encryption; it returns the
// plaintext's size and SHA-256.
func (w *Writer) Close() (Sum, error) {
	if err := w.iw.Close(); err != nil {
		return Sum{}, err
	}
	if w.enc != nil {
		if err := w.enc.Close(); err != nil {
			return Sum{}, err
		}
	}
	return w.iw.Sum(), nil
}

// Abort ends a failed stream without an end marker, so it can never pass
// for complete.
func (w *Writer) Abort() { w.iw.Abort() }

// StoredSize is the size of the compressed stream with its marker (before
// encryption).
func (w *Writer) StoredSize() int64 { return w.iw.StoredSize() }
