package stream

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"filippo.io/age"

	"github.com/gosst/gosst/stream/codec"
	"github.com/gosst/gosst/stream/crypt"
	"github.com/gosst/gosst/stream/integrity"
)

// Encryption says how a Reader decides whether there is an age layer.
type Encryption int

const (
	// DetectEncryption looks for the age header: for streams from files or
	// pipes, which carry no record.
	DetectEncryption Encryption = iota
	// Encrypted: a record (manifest, index) says the stream is age-encrypted.
	Encrypted
	// Unencrypted: a record says the stream is not encrypted.
	Unencrypted
)

// ErrNeedIdentity is returned for an age-encrypted stream when no identity
// was given.
var ErrNeedIdentity = errors.New("the stream is age-encrypted: give --identity FILE or --passphrase-file FILE")

// ReadOptions choose how the layers of a stream are peeled off.
type ReadOptions struct {
	Identities []age.Identity
	Encryption Encryption
	// Expected is the plaintext's size and SHA-256 from a record, checked
	// as well as the end marker; required for codec none unless Foreign.
	Expected *Sum
	// Foreign accepts streams other tools write: a plain xbstream (codec
	// none, read as is: only its chunk CRCs check it) and the stock zstd
	// CLI's output (`mbstream -c | zstd`: the end marker is optional, as
	// zstd frames carry their own checksum and detect a cut inside a frame,
	// and the window limit is the zstd CLI's own, codec.StockZstdMaxWindow).
	// s2 streams must carry the marker even then: an s2 stream can be cut
	// between any two chunks.
	Foreign bool
}

// Reader reads the plaintext of a stored stream: age (when encrypted) →
// codec → end-marker check. Read returns io.EOF only after every layer
// verified; everything read before is untrusted until then.
type Reader struct {
	plain  io.Reader
	outer  []string          // "age", when encrypted
	codec  string            // the codec's name, once recognised
	sealed *integrity.Reader // nil for a foreign codec-none stream
	// noCheck: the first zstd frame carries no content checksum (zstd
	// --no-check); without an end marker nothing then verifies the bytes.
	noCheck bool
}

// NewReader peels the layers off r. r is read only as far as the stream
// goes, except with DetectEncryption, which buffers. On error the returned
// Reader is never nil: its Layers name what was recognised so far.
func NewReader(r io.Reader, o ReadOptions) (*Reader, error) {
	s := &Reader{}
	src, err := s.openAge(r, o)
	if err != nil {
		return s, err
	}
	c, cr, err := codec.Detect(src)
	if err != nil {
		return s, err
	}
	s.codec = c.Name()
	var opts []integrity.Option
	if o.Expected != nil {
		opts = append(opts, integrity.WithExpected(*o.Expected))
	}
	switch {
	case !o.Foreign:
	case c.Name() == codec.NameNone && o.Expected == nil:
		s.plain = cr
		return s, nil
	case c.Name() == codec.NameZstd:
		c, err = codec.NewZstd(codec.ZstdOptions{MaxWindow: codec.StockZstdMaxWindow})
		if err != nil {
			return s, err
		}
		opts = append(opts, integrity.WithOptionalMarker())
		s.noCheck = zstdNoCheck(cr)
	}
	ir, err := integrity.NewReader(cr, c, opts...)
	if err != nil {
		return s, err
	}
	s.sealed, s.plain = ir, ir
	return s, nil
}

// ageHeader starts every binary age file.
var ageHeader = []byte("age-encryption.org/v1\n")

func (s *Reader) openAge(r io.Reader, o ReadOptions) (io.Reader, error) {
	switch o.Encryption {
	case Unencrypted:
		return r, nil
	case DetectEncryption:
		br := bufio.NewReaderSize(r, 64<<10)
		head, _ := br.Peek(len(ageHeader))
		if !bytes.Equal(head, ageHeader) {
			return br, nil
		}
		r = br
	}
	if len(o.Identities) == 0 {
		return nil, ErrNeedIdentity
	}
	d, err := crypt.Decrypt(r, o.Identities...)
	if err != nil {
		return nil, err
	}
	s.outer = append(s.outer, "age")
	return d, nil
}

// zstdNoCheck reports whether the zstd frame r starts with has no content
// checksum: its frame header is the magic, then the descriptor whose bit 2
// is Content_Checksum_flag (RFC 8878 3.1.1.1.1).
func zstdNoCheck(r io.Reader) bool {
	if p, ok := r.(interface{ Peek(int) ([]byte, error) }); ok {
		if h, _ := p.Peek(5); len(h) == 5 && bytes.Equal(h[:4], codec.ZstdMagic) {
			return h[4]&0x04 == 0
		}
	}
	return false
}

func (s *Reader) Read(p []byte) (int, error) { return s.plain.Read(p) }

// Layers names the layers for reports. With ended (the plaintext was read
// to its end without error) it also says whether the stream carried the end
// marker; before that, only what the codec is.
func (s *Reader) Layers(ended bool) []string {
	l := append([]string(nil), s.outer...)
	switch {
	case s.codec == "":
	case s.sealed == nil && s.plain != nil:
		l = append(l, "none (no end marker; xbstream chunk CRCs only)")
	case s.sealed == nil, !ended:
		l = append(l, s.codec)
	case s.sealed.Sealed():
		l = append(l, s.codec+"+end-marker")
	case s.codec == codec.NameNone:
		l = append(l, "none (checked against the recorded size and SHA-256)")
	case s.noCheck:
		l = append(l, s.codec+" (no gosst end marker; no zstd frame checksum: only the xbstream chunk CRCs verify the bytes)")
	default:
		l = append(l, s.codec+" (no gosst end marker; zstd frame checksums only)")
	}
	return l
}

// Unsealed reports whether the stream, read to its end, had no end marker
// (a foreign zstd stream).
func (s *Reader) Unsealed() bool { return s.sealed != nil && !s.sealed.Sealed() }

// NoCheck reports whether the (first) zstd frame carries no checksum.
func (s *Reader) NoCheck() bool { return s.noCheck }

// Close releases the codec; it does not close the source.
func (s *Reader) Close() error {
	if s.sealed == nil {
		return nil
	}
	return s.sealed.Close()
}
