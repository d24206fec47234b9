package codec

import (
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// StreamLevel is the zstd level gosst stores and sends streams at unless
// the operator chose another (stream.DefaultLevel for backups and archived
// binlogs, compression-level for SST): level 1 keeps up with mariabackup on
// one core. It is defined here, in the leaf both import, so that the SST
// binary shares it without linking the stored-stream stack.
const StreamLevel = 1

// Defaults for ZstdOptions. They are constants, not derived from the
// machine, so that a stream's memory use does not change with GOMAXPROCS.
const (
	DefaultZstdLevel       = 3       // zstd CLI level; maps to zstd.SpeedDefault
	DefaultZstdWindow      = 8 << 20 // encoder window (back-reference distance)
	FastZstdWindow         = 1 << 20 // default window for levels 1 and 2
	DefaultZstdConcurrency = 2       // encoder and decoder goroutines per stream
	// DefaultZstdMaxWindow is the largest window a reader accepts. A frame
	// that asks for more is refused before anything is allocated for it.
	// The zstd CLI refuses windows above 128 MiB by default; we stay below.
	DefaultZstdMaxWindow = 64 << 20
	// MaxZstdWindow is the largest window our writer will use, so that
	// everything we write is readable with the default reader options.
	MaxZstdWindow = DefaultZstdMaxWindow
	// StockZstdMaxWindow is the largest window the zstd CLI decodes without
	// --memory (window log 27): what `zstd --long=27` writes, and what a
	// single-segment frame of a file up to 128 MiB announces. Readers of
	// streams that other tools wrote use it as MaxWindow.
	StockZstdMaxWindow = 128 << 20
)

// ZstdOptions configures the zstd codec. The zero value means the defaults.
//
// Memory bound. Writer, with Concurrency n > 1 and window W: the input is cut
// into jobs of 4·W (at least 512 KiB) that are compressed in parallel, each
// prefixed with W/8 to W/2 of the previous job for matches. Up to about 2n+2
// jobs are buffered at once, so the writer holds roughly (2n+2)·(4W + output)
// plus n match tables of a few MiB each. Measured with v1.20.4 on a 48 MiB
// stream: 167 MB allocated for the defaults (n=2, W=8 MiB), 41 MB for n=2 and
// W=1 MiB, 20 MB for n=1 and W=8 MiB, 5 MB for n=1 and W=1 MiB (n=1 is
// synchronous and holds about 2·W plus one table). Lower Window or
// Concurrency to lower the bound.
//
// Reader, with concurrency m and window limit M: a frame's window (at most M,
// else the frame is refused with zstd.ErrWindowSizeExceeded) plus m in-flight
// blocks of at most 128 KiB each. The total decoded size of a stream is not
// limited, as an SST can be terabytes.
type ZstdOptions struct {
	// Level is a zstd CLI level 1-22 (0 means 3). It maps onto the four
	// levels klauspost implements: 1-2 fastest, 3-5 default, 6-9 better,
	// 10+ best. Level does not change the format.
	Level int
	// Window is the encoder window in bytes, a power of two between 1 KiB and
	// MaxZstdWindow (0 means FastZstdWindow for levels 1-2, else
	// DefaultZstdWindow).
	Window int
	// Concurrency is the number of goroutines compressing one stream
	// (0 means DefaultZstdConcurrency). With more than one, the stream is cut
	// into jobs that compress in parallel (zstd.WithConcurrentBlocks) and still
	// form one valid frame.
	Concurrency int
	// DecoderConcurrency is the number of goroutines decoding one stream (0
	// means DefaultZstdConcurrency; 1 decodes synchronously).
	DecoderConcurrency int
	// MaxWindow is the largest window the reader accepts (0 means
	// DefaultZstdMaxWindow). It bounds reader memory against hostile input.
	MaxWindow uint64
}

type zstdCodec struct {
	enc       []zstd.EOption
	dec       []zstd.DOption
	maxWindow uint64
}

// NewZstd returns the zstd codec. Its writer emits one zstd frame per stream
// with the frame content checksum (xxhash64) set, so `zstd -d` and any other
// conforming decoder verify the bytes. Options are validated here.
func NewZstd(o ZstdOptions) (Codec, error) {
	if o.Level == 0 {
		o.Level = DefaultZstdLevel
	}
	if o.Level < 1 || o.Level > 22 {
		return nil, fmt.Errorf("codec: zstd level %d out of range 1-22", o.Level)
	}
	if o.Window == 0 {
		o.Window = DefaultZstdWindow
		if o.Level <= 2 {
			// The fastest level gains little from a long window, and with
			// concurrent blocks each job holds 4x the window: 1 MiB keeps two
			// goroutines at ~50 MiB instead of ~300 MiB and is faster
			// (measured in docs/benchmarks.md).
			o.Window = FastZstdWindow
		}
	}
	if o.Window < zstd.MinWindowSize || o.Window > MaxZstdWindow || o.Window&(o.Window-1) != 0 {
		return nil, fmt.Errorf("codec: zstd window %d must be a power of two between %d and %d", o.Window, zstd.MinWindowSize, MaxZstdWindow)
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultZstdConcurrency
	}
	if o.DecoderConcurrency == 0 {
		o.DecoderConcurrency = DefaultZstdConcurrency
	}
	if o.Concurrency < 1 || o.DecoderConcurrency < 1 {
		return nil, errors.New("codec: zstd concurrency must be at least 1")
	}
	if o.MaxWindow == 0 {
		o.MaxWindow = DefaultZstdMaxWindow
	}
	if o.MaxWindow < zstd.MinWindowSize {
		return nil, fmt.Errorf("codec: zstd max window %d below %d", o.MaxWindow, zstd.MinWindowSize)
	}
	c := &zstdCodec{
		maxWindow: o.MaxWindow,
		enc: []zstd.EOption{
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(o.Level)),
			zstd.WithWindowSize(o.Window), // explicit, so the level cannot pick one
			zstd.WithEncoderConcurrency(o.Concurrency),
			zstd.WithConcurrentBlocks(o.Concurrency > 1),
			zstd.WithEncoderCRC(true),
			zstd.WithZeroFrames(true), // empty input still gives a frame `zstd -d` accepts
		},
		dec: []zstd.DOption{
			zstd.WithDecoderConcurrency(o.DecoderConcurrency),
			zstd.WithDecoderMaxWindow(o.MaxWindow),
			// For streams this caps the window too (the smaller one wins).
			zstd.WithDecoderMaxMemory(o.MaxWindow),
			zstd.WithDecoderLowmem(true),
		},
	}
	// Fail now, not on first use, if the library rejects the options.
	e, err := zstd.NewWriter(nil, c.enc...)
	if err != nil {
		return nil, fmt.Errorf("codec: zstd options: %w", err)
	}
	_ = e.Close()
	return c, nil
}

