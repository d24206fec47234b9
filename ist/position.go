package ist

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Position is a Galera position: the cluster state (history) UUID, the last
// committed global seqno, and, when known, the MariaDB GTID stored with it.
// Its text form is uuid:seqno[,gtid], as mariadbd --wsrep-recover prints it
// and --wsrep_start_position takes it.
type Position struct {
	UUID  string
	Seqno int64  // -1: unknown
	GTID  string // MariaDB domain-server-seq list, may be empty
}

// Known reports whether the position names a real history and seqno.
func (p Position) Known() bool {
	return p.Seqno >= 0 && p.UUID != "" && p.UUID != ZeroUUID
}

// String formats the position as uuid:seqno[,gtid].
func (p Position) String() string {
	s := fmt.Sprintf("%s:%d", p.UUID, p.Seqno)
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
