package codec

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Magic bytes recognised by Detect.
var (
	// ZstdMagic starts every zstd frame (0xFD2FB528 little-endian).
	ZstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	// S2Magic is the snappy-framing stream identifier chunk written by s2.
	S2Magic = []byte{0xff, 0x06, 0x00, 0x00, 'S', '2', 's', 'T', 'w', 'O'}
	// SnappyMagic is the stream identifier of plain snappy framing; s2
	// readers decode it too.
	SnappyMagic = []byte{0xff, 0x06, 0x00, 0x00, 's', 'N', 'a', 'P', 'p', 'Y'}
)

// detectPeek is the number of bytes Detect looks at.
const detectPeek = 10

// IsZstdSkippable reports whether b starts with a zstd skippable frame magic
// (0x184D2A50 to 0x184D2A5F little-endian).
func IsZstdSkippable(b []byte) bool {
	return len(b) >= 4 && b[0]&0xf0 == 0x50 && b[1] == 0x2a && b[2] == 0x4d && b[3] == 0x18
}

// DetectName names the codec whose magic b starts with: "zstd" for a zstd
// frame or skippable frame, "s2" for an s2 or snappy stream identifier, and
// "none" for anything else, including fewer bytes than a magic.
func DetectName(b []byte) string {
	switch {
	case bytes.HasPrefix(b, ZstdMagic), IsZstdSkippable(b):
		return NameZstd
	case bytes.HasPrefix(b, S2Magic), bytes.HasPrefix(b, SnappyMagic):
		return NameS2
	}
	return NameNone
}

// Detect reads the first bytes of r to recognise its codec and returns the
// codec (with default options) and a reader that yields all of r's bytes,
// including the ones already looked at. Bytes with no known magic mean
// "none". Only a read error other than io.EOF is returned as an error, and it
// is returned unwrapped so that it keeps naming the layer it came from.
func Detect(r io.Reader) (Codec, io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(detectPeek)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err // from the layer below, which names itself
	}
	c, err := Lookup(DetectName(head))
	if err != nil {
		return nil, nil, err
	}
	return c, br, nil
}

// NewDetectingReader returns a reader of the decompressed bytes of r, with
// the codec chosen by Detect, and the codec it chose. The caller must Close
// the reader; Close does not close r.
func NewDetectingReader(r io.Reader) (io.ReadCloser, Codec, error) {
	c, br, err := Detect(r)
	if err != nil {
		return nil, nil, err
	}
	rc, err := c.NewReader(br)
	if err != nil {
		return nil, nil, err
	}
	return rc, c, nil
}
