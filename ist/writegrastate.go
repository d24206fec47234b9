package ist

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gosst/gosst/internal/fsutil"
)

// SetSafeToBootstrap returns grastate.dat text with safe_to_bootstrap set,
// every other line kept byte for byte (Galera's own layout, comments and
// any keys a later Galera adds). A file without the key gets it appended.
// The result is checked by parsing it again.
func SetSafeToBootstrap(data []byte, safe bool) ([]byte, error) {
	if _, err := ParseGrastate(data); err != nil {
		return nil, err
	}
	val := "0"
	if safe {
		val = "1"
	}
	// Galera pads an in-place rewrite with spaces; such padding is dropped.
	lines := strings.Split(strings.TrimRight(string(data), " \n\x00"), "\n")
	found := false
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "safe_to_bootstrap:" {
			lines[i] = "safe_to_bootstrap: " + val
			found = true
		}
	}
	if !found {
		lines = append(lines, "safe_to_bootstrap: "+val)
	}
	out := []byte(strings.Join(lines, "\n") + "\n")
	g, err := ParseGrastate(out)
	if err != nil || g.SafeToBootstrap != safe {
		return nil, fmt.Errorf("%w: rewriting safe_to_bootstrap failed (%v)", ErrGrastate, err)
	}
	return out, nil
}

// FormatGrastate returns grastate.dat text for position p, in Galera's
// own layout (version 2.1). It refuses a position that names no real
// history (zero or malformed UUID, seqno -1), since such a file would
// make the node discard its data by a full SST or fail to start; and
// the result is checked by parsing it again, so nothing the position
// carries can add lines (such as safe_to_bootstrap) to the file.
func FormatGrastate(p Position, safeToBootstrap bool) ([]byte, error) {
	if !uuidRE.MatchString(p.UUID) || !p.Known() {
		return nil, fmt.Errorf("%w: position %q names no Galera history (want uuid:seqno with a non-zero uuid and seqno >= 0)", ErrGrastate, p.UUIDSeqno())
	}
	safe := "0"
	if safeToBootstrap {
		safe = "1"
	}
	out := []byte(fmt.Sprintf("# GALERA saved state\nversion: 2.1\nuuid:    %s\nseqno:   %d\nsafe_to_bootstrap: %s\n", strings.ToLower(p.UUID), p.Seqno, safe))
	g, err := ParseGrastate(out)
	if err != nil || g.UUID != strings.ToLower(p.UUID) || g.Seqno != p.Seqno || g.SafeToBootstrap != safeToBootstrap {
		return nil, fmt.Errorf("%w: formatting position %s failed (%v)", ErrGrastate, p.UUIDSeqno(), err)
	}
	return out, nil
}

// WriteGrastate writes datadir/grastate.dat for position p with
// fsutil.WriteFileDurable: after a crash the file is either absent (or the old
// one) or complete, never torn.
func WriteGrastate(datadir string, p Position, safeToBootstrap bool) error {
	data, err := FormatGrastate(p, safeToBootstrap)
	if err != nil {
		return err
	}
	return fsutil.WriteFileDurable(filepath.Join(datadir, "grastate.dat"), data, 0o660)
}
