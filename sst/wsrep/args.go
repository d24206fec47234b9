// Package wsrep is the mysqld ⇄ SST-script contract and nothing else: the
// arguments mysqld passes to wsrep_sst_<method>, the lines it reads back,
// and the exit codes it understands (errno values).
package wsrep

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Role is the side of the state transfer this process plays.
type Role string

// Roles.
const (
	Joiner Role = "joiner"
	Donor  Role = "donor"
)

// Args are the parsed arguments of one wsrep_sst_<method> invocation.
type Args struct {
	Role                Role
	Address             string // joiner: where to listen; donor: joiner's address (auth removed)
	DataDir             string
	DefaultsFile        string
	DefaultsExtraFile   string
	DefaultsGroupSuffix string
	Parent              int  // joiner: mysqld's pid
	Progress            bool // --progress 1: total/complete lines allowed
	Binlog              string
	BinlogIndex         string
	LocalPort           int    // donor: mysqld's TCP port
	Socket              string // donor: mysqld's unix socket
	GTID                string // donor: uuid:seqno
	GTIDDomainID        int64  // donor: wsrep_gtid_domain_id (-1 when absent)
	Bypass              bool   // donor: IST, no data
	MysqldArgs          []string
	// Unknown holds options this version does not know, in order, so the
	// caller can warn about them instead of failing.
	Unknown []string
}

// Exit codes, following the errno convention mysqld applies to the
// script's exit status (see docs/sst.md). 126, 127, 143 and >= 128 are
// avoided because mysqld re-maps them.
const (
	ExitNoEnt          = 2   // ENOENT: binary or datadir missing
	ExitInterrupted    = 3   // terminated by a signal we trapped
	ExitBusy           = 16  // EBUSY: port taken
	ExitInvalid        = 22  // EINVAL: bad options or configuration
	ExitPipe           = 32  // EPIPE: transfer failed, timeout, peer or parent died
	ExitProto          = 71  // EPROTO: protocol violation by the peer
	ExitProtoNoSupport = 93  // EPROTONOSUPPORT: peer speaks another version
	ExitNotSupported   = 95  // EOPNOTSUPP: operation not supported
	ExitAlready        = 114 // EALREADY: an SST is already running on this datadir
)

// ErrUsage marks argument errors (exit ExitInvalid).
var ErrUsage = errors.New("bad arguments")

// valueOptions take one value; the rest are flags or handled specially.
var valueOptions = map[string]bool{
	"--role": true, "--address": true, "--datadir": true, "--defaults-file": true,
	"--defaults-extra-file": true, "--defaults-group-suffix": true, "--parent": true,
	"--progress": true, "--binlog": true, "--binlog-index": true, "--local-port": true,
	"--socket": true, "--gtid": true, "--gtid-domain-id": true,
	// accepted for older callers, ignored:
	"--host": true, "--port": true, "--user": true, "--password": true,
}

// Parse parses argv (without the program name). Both "--opt value" and
// "--opt=value" are accepted; "--mysqld-args" ends option parsing and the
// rest is mysqld's own argv, unchanged. Unknown options are collected in
// Args.Unknown (with their value if the next word is not an option).
func Parse(argv []string) (*Args, error) {
	a := &Args{GTIDDomainID: -1}
	for i := 0; i < len(argv); i++ {
		arg := argv[i]
		if arg == "--mysqld-args" {
			a.MysqldArgs = append([]string(nil), argv[i+1:]...)
			break
		}
		if arg == "--bypass" {
			a.Bypass = true
			continue
		}
		name, val, hasVal := strings.Cut(arg, "=")
		if !strings.HasPrefix(name, "--") {
			return nil, fmt.Errorf("%w: unexpected argument %q", ErrUsage, arg)
		}
		if !valueOptions[name] {
			a.Unknown = append(a.Unknown, arg)
			if !hasVal && i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "--") {
				i++
				a.Unknown[len(a.Unknown)-1] += " " + argv[i]
			}
			continue
		}
		if !hasVal {
			if i+1 >= len(argv) {
				return nil, fmt.Errorf("%w: %s needs a value", ErrUsage, name)
			}
			i++
			val = argv[i]
		}
		if err := a.set(name, val); err != nil {
			return nil, err
		}
	}
	return a, a.validate()
}

func (a *Args) set(name, val string) error {
	var err error
	switch name {
	case "--role":
		a.Role = Role(val)
	case "--address":
		a.Address = val
	case "--datadir":
		a.DataDir = val
	case "--defaults-file":
		a.DefaultsFile = val
	case "--defaults-extra-file":
		a.DefaultsExtraFile = val
	case "--defaults-group-suffix":
		a.DefaultsGroupSuffix = val
	case "--parent":
		a.Parent, err = strconv.Atoi(strings.Trim(val, `'"`))
	case "--progress":
		switch val {
		case "0", "":
			a.Progress = false
		case "1":
			a.Progress = true
		default:
			err = errors.New("want 0 or 1")
		}
	case "--binlog":
		a.Binlog = val
	case "--binlog-index":
		a.BinlogIndex = val
	case "--local-port":
		a.LocalPort, err = strconv.Atoi(val)
	case "--socket":
		a.Socket = val
	case "--gtid":
		a.GTID = val
	case "--gtid-domain-id":
		a.GTIDDomainID, err = strconv.ParseInt(val, 10, 64)
	}
	if err != nil {
		return fmt.Errorf("%w: %s %q: %v", ErrUsage, name, val, err)
	}
	return nil
}

func (a *Args) validate() error {
	switch a.Role {
	case "":
		// The stock common script assumes donor when --role is missing.
		a.Role = Donor
	case Joiner, Donor:
	default:
		return fmt.Errorf("%w: --role %q (want joiner or donor)", ErrUsage, a.Role)
	}
	if a.DataDir == "" {
		return fmt.Errorf("%w: --datadir is required", ErrUsage)
	}
	if a.Role == Joiner && a.Address == "" {
		return fmt.Errorf("%w: joiner needs --address", ErrUsage)
	}
	if a.Role == Donor && a.GTID != "" {
		if _, _, err := SplitPosition(a.GTID); err != nil {
			return fmt.Errorf("%w: --gtid: %v", ErrUsage, err)
		}
	}
	return nil
}

// SplitPosition splits "uuid:seqno" into its parts.
func SplitPosition(pos string) (uuid string, seqno int64, err error) {
	u, s, ok := strings.Cut(pos, ":")
	if !ok || len(u) != 36 {
		return "", 0, fmt.Errorf("position %q is not uuid:seqno", pos)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < -1 {
		return "", 0, fmt.Errorf("position %q has a bad seqno", pos)
	}
	return u, n, nil
}
