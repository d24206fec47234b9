// Package binlog reads MariaDB binary log files natively: the file magic,
// event headers, CRC-32 checksums, and the events that carry GTID state.
package binlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Magic starts every binlog file.
var Magic = []byte{0xfe, 'b', 'i', 'n'}

// Event types this package interprets.
const (
	TypeQuery                    = 2
	TypeStop                     = 3
	TypeRotate                   = 4
	TypeXid                      = 16
	TypeXAPrepare                = 38 // ends the group of an XA PREPARE
	TypeFormatDescription        = 15
	TypeBinlogCheckpoint         = 161
	TypeGtid                     = 162
	TypeGtidList                 = 163
	headerLen                    = 19
	maxEventSize                 = 1 << 30
	flagBinlogInUse       uint16 = 0x0001
)

// ErrFormat marks malformed binlog data.
var ErrFormat = errors.New("binlog: malformed")

// cutError marks a file that ends inside an event (still ErrFormat).
type cutError struct{ err error }

func (e *cutError) Error() string { return e.err.Error() }
func (e *cutError) Unwrap() error { return e.err }

// GTID is one MariaDB global transaction id.
type GTID struct {
	Domain, Server uint32
	Seq            uint64
}

func (g GTID) String() string { return fmt.Sprintf("%d-%d-%d", g.Domain, g.Server, g.Seq) }

// MarshalText writes "domain-server-seq" (JSON indexes stay readable).
func (g GTID) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

// UnmarshalText parses "domain-server-seq".
func (g *GTID) UnmarshalText(b []byte) error {
	v, err := ParseGTID(string(b))
	if err != nil {
		return err
	}
	*g = v
	return nil
}

// Event is one event with its header fields and body (without checksum).
type Event struct {
	Offset    int64
	Timestamp uint32
	Type      byte
	ServerID  uint32
	Size      uint32
	NextPos   uint32
	Flags     uint16
	Body      []byte
}

// Reader iterates over the events of one binlog file.
type Reader struct {
	r        io.Reader
	off      int64
	checksum bool // CRC32 checksums, from the Format_description event
	seenFDE  bool
	buf      []byte
	hdr      [headerLen]byte // the header of the event being read
}

// NewReader checks the file magic and returns a Reader.
func NewReader(r io.Reader) (*Reader, error) {
	var m [4]byte
	if _, err := io.ReadFull(r, m[:]); err != nil {
		return nil, fmt.Errorf("%w: file magic: %v", ErrFormat, err)
	}
	if string(m[:]) != string(Magic) {
		return nil, fmt.Errorf("%w: bad file magic % x", ErrFormat, m)
	}
	return &Reader{r: r, off: 4}, nil
}

// Next returns the next event, io.EOF at a clean end of file. The event's
// Body is valid until the next call.
func (r *Reader) Next() (*Event, error) {
	e, err := r.header()
	if err != nil {
		return nil, err
	}
	buf, err := r.readEvent(e)
	if err != nil {
		return nil, err
	}
	body := buf[headerLen:]
	if !r.seenFDE && e.Type != TypeFormatDescription {
		return nil, fmt.Errorf("%w: offset %d: first event has type %d, not Format_description", ErrFormat, r.off, e.Type)
	}
	if e.Type == TypeFormatDescription && !r.seenFDE {
		r.seenFDE = true
		if body, err = r.checksumAlgorithm(body); err != nil {
			return nil, err
		}
	}
	if r.checksum {
		if body, err = r.verifyChecksum(e, buf, body); err != nil {
			return nil, err
		}
	}
	e.Body = body
	r.off += int64(e.Size)
	return e, nil
}

// header reads and checks one event header.
func (r *Reader) header() (*Event, error) {
	var h [headerLen]byte
	n, err := io.ReadFull(r.r, h[:])
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, &cutError{fmt.Errorf("%w: offset %d: event header cut short after %d bytes", ErrFormat, r.off, n)}
	}
	e := &Event{
		Offset:    r.off,
		Timestamp: binary.LittleEndian.Uint32(h[0:]),
		Type:      h[4],
		ServerID:  binary.LittleEndian.Uint32(h[5:]),
		Size:      binary.LittleEndian.Uint32(h[9:]),
		NextPos:   binary.LittleEndian.Uint32(h[13:]),
		Flags:     binary.LittleEndian.Uint16(h[17:]),
	}
	if e.Size < headerLen || e.Size > maxEventSize {
		return nil, fmt.Errorf("%w: offset %d: event size %d", ErrFormat, r.off, e.Size)
	}
	r.hdr = h
	return e, nil
}

