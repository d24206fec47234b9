package sst

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/gosst/gosst/stream/wire"
)

// Protocol identity announced in the joiner's ready line:
//
//	ready [gosst:<secret>@]<host>:<port>/gosst/<ProtoVersion>
//	ready [gosst:<secret>@]<host>:<port>/gosst/<PinnedVersion>/<pin>
//
// The second form is the zero-configuration encryption (ephemeral.go):
// the joiner serves TLS 1.3 with a certificate made for this SST, whose
// pin (base64url SHA-256 of its public key) the donor must see. It has
// its own address version so that a donor that predates it refuses the
// address (exit 93, nothing sent) instead of connecting in cleartext.
// The wire protocol and the Control message are the same in both forms.
const (
	ProtoName     = "gosst"
	ProtoVersion  = 1
	PinnedVersion = 2
	DefaultPort   = 4444
)

// On one TCP (or TLS) connection the donor sends two wire streams (package
// stream/wire) and the joiner answers with one:
//
//  1. donor → joiner: a "none" stream whose hello token is the joiner's
//     one-time secret and whose data is a JSON Control message;
//  2. donor → joiner, for a full SST only: the mariabackup xbstream,
//     compressed with the codec named in its hello;
//  3. joiner → donor: a "none" stream with a JSON Reply, sent after the
//     IST marker was taken (IST) or after the data was received, verified
//     and fsynced (SST). The donor prints "done" only after an OK reply.
//
// The joiner believes nothing in stream 1 before its hello token matched
// the one-time secret (accept.go): a peer without it is only dropped.
//
// Every stream ends in an end frame with the byte count and a checksum
// (SHA-256; CRC-32C for the data stream, see wire.FlagCRC32C), so a cut or
// corrupted transfer is never mistaken for a complete one.

// Control is the donor's first message.
type Control struct {
	Proto    int    `json:"proto"`
	Kind     string `json:"kind"`     // KindIST or KindSST
	Position string `json:"position"` // uuid:seqno (the donor's --gtid)
	Domain   int64  `json:"domain"`   // --gtid-domain-id, -1 if unknown
	Total    int64  `json:"total,omitempty"`
	Codec    string `json:"codec,omitempty"`
	// Session, on a full SST to a joiner that offers resumption, is the
	// resume session id (hex): the connection then carries the
	// sst/resume session protocol, and a reconnect (KindResume) must
	// name the same id.
	Session string `json:"session,omitempty"`
}

// Control kinds.
const (
	KindIST    = "ist"
	KindSST    = "sst"
	KindResume = "resume" // a donor's reconnect into its session
)

// ResumeCap is the ready-address path element by which a joiner offers
// resumption (docs/sst.md, "Resuming after a network blip"). Donors that
// predate it ignore path elements after the ones they know.
const ResumeCap = "r1"

// ZstdBlocksCap is the ready-address path element by which a joiner says
// it decodes zstd block frames (wire.FlagZstdBlocks), so that
// compression=auto may send them. Donors that predate it ignore it; a
// joiner that predates it does not offer it and gets S2 blocks only (it
// would refuse the flag).
const ZstdBlocksCap = "z1"

// OffersResume says whether the joiner's ready address (with or without
// the auth part) offers resumption: a path element ResumeCap after
// gosst/<version>.
func OffersResume(addr string) bool { return offersCap(addr, ResumeCap) }

// OffersZstdBlocks says whether the joiner's ready address offers zstd
// block frames: a path element ZstdBlocksCap after gosst/<version>.
func OffersZstdBlocks(addr string) bool { return offersCap(addr, ZstdBlocksCap) }

// offersCap says whether a path element after gosst/<version> of the
// ready address is capability.
func offersCap(addr, capability string) bool {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		addr = addr[i+1:]
	}
	_, path, _ := strings.Cut(addr, "/")
	parts := strings.Split(path, "/")
	if len(parts) < 3 || parts[0] != ProtoName {
		return false
	}
	for _, p := range parts[2:] {
		if p == capability {
			return true
		}
	}
	return false
}

// Reply is the joiner's answer.
type Reply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Bytes int64  `json:"bytes,omitempty"`
}

const maxMessage = 64 << 10

// sendMessage writes v as one "none" wire stream.
func sendMessage(w io.Writer, token []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	fw, err := wire.NewFrameWriter(w, wire.WriterOptions{Codec: "none", Token: token})
	if err != nil {
		return err
	}
	if _, err := fw.Write(b); err != nil {
		return err
	}
	return fw.Close()
}

// readMessage reads one wire stream holding a JSON message into v. A
// non-nil token must match the stream's hello token.
func readMessage(r io.Reader, token []byte, v any) error {
	fr, err := wire.NewFrameReader(r, wire.ReaderOptions{Token: token})
	if err != nil {
		return err
	}
	return decodeMessage(fr, v)
}

// decodeMessage reads the rest of a message stream whose hello was read
// into v: at most maxMessage bytes of JSON.
func decodeMessage(fr *wire.FrameReader, v any) error {
	b, err := io.ReadAll(io.LimitReader(fr, maxMessage+1))
	if err != nil {
		return err
	}
	if len(b) > maxMessage {
		return fmt.Errorf("%w: control message larger than %d bytes", wire.ErrMalformed, maxMessage)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: control message: %v", wire.ErrMalformed, err)
	}
	return nil
}

// ParseListenAddress splits the joiner's --address (host, host:port,
// [v6] or [v6]:port, no path) into host and port (default 4444).
func ParseListenAddress(addr string) (host string, port int, err error) {
	addr, _, _ = strings.Cut(addr, "/")
	if strings.HasPrefix(addr, "[") {
		end := strings.IndexByte(addr, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("address %q: missing ']'", addr)
		}
		host, rest := addr[1:end], addr[end+1:]
		if rest == "" {
			return host, DefaultPort, nil
		}
		if !strings.HasPrefix(rest, ":") {
			return "", 0, fmt.Errorf("address %q: junk after ']'", addr)
		}
		p, err := parsePort(rest[1:])
		if err != nil {
			return "", 0, err
		}
		return host, p, nil
	}
	h, p, ok := strings.Cut(addr, ":")
	if !ok {
		if h == "" {
			return "", 0, errors.New("empty address")
		}
		return h, DefaultPort, nil
	}
	if strings.Contains(p, ":") {
		return "", 0, fmt.Errorf("address %q: IPv6 hosts must be in brackets", addr)
	}
	port, err = parsePort(p)
	if err != nil {
		return "", 0, err
	}
	return h, port, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return p, nil
}

// readyAddrChars is what the donor-side mysqld accepts in the address part
// of a request ("Bad SST address string" otherwise).
var readyAddrChars = regexp.MustCompile(`^[A-Za-z0-9._:\[\]/-]+$`)

// ReadyAddress is the address part of the joiner's ready line. secret, if
// not empty, is announced as the one-time "gosst:<secret>@" prefix; pin,
// if not nil, is the ephemeral certificate's pin (the /gosst/2/<pin> form).
func ReadyAddress(host string, port int, secret string, pin []byte) (string, error) {
	hp := net.JoinHostPort(host, strconv.Itoa(port))
	addr := fmt.Sprintf("%s/%s/%d", hp, ProtoName, ProtoVersion)
	if pin != nil {
		addr = fmt.Sprintf("%s/%s/%d/%s", hp, ProtoName, PinnedVersion, FormatPin(pin))
	}
	if !readyAddrChars.MatchString(addr) {
		return "", fmt.Errorf("address %q has characters the donor's mysqld refuses (allowed: A-Z a-z 0-9 . _ : [ ] / -)", addr)
	}
	if secret != "" {
		addr = ProtoName + ":" + secret + "@" + addr
	}
	return addr, nil
}

// ErrProtoVersion means the joiner speaks a protocol this donor does not.
var ErrProtoVersion = errors.New("unsupported gosst protocol version")

// ParseDonorAddress parses the donor's --address, the joiner's ready
// address without the auth part: host:port[/gosst/<version>[/...]]. A
// missing path (garbd) means version 1 and a missing port 4444.
func ParseDonorAddress(addr string) (hostport string, err error) {
	hostport, _, err = ParseDonorTarget(addr)
	return hostport, err
}

// ParseDonorTarget is ParseDonorAddress that also returns the pin of a
// /gosst/2/<pin> address (nil for version 1).
func ParseDonorTarget(addr string) (hostport string, pin []byte, err error) {
	if addr == "" {
		return "", nil, errors.New("empty --address (a garbd request needs host:port/gosst/1)")
	}
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		addr = addr[i+1:]
	}
	hp, path, _ := strings.Cut(addr, "/")
	if path != "" {
		parts := strings.Split(path, "/")
		if parts[0] != ProtoName {
			return "", nil, fmt.Errorf("%w: address %q is for module %q, not %q (is the joiner running wsrep_sst_gosst?)", ErrProtoVersion, addr, parts[0], ProtoName)
		}
		v := ""
		if len(parts) > 1 {
			v = parts[1]
		}
		switch v {
		case strconv.Itoa(ProtoVersion):
		case strconv.Itoa(PinnedVersion):
			if len(parts) < 3 {
				return "", nil, fmt.Errorf("%w: address %q has version %d but no certificate fingerprint", ErrProtoVersion, addr, PinnedVersion)
			}
			if pin, err = ParsePin(parts[2]); err != nil {
				return "", nil, fmt.Errorf("address %q: %w", addr, err)
			}
		default:
			return "", nil, fmt.Errorf("%w %q (this donor speaks %d and %d; upgrade the older node)", ErrProtoVersion, v, ProtoVersion, PinnedVersion)
		}
	}
	host, port, err := ParseListenAddress(hp)
	if err != nil {
		return "", nil, err
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), pin, nil
}
