package pitr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/internal/failpoint"
	"github.com/gosst/gosst/internal/fsutil"
)

// MarkerFile is written into the datadir a point-in-time restore made
// (and rewritten by each restore --continue): it records how far the
// datadir was replayed, so that a later --continue replays only what
// follows.
const MarkerFile = ".gosst-pitr.json"

// Marker states.
const (
	// MarkerDone: the datadir is exactly the result of the replay the
	// marker describes.
	MarkerDone = "done"
	// MarkerContinuing: a --continue was replaying into the datadir and
	// did not finish; the datadir holds an unknown part of that replay.
	MarkerContinuing = "continuing"
)

// markerVersion is the marker format's version.
const markerVersion = 1

// maxMarkerSize bounds what is read of a marker file.
const maxMarkerSize = 64 << 10

// Marker is the content of MarkerFile.
type Marker struct {
	Version int    `json:"version"`
	State   string `json:"state"`
	// BackupID is the backup the first restore started from.
	BackupID string `json:"backup"`
	// Lineage and Domain identify the archive (the cluster's history UUID
	// and its wsrep GTID domain).
	Lineage string `json:"lineage"`
	Domain  uint32 `json:"domain"`
	// Reached is the sequence number in Domain of the last transaction
	// applied: everything up to and including it, nothing after it.
	Reached uint64 `json:"reached_seq"`
	// Target is the last target asked for, as the operator gave it
	// ("before GTID 7-11-4711" or "before 2026-11-26T14:03:27Z");
	// TargetTime is set when it was a time.
	Target     string    `json:"target"`
	TargetTime time.Time `json:"target_time,omitzero"`
	// LastCommit is the commit time of the last transaction applied (the
	// backup's end time when none was).
	LastCommit time.Time `json:"last_commit,omitzero"`
	// Position is where the replay stopped in the archive (node, file,
	// offset): for the operator; --continue resumes by GTID.
	Position string `json:"archive_position,omitempty"`
	Replay   string `json:"replay"`
	// ContinuingTo is the target of the --continue under way (state
	// continuing).
	ContinuingTo string `json:"continuing_to,omitempty"`
	// Fingerprint identifies the datadir's files as the replay left them
	// (see Fingerprint).
	Fingerprint string    `json:"fingerprint"`
	Written     time.Time `json:"written"`
}