func (c *zstdCodec) Name() string { return NameZstd }

func (c *zstdCodec) NewWriter(w io.Writer) (io.WriteCloser, error) {
	e, err := zstd.NewWriter(markedWriter{w}, c.enc...)
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return &zstdWriter{e: e}, nil
}

// zstdWriter prefixes errors with the layer name.
type zstdWriter struct{ e *zstd.Encoder }

func (z *zstdWriter) Write(p []byte) (int, error) {
	n, err := z.e.Write(p)
	return n, layerError(NameZstd, "compress", err)
}

func (z *zstdWriter) Close() error {
	return layerError(NameZstd, "close", z.e.Close())
}

func (c *zstdCodec) NewReader(r io.Reader) (io.ReadCloser, error) {
	d, err := zstd.NewReader(markedReader{r}, c.dec...)
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return &zstdReader{d: d, maxWindow: c.maxWindow}, nil
}

type zstdReader struct {
	d         *zstd.Decoder
	maxWindow uint64
}

func (z *zstdReader) Read(p []byte) (int, error) {
	n, err := z.d.Read(p)
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		// A frame announced a window (or, for a single-segment frame, a
		// content size) above the limit; nothing was allocated for it.
		return n, fmt.Errorf("%s: a frame needs a window larger than this reader's limit of %d MiB (written with zstd --long=28 or more?): %w",
			NameZstd, z.maxWindow>>20, err)
	}
	return n, layerError(NameZstd, "decompress", err)
}

func (z *zstdReader) Close() error {
	z.d.Close()
	return nil
}
