// Package ist reads and writes Galera's saved state and positions, the
// inputs of the IST-versus-SST decision. Its Position is the project's one
// Galera position type: the SST donor and joiner, backups (the manifest
// converts to it) and restore (which writes grastate.dat with
// WriteGrastate) all use it.
package ist

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// ZeroUUID is the state UUID of a node with no (or unsafe) state.
const ZeroUUID = "00000000-0000-0000-0000-000000000000"

// Grastate is the content of grastate.dat.
type Grastate struct {
	Version         string
	UUID            string // cluster state (history) UUID
	Seqno           int64  // -1: running, crashed, or unknown
	SafeToBootstrap bool
}

// HasPosition reports whether the file carries a usable position (a clean
// shutdown with a real history UUID).
func (g Grastate) HasPosition() bool {
	return g.Seqno >= 0 && g.UUID != "" && g.UUID != ZeroUUID
}

// String formats the position as uuid:seqno.
func (g Grastate) String() string { return fmt.Sprintf("%s:%d", g.UUID, g.Seqno) }

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ErrGrastate marks a malformed grastate.dat.
var ErrGrastate = errors.New("grastate.dat")

// maxGrastate bounds how much of the file is read; Galera writes < 256 bytes.
const maxGrastate = 4096

// ParseGrastate parses grastate.dat the way Galera does: the first
// whitespace-separated token of each line is the key, '#' starts a
// comment, unknown keys are ignored. Missing keys keep their defaults
// (zero UUID, seqno -1, safe_to_bootstrap 1), but present keys must hold
// valid values.
func ParseGrastate(data []byte) (Grastate, error) {
	if len(data) > maxGrastate {
		return Grastate{}, fmt.Errorf("%w: %d bytes, more than a saved state can be", ErrGrastate, len(data))
	}
	g := Grastate{UUID: ZeroUUID, Seqno: -1, SafeToBootstrap: true}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		val := ""
		if len(f) > 1 {
			val = f[1]
		}
		switch f[0] {
		case "version:":
			g.Version = val
		case "uuid:":
			if !uuidRE.MatchString(val) {
				return Grastate{}, fmt.Errorf("%w: line %d: bad uuid %q", ErrGrastate, line, val)
			}
			g.UUID = strings.ToLower(val)
		case "seqno:":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < -1 {
				return Grastate{}, fmt.Errorf("%w: line %d: bad seqno %q", ErrGrastate, line, val)
			}
			g.Seqno = n
		case "safe_to_bootstrap:":
			switch val {
			case "0":
				g.SafeToBootstrap = false
			case "1":
				g.SafeToBootstrap = true
			default:
				return Grastate{}, fmt.Errorf("%w: line %d: bad safe_to_bootstrap %q", ErrGrastate, line, val)
			}
		}
	}
	return g, nil
}

// ReadGrastate reads and parses a grastate.dat file. Galera rewrites the
// file in place, so the file is read until two reads agree.
func ReadGrastate(path string) (Grastate, error) {
	var prev []byte
	for i := 0; i < 5; i++ {
		data, err := readBounded(path)
		if err != nil {
			return Grastate{}, err
		}
		if prev != nil && bytes.Equal(prev, data) {
			break
		}
		prev = data
	}
	g, err := ParseGrastate(prev)
	if err != nil {
		return Grastate{}, fmt.Errorf("%s: %w", path, err)
	}
	return g, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read saved state: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxGrastate+1))
	if err != nil {
		return nil, fmt.Errorf("read saved state %s: %w", path, err)
	}
	return data, nil
}