// ParseMarker reads a marker and checks that it is complete.
func ParseMarker(data []byte) (*Marker, error) {
	if len(data) > maxMarkerSize {
		return nil, fmt.Errorf("%d bytes: not a marker (at most %d)", len(data), maxMarkerSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Marker
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a marker: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("not a marker: data after the JSON object")
	}
	switch {
	case m.Version != markerVersion:
		return nil, fmt.Errorf("marker version %d: this galera-backup reads version %d", m.Version, markerVersion)
	case m.State != MarkerDone && m.State != MarkerContinuing:
		return nil, fmt.Errorf("marker state %q: want %s or %s", m.State, MarkerDone, MarkerContinuing)
	case m.Lineage == "" || m.BackupID == "":
		return nil, errors.New("marker names no lineage or backup")
	case m.Replay != ReplayApplier && m.Replay != ReplayClient:
		return nil, fmt.Errorf("marker replay mode %q: want %s or %s", m.Replay, ReplayApplier, ReplayClient)
	case !validFingerprint(m.Fingerprint):
		return nil, fmt.Errorf("marker fingerprint %q is not sha256:<64 hex digits>", m.Fingerprint)
	}
	return &m, nil
}

func validFingerprint(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// Fingerprint hashes the name, type, size and modification time (ns) of
// every file under dir except the marker itself (and a mount point's
// lost+found and a restore's staging directory inside it). A server started on the
// datadir changes it whatever it does: mariadbd creates or rewrites
// files (ddl_recovery.log, aria_log_control, the InnoDB log's checkpoint
// at shutdown, ib_buffer_pool), which changes their modification times;
// a write to any table changes its files. Moving, renaming or chowning the
// directory does not (renames keep modification times; chown changes only
// the change time). Reading contents would cost as much as a restore on a
// large datadir; the metadata costs one stat per file.
func Fingerprint(dir string) (string, error) {
	var lines []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if rel == MarkerFile || strings.HasPrefix(rel, "."+MarkerFile+".gosst-") {
			return nil // the marker and its temporary copies
		}
		if d.IsDir() && (rel == "lost+found" || strings.HasPrefix(rel, ".gosst-restore-")) {
			// A target that is a mount point keeps its lost+found, and a
			// restore into it stages inside it: neither is the datadir
			// the replay left (the fingerprint is taken before the swap).
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			lines = append(lines, fmt.Sprintf("d %q", rel))
			return nil
		}
		lines = append(lines, fmt.Sprintf("%s %q %d %d", fi.Mode().Type(), rel, fi.Size(), fi.ModTime().UnixNano()))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("fingerprint %s: %w", dir, err)
	}
	sort.Strings(lines)
	h := sha256.New()
	io.WriteString(h, "gosst-pitr-fingerprint-v1\n")
	for _, l := range lines {
		io.WriteString(h, l+"\n")
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// writeMarker fingerprints datadir and writes m into it durably (a
// temporary file, fsync, rename, fsync of the directory).
func writeMarker(datadir string, m *Marker) error {
	if m.State == MarkerDone {
		fp, err := Fingerprint(datadir)
		if err != nil {
			return err
		}
		m.Fingerprint = fp
	}
	m.Version, m.Written = markerVersion, time.Now().UTC()
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileDurable(filepath.Join(datadir, MarkerFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("record the point-in-time state in %s: %w", datadir, err)
	}
	return nil
}

// ReadMarker reads dir's marker. A missing one is an error saying dir is
// not a point-in-time restore result.
func ReadMarker(dir string) (*Marker, error) {
	f, err := os.Open(filepath.Join(dir, MarkerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is not a gosst PITR result (it has no %s): --continue only extends a directory that restore --pitr/--pitr-gtid made; restore again without --continue", dir, MarkerFile)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMarkerSize+1))
	if err != nil {
		return nil, err
	}
	m, err := ParseMarker(data)
	if err != nil {
		return nil, fmt.Errorf("%s is not a usable gosst PITR result: %s: %w; restore again without --continue", dir, MarkerFile, err)
	}
	return m, nil
}

// reachedDesc describes what a marker's datadir holds.
func (m *Marker) reachedDesc() string {
	s := fmt.Sprintf("the restore %s (last applied transaction %d-*-%d", m.Target, m.Domain, m.Reached)
	if !m.LastCommit.IsZero() {
		s += ", committed " + m.LastCommit.UTC().Format(time.RFC3339)
	}
	return s + ")"
}

// newMarker is the marker of a finished replay.
func newMarker(backupID string, w *Window, o PITROptions, res *PITRResult, prev time.Time) *Marker {
	m := &Marker{State: MarkerDone, BackupID: backupID, Lineage: w.Lineage, Domain: w.Domain, Reached: res.reached,
		Target: describeTarget(o), Position: res.position, Replay: o.Replay, LastCommit: prev}
	if o.GTID == nil {
		m.TargetTime = o.Time.UTC()
	}
	if res.Transactions > 0 {
		m.LastCommit = res.LastCommit.UTC()
	}
	return m
}

// Continue replays into dir, the result of a point-in-time restore (or of
// an earlier Continue), the archived transactions after the ones it holds
// up to the new target, which must be later. dir's marker is checked
// first: a directory without one, or whose files changed since (a server
// was started on it), is refused. The replay happens in place: before it
// starts, the marker is durably set to "continuing", so that an
// interrupted Continue leaves a directory that is refused by the next one,
// with the reason, and never extended from a wrong point. After the
// replay, the marker records the new point.
func Continue(ctx context.Context, a *Archive, o PITROptions) (*PITRResult, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.TargetDir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("--continue %s: %w", o.TargetDir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("--continue %s: not a directory", o.TargetDir)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	m, err := ReadMarker(dir)
	if err != nil {
		return nil, err
	}
	if m.State == MarkerContinuing {
		return nil, fmt.Errorf("%s: a --continue from %s to %s did not finish: the directory holds part of that replay; restore again without --continue",
			dir, m.reachedDesc(), m.ContinuingTo)
	}
	fp, err := Fingerprint(dir)
	if err != nil {
		return nil, err
	}
	if fp != m.Fingerprint {
		return nil, fmt.Errorf("%s was started as a server (or its files changed) after %s: it is no longer exactly that result; restore again without --continue", dir, m.reachedDesc())
	}
	if err := forward(m, o); err != nil {
		return nil, err
	}
	w, err := a.continueWindow(ctx, m, o)
	if err != nil {
		return nil, err
	}
	res := &PITRResult{BackupID: m.BackupID, Window: *w}
	o.Logger.Info("continuing a point-in-time restore", "dir", dir, "from", m.Target, "reached_seq", m.Reached, "target", describeTarget(o))

	scratch, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".gosst-continue-")
	if err != nil {
		return nil, fmt.Errorf("scratch directory next to %s: %w", dir, err)
	}
	defer os.RemoveAll(scratch)
	binlogs := filepath.Join(scratch, "binlogs")
	if err := os.Mkdir(binlogs, 0o700); err != nil {
		return nil, err
	}
	// No backup coordinates: the replay starts at the transaction after
	// the one reached, found by its GTID.
	steps, err := plan(ctx, a, w, &backup.Manifest{}, m.Reached, o, binlogs, res)
	if err != nil {
		return nil, err
	}
	prev := *m
	m.State, m.ContinuingTo = MarkerContinuing, describeTarget(o)
	if err := writeMarker(dir, m); err != nil {
		return nil, err
	}
	failpoint.Hit("continue-marked")
	if len(steps) > 0 {
		if err := replayInto(ctx, dir, scratch, steps, o, res); err != nil {
			return nil, fmt.Errorf("replay binlogs into %s (it is now marked as an unfinished --continue and is refused by the next one; restore again): %w", dir, err)
		}
	} else {
		o.Logger.Info("nothing to replay: no archived transaction before the new target")
	}
	if res.position == "" {
		res.position = prev.Position
	}
	nm := newMarker(prev.BackupID, w, o, res, prev.LastCommit)
	if err := writeMarker(dir, nm); err != nil {
		return nil, err
	}
	return res, nil
}

// lockDir takes an exclusive flock on dir for the duration of one
// --continue: a second one on the same directory is refused instead of
// replaying into it at the same time. The kernel drops the lock when the
// process dies.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: another --continue is running on it", dir)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// forward refuses a target that is not after what m's datadir holds.
func forward(m *Marker, o PITROptions) error {
	back := func(why string) error {
		return fmt.Errorf("--continue only moves forward: the directory holds %s; %s is %s. Restore again without --continue for an earlier point",
			m.reachedDesc(), describeTarget(o), why)
	}
	if o.GTID != nil {
		if o.GTID.Domain != m.Domain {
			return fmt.Errorf("--continue: GTID %s is not in the archived domain %d of the directory, which holds %s", o.GTID, m.Domain, m.reachedDesc())
		}
		switch {
		case o.GTID.Seq <= m.Reached:
			return back("before it")
		case o.GTID.Seq == m.Reached+1:
			return back("the same point")
		}
		return nil
	}
	// A time target restores the transactions committed in a second
	// before it: it must be after the last applied one's second, and
	// after an earlier time target.
	if !m.TargetTime.IsZero() && !o.Time.After(m.TargetTime) {
		if o.Time.Equal(m.TargetTime) {
			return back("the same point")
		}
		return back("before it")
	}
	if !m.LastCommit.IsZero() && !o.Time.After(m.LastCommit.Truncate(time.Second)) {
		return back("not after the last applied transaction's commit second")
	}
	return nil
}

// continueWindow is the gap-free archived run of m's lineage and domain
// that holds the transaction after m.Reached and reaches the target.
func (a *Archive) continueWindow(ctx context.Context, m *Marker, o PITROptions) (*Window, error) {
	segs, _, err := a.Segments(ctx)
	if err != nil {
		return nil, err
	}
	g := segGroup{m.Lineage, m.Domain}
	var mine []*Segment
	for _, s := range segs {
		if s.Lineage == m.Lineage && s.Domain == m.Domain {
			mine = append(mine, s)
		}
	}
	cov := &Coverage{}
	runs, err := a.contiguousRuns(ctx, g, mine, cov)
	if err != nil {
		return nil, err
	}
	for _, run := range runs {
		from, to := run[0].From, run[len(run)-1].To
		if from > m.Reached || to < m.Reached {
			continue
		}
		w := &Window{Lineage: m.Lineage, Domain: m.Domain, FromSeq: m.Reached, ToSeq: to, ToTime: run[len(run)-1].EndTime(), Segments: run}
		if o.GTID != nil && o.GTID.Seq > to {
			return nil, fmt.Errorf("%w: %s: the archive holds %d-*-%d … %d-*-%d without a gap after what the directory holds", ErrOutsideWindow, describeTarget(o), m.Domain, m.Reached+1, m.Domain, to)
		}
		if o.GTID == nil && o.Time.After(w.ToTime) {
			return nil, fmt.Errorf("%w: %s: the archive reaches %s (%d-*-%d) without a gap after what the directory holds", ErrOutsideWindow, describeTarget(o), w.ToTime.UTC().Format(time.RFC3339), m.Domain, to)
		}
		return w, nil
	}
	desc := []string{}
	desc = append(desc, cov.Notes...)
	for _, gp := range cov.Gaps {
		desc = append(desc, "gap: "+gp.String())
	}
	return nil, fmt.Errorf("%w: the archive of lineage %s domain %d holds no gap-free run from %d-*-%d (what the directory holds) on %s", ErrOutsideWindow,
		m.Lineage, m.Domain, m.Domain, m.Reached, strings.Join(desc, "; "))
}
