package codec

import (
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/s2"
)

// Defaults for S2Options.
const (
	DefaultS2BlockSize   = 1 << 20 // uncompressed bytes per chunk
	DefaultS2Concurrency = 2
	// MaxS2BlockSize is the largest block the s2 format allows; readers
	// accept blocks up to this size, so a reader needs about 2×4 MiB.
	MaxS2BlockSize = 4 << 20
)

// S2Options configures the s2 codec. The zero value means the defaults.
//
// Memory bound: the writer holds about 2·Concurrency·BlockSize (input and
// output per in-flight block); the reader holds one block and its compressed
// form, at most about 2·MaxS2BlockSize.
type S2Options struct {
	// Level is "" or "fast" (default), "better" or "best".
	Level string
	// BlockSize is the uncompressed size of each chunk, 4 KiB to 4 MiB (0
	// means DefaultS2BlockSize).
	BlockSize int
	// Concurrency is the number of goroutines compressing one stream (0
	// means DefaultS2Concurrency).
	Concurrency int
}

type s2Codec struct {
	enc []s2.WriterOption
}

// NewS2 returns the s2 codec: klauspost S2 in the snappy framing format
// (stream identifier chunk "S2sTwO", CRC-32C per chunk).
func NewS2(o S2Options) (Codec, error) {
	if o.BlockSize == 0 {
		o.BlockSize = DefaultS2BlockSize
	}
	if o.BlockSize < 4<<10 || o.BlockSize > MaxS2BlockSize {
		return nil, fmt.Errorf("codec: s2 block size %d out of range 4 KiB-4 MiB", o.BlockSize)
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultS2Concurrency
	}
	if o.Concurrency < 1 {
		return nil, errors.New("codec: s2 concurrency must be at least 1")
	}
	c := &s2Codec{enc: []s2.WriterOption{
		s2.WriterBlockSize(o.BlockSize),
		s2.WriterConcurrency(o.Concurrency),
	}}
	switch o.Level {
	case "", "fast":
	case "better":
		c.enc = append(c.enc, s2.WriterBetterCompression())
	case "best":
		c.enc = append(c.enc, s2.WriterBestCompression())
	default:
		return nil, fmt.Errorf("codec: s2 level %q unknown (fast, better, best)", o.Level)
	}
	return c, nil
}

func (c *s2Codec) Name() string { return NameS2 }

func (c *s2Codec) NewWriter(w io.Writer) (io.WriteCloser, error) {
	return &s2Writer{w: s2.NewWriter(markedWriter{w}, c.enc...), dst: w}, nil
}

type s2Writer struct {
	w     *s2.Writer
	dst   io.Writer
	wrote bool
}

func (s *s2Writer) Write(p []byte) (int, error) {
	s.wrote = s.wrote || len(p) > 0
	n, err := s.w.Write(p)
	return n, layerError(NameS2, "compress", err)
}

func (s *s2Writer) Close() error {
	if err := s.w.Close(); err != nil {
		return layerError(NameS2, "close", err)
	}
	if !s.wrote {
		// s2 writes nothing for empty input; emit the stream identifier so
		// an empty stream is still recognisable as s2 (and valid framing).
		s.wrote = true
		if _, err := s.dst.Write(S2Magic); err != nil {
			return err
		}
	}
	return nil
}

func (c *s2Codec) NewReader(r io.Reader) (io.ReadCloser, error) {
	return &s2Reader{r: s2.NewReader(markedReader{r}, s2.ReaderMaxBlockSize(MaxS2BlockSize))}, nil
}

type s2Reader struct{ r *s2.Reader }

func (s *s2Reader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	return n, layerError(NameS2, "decompress", err)
}

func (s *s2Reader) Close() error { return nil }