// readEvent returns the whole event (header and body) in r's buffer. The
// buffer grows with the bytes that actually arrive, never to a size a
// (damaged) header claims: a cut or corrupt file cannot make the reader
// allocate up to maxEventSize.
func (r *Reader) readEvent(e *Event) ([]byte, error) {
	need := int(e.Size)
	buf := append(r.buf[:0], r.hdr[:]...)
	for len(buf) < need {
		n := min(need-len(buf), max(len(buf), 64<<10))
		buf = slices.Grow(buf, n)
		m, err := io.ReadFull(r.r, buf[len(buf):len(buf)+n])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, &cutError{fmt.Errorf("%w: offset %d: event of %d bytes cut short", ErrFormat, r.off, e.Size)}
		}
	}
	r.buf = buf
	return buf, nil
}

// checksumAlgorithm reads the first Format_description's checksum
// algorithm: servers since 5.6.1 (all MariaDB 10.x) put its byte just
// before the 4-byte checksum field of the FDE.
func (r *Reader) checksumAlgorithm(body []byte) ([]byte, error) {
	if len(body) < 5 {
		return nil, fmt.Errorf("%w: offset %d: Format_description event too short", ErrFormat, r.off)
	}
	switch alg := body[len(body)-5]; alg {
	case 0:
		r.checksum = false
		return body[:len(body)-4], nil
	case 1:
		r.checksum = true
		return body, nil
	default:
		return nil, fmt.Errorf("%w: offset %d: unknown checksum algorithm %d", ErrFormat, r.off, alg)
	}
}

// verifyChecksum checks the event's CRC32 and returns body without it.
func (r *Reader) verifyChecksum(e *Event, buf, body []byte) ([]byte, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("%w: offset %d: event too short for its checksum", ErrFormat, r.off)
	}
	want := binary.LittleEndian.Uint32(body[len(body)-4:])
	check := buf[:len(buf)-4]
	var got uint32
	if e.Type == TypeFormatDescription && e.Flags&flagBinlogInUse != 0 {
		// The in-use flag is set after the CRC was computed.
		tmp := append([]byte(nil), check...)
		tmp[17] &^= byte(flagBinlogInUse)
		got = crc32.ChecksumIEEE(tmp)
	} else {
		got = crc32.ChecksumIEEE(check)
	}
	if got != want {
		return nil, fmt.Errorf("%w: offset %d: event type %d checksum %08x, computed %08x", ErrFormat, r.off, e.Type, want, got)
	}
	return body[:len(body)-4], nil
}

// ParseGtidList decodes a Gtid_list event body.
func ParseGtidList(body []byte) ([]GTID, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("%w: Gtid_list body of %d bytes", ErrFormat, len(body))
	}
	count := binary.LittleEndian.Uint32(body) & (1<<28 - 1)
	if uint64(len(body)-4) < uint64(count)*16 {
		return nil, fmt.Errorf("%w: Gtid_list says %d GTIDs in %d bytes", ErrFormat, count, len(body))
	}
	out := make([]GTID, count)
	for i := range out {
		p := body[4+16*i:]
		out[i] = GTID{Domain: binary.LittleEndian.Uint32(p), Server: binary.LittleEndian.Uint32(p[4:]), Seq: binary.LittleEndian.Uint64(p[8:])}
	}
	return out, nil
}

// FirstGtidList returns the GTID list at the start of a binlog file: the
// binlog state when the file was opened.
func FirstGtidList(r io.Reader) ([]GTID, error) {
	br, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	for i := 0; i < 16; i++ {
		e, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if e.Type == TypeGtidList {
			return ParseGtidList(e.Body)
		}
	}
	return nil, fmt.Errorf("%w: no Gtid_list event near the start of the file", ErrFormat)
}

// Position turns a binlog state (one entry per domain and server) into a
// GTID position: per domain, the entry listed last (MariaDB lists the most
// recent last), domains in first-seen order, formatted "d-s-n,...".
func Position(state []GTID) string {
	last := map[uint32]GTID{}
	var order []uint32
	for _, g := range state {
		if _, ok := last[g.Domain]; !ok {
			order = append(order, g.Domain)
		}
		last[g.Domain] = g
	}
	parts := make([]string, len(order))
	for i, d := range order {
		parts[i] = last[d].String()
	}
	return strings.Join(parts, ",")
}

// ParseGTID parses "domain-server-seq".
func ParseGTID(s string) (GTID, error) {
	p := strings.Split(strings.TrimSpace(s), "-")
	if len(p) != 3 {
		return GTID{}, fmt.Errorf("GTID %q is not domain-server-seq", s)
	}
	d, err1 := strconv.ParseUint(p[0], 10, 32)
	sv, err2 := strconv.ParseUint(p[1], 10, 32)
	n, err3 := strconv.ParseUint(p[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return GTID{}, fmt.Errorf("GTID %q is not domain-server-seq", s)
	}
	return GTID{Domain: uint32(d), Server: uint32(sv), Seq: n}, nil
}
