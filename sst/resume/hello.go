// Package resume carries one SST's two byte streams (donor → joiner data,
// joiner → donor reply) over a sequence of connections, so that a
// connection that breaks mid-transfer can be replaced and the streams go
// on from the last byte the peer holds. It knows nothing of TLS, secrets or
// MariaDB: the caller authenticates every connection before handing it
// over (docs/sst.md, "Resuming after a network blip").
//
// On each connection both sides first exchange a Hello (session id and
// the offset of the peer's stream they hold); then both directions carry
// records: data (the next bytes of the sender's stream), ack (the offset
// of the peer's stream the sender holds) and bye (the sender's stream
// ends). The sender keeps every byte the peer has not acknowledged in a
// bounded spool (memory, then a file) and replays it after a reconnect.
package resume

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// Protocol constants.
const (
	Magic   = "GSSTRESM"
	Version = 1
	// IDLen is the length of a session id.
	IDLen = 16
	// HelloLen is the length of an encoded Hello.
	HelloLen = len(Magic) + 1 + IDLen + 8 + 4
	// MaxRecord is the largest data record payload either side accepts.
	MaxRecord = 1 << 20
	// maxOffset bounds stream offsets (2^62 bytes: no SST comes close), so
	// that offset arithmetic never overflows on hostile input.
	maxOffset = 1 << 62
)

// Record types.
const (
	recData byte = 0x01 // u32 length, payload
	recAck  byte = 0x02 // u64 offset
	recBye  byte = 0x03 // u8 reason
)

// Reasons carried by a bye record.
const (
	byeDone    byte = 0 // the sender's stream is complete
	byeAborted byte = 1 // the sender stopped on an error
	byeRefused byte = 2 // the sender refused this connection's Hello
)

// ID identifies one session; the donor picks it at random for each SST.
type ID [IDLen]byte

// Hello opens every connection of a session, in both directions.
type Hello struct {
	Version byte
	ID      ID
	// Offset is how much of the receiver's stream the sender holds: the
	// receiver resumes sending from there.
	Offset int64
	// AckEvery asks the receiver to acknowledge the sender's stream at
	// least every this many bytes (1 to 1<<30).
	AckEvery int64
}

// Errors, to be tested with errors.Is.
var (
	// ErrMalformed: a Hello or record that does not parse.
	ErrMalformed = errors.New("resume: malformed message")
	// ErrVersion: the peer speaks another resume protocol version.
	ErrVersion = errors.New("resume: unsupported protocol version")
	// ErrSession: a connection for another session; it is refused and
	// the session keeps waiting for its own peer.
	ErrSession = errors.New("resume: connection belongs to another session")
	// ErrOffset: the peer asked to resume from an offset this side
	// cannot serve without a gap or a duplicate.
	ErrOffset = errors.New("resume refused")
	// ErrProtocol: the peer broke the record protocol.
	ErrProtocol = errors.New("resume: protocol violation")
	// ErrSpoolFull: more unacknowledged data than the spool may hold.
	ErrSpoolFull = errors.New("resume spool full")
	// ErrWindow: no connection was re-established within the window.
	ErrWindow = errors.New("connection lost and not re-established within the resume window")
	// ErrPeerAborted: the peer stopped the session on an error.
	ErrPeerAborted = errors.New("resume: peer stopped the transfer")
	// ErrPeerClosed: the peer ended the session; nothing more can be sent.
	ErrPeerClosed = errors.New("resume: peer closed the session")
	// ErrClosed: the session was closed or aborted by this side.
	ErrClosed = errors.New("resume: session closed")
)

// AppendHello appends h's encoding to dst.
func AppendHello(dst []byte, h Hello) []byte {
	dst = append(dst, Magic...)
	dst = append(dst, h.Version)
	dst = append(dst, h.ID[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Offset))
	return binary.BigEndian.AppendUint32(dst, uint32(h.AckEvery))
}

// ParseHello decodes a Hello from exactly HelloLen bytes of untrusted
// input. It checks the layout, the version and the value ranges; whether
// the session and offset fit is the session's decision.
func ParseHello(b []byte) (Hello, error) {
	var h Hello
	if len(b) != HelloLen {
		return h, fmt.Errorf("%w: hello of %d bytes, want %d", ErrMalformed, len(b), HelloLen)
	}
	if string(b[:len(Magic)]) != Magic {
		return h, fmt.Errorf("%w: hello does not start with %q", ErrMalformed, Magic)
	}
	b = b[len(Magic):]
	h.Version = b[0]
	if h.Version != Version {
		return h, fmt.Errorf("%w %d (this build speaks %d)", ErrVersion, h.Version, Version)
	}
	copy(h.ID[:], b[1:1+IDLen])
	b = b[1+IDLen:]
	off := binary.BigEndian.Uint64(b)
	if off > maxOffset {
		return h, fmt.Errorf("%w: hello offset %d out of range", ErrMalformed, off)
	}
	h.Offset = int64(off)
	h.AckEvery = int64(binary.BigEndian.Uint32(b[8:]))
	if h.AckEvery < 1 || h.AckEvery > 1<<30 {
		return h, fmt.Errorf("%w: hello ack interval %d out of range", ErrMalformed, h.AckEvery)
	}
	return h, nil
}

// sameID compares session ids in constant time.
func sameID(a, b ID) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }
