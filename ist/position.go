package ist

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Position is a Galera position: the cluster state (history) UUID, the last
// committed global seqno, and, when known, the MariaDB GTID stored with it
// and the node's GTID domain (wsrep_gtid_domain_id).
//
// It has two text forms:
//   - uuid:seqno[,gtid], as mariadbd --wsrep-recover prints it and
//     --wsrep_start_position takes it (String, ParsePosition);
//   - uuid:seqno[ domain], as mariabackup writes xtrabackup_galera_info and
//     donor_galera_info and as an SST script prints its final line (Line,
//     ParseGaleraInfo).
//
// It is the one position type of the project: the SST donor and joiner, the
// backup manifest (converted at its JSON boundary) and restore's grastate.dat
// all use it.
type Position struct {
	UUID  string
	Seqno int64  // -1: unknown
	GTID  string // MariaDB domain-server-seq list, may be empty
	// Domain is the GTID domain id recorded with the position; meaningful
	// only when HasDomain (the zero value means "not known").
	Domain    uint32
	HasDomain bool
}

// NoDomain is what DomainID returns for a position without a domain.
const NoDomain = -1

// DomainID is the GTID domain id, or NoDomain when it is not known (the
// form the SST wire protocol and the wsrep arguments carry).
func (p Position) DomainID() int64 {
	if !p.HasDomain {
		return NoDomain
	}
	return int64(p.Domain)
}

// WithDomain returns p with its GTID domain set to d; a negative d (or one
// outside the 32-bit range of MariaDB domain ids) clears it.
func (p Position) WithDomain(d int64) Position {
	if d < 0 || d > maxDomain {
		p.Domain, p.HasDomain = 0, false
		return p
	}
	p.Domain, p.HasDomain = uint32(d), true
	return p
}

// UUIDSeqno formats the bare uuid:seqno (the SST scripts' --gtid argument
// and grastate.dat's pair).
func (p Position) UUIDSeqno() string { return fmt.Sprintf("%s:%d", p.UUID, p.Seqno) }

// Line formats the galera-info form: "uuid:seqno domain", or "uuid:seqno"
// without a domain. It is the joiner's final line to mariadbd.
func (p Position) Line() string {
	if !p.HasDomain {
		return p.UUIDSeqno()
	}
	return fmt.Sprintf("%s %d", p.UUIDSeqno(), p.Domain)
}

// Known reports whether the position names a real history and seqno.
func (p Position) Known() bool {
	return p.Seqno >= 0 && p.UUID != "" && p.UUID != ZeroUUID
}

// String formats the position as uuid:seqno[,gtid].
func (p Position) String() string {
	s := p.UUIDSeqno()
	if p.GTID != "" {
		s += "," + p.GTID
	}
	return s
}

// ErrPosition marks a malformed position.
var ErrPosition = errors.New("galera position")

var gtidRE = regexp.MustCompile(`^[0-9]+-[0-9]+-[0-9]+(,[0-9]+-[0-9]+-[0-9]+)*$`)

// maxPosition bounds the text of one position (a UUID, a seqno and a GTID
// list of a few domains).
const maxPosition = 1024

// ParsePosition parses uuid:seqno[,gtid]. The GTID part, when present, must
// be a MariaDB GTID list (domain-server-seq, comma-separated).
func ParsePosition(s string) (Position, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxPosition {
		return Position{}, fmt.Errorf("%w: %d characters, too long", ErrPosition, len(s))
	}
	uuid, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Position{}, fmt.Errorf("%w %q: want uuid:seqno", ErrPosition, s)
	}
	if !uuidRE.MatchString(uuid) {
		return Position{}, fmt.Errorf("%w %q: bad uuid", ErrPosition, s)
	}
	seq, gtid, hasGTID := strings.Cut(rest, ",")
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil || n < -1 {
		return Position{}, fmt.Errorf("%w %q: bad seqno", ErrPosition, s)
	}
	if hasGTID && !gtidRE.MatchString(gtid) {
		return Position{}, fmt.Errorf("%w %q: bad gtid", ErrPosition, s)
	}
	return Position{UUID: strings.ToLower(uuid), Seqno: n, GTID: gtid}, nil
}

const maxDomain = 0xffffffff

// ParseGaleraInfo parses the galera-info form "uuid:seqno[ domain]": line 1
// of mariabackup's xtrabackup_galera_info and donor_galera_info, and an SST
// joiner's final line. Surrounding white space is ignored; anything else
// (a third field, a bad uuid, a seqno below -1, a domain outside 0..2^32-1)
// is an ErrPosition.
func ParseGaleraInfo(s string) (Position, error) {
	if len(s) > maxPosition {
		return Position{}, fmt.Errorf("%w: %d characters, too long", ErrPosition, len(s))
	}
	f := strings.Fields(strings.TrimSpace(s))
	if len(f) == 0 || len(f) > 2 {
		return Position{}, fmt.Errorf("%w %q is not uuid:seqno [domain]", ErrPosition, s)
	}
	u, sq, ok := strings.Cut(f[0], ":")
	if !ok || !uuidRE.MatchString(u) {
		return Position{}, fmt.Errorf("%w %q: bad uuid", ErrPosition, s)
	}
	n, err := strconv.ParseInt(sq, 10, 64)
	if err != nil || n < -1 {
		return Position{}, fmt.Errorf("%w %q: bad seqno", ErrPosition, s)
	}
	p := Position{UUID: strings.ToLower(u), Seqno: n}
	if len(f) == 2 {
		d, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || d < 0 || d > maxDomain {
			return Position{}, fmt.Errorf("%w %q: bad domain id", ErrPosition, s)
		}
		p = p.WithDomain(d)
	}
	return p, nil
}

// RecoveredMarker precedes the position in the server's error log when it
// runs with --wsrep-recover.
const RecoveredMarker = "WSREP: Recovered position: "

// ErrNoRecoveredPosition means the log has no "Recovered position" line.
var ErrNoRecoveredPosition = errors.New("no \"WSREP: Recovered position\" line in the server's log")

// ParseRecoveredPosition finds the last "WSREP: Recovered position:" line
// of a mariadbd --wsrep-recover error log and parses its position.
func ParseRecoveredPosition(log []byte) (Position, error) {
	text := string(log)
	i := strings.LastIndex(text, RecoveredMarker)
	if i < 0 {
		if strings.Contains(text, "skipping position recovery") {
			return Position{}, fmt.Errorf("%w: the server skipped position recovery (wsrep_on is off in its options)", ErrNoRecoveredPosition)
		}
		return Position{}, ErrNoRecoveredPosition
	}
	line, _, _ := strings.Cut(text[i+len(RecoveredMarker):], "\n")
	return ParsePosition(line)
}
