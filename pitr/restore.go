package pitr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/binlog"
	"github.com/gosst/gosst/internal/ctxio"
	"github.com/gosst/gosst/internal/failpoint"
	"github.com/gosst/gosst/internal/text"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/storage/backend"
)

// Window is one restorable range: from the earliest backup whose position
// the archive covers to the last archived transaction, without a gap.
type Window struct {
	Lineage string `json:"lineage"`
	Domain  uint32 `json:"domain"`
	// Backups that can start a PITR in this window, oldest first.
	Backups   []*backup.Manifest `json:"-"`
	BackupIDs []string           `json:"backups"`
	// FromSeq/FromTime: the earliest backup's GTID sequence number and end
	// time. A time target must not be before FromTime, a GTID target must
	// be after FromSeq.
	FromSeq  uint64    `json:"from_seq"`
	FromTime time.Time `json:"from_time"`
	// ToSeq is the last archived transaction; ToTime the close time of the
	// file holding it (the latest time target).
	ToSeq    uint64     `json:"to_seq"`
	ToTime   time.Time  `json:"to_time"`
	Segments []*Segment `json:"-"`
}

func (w Window) String() string {
	if w.ToSeq <= w.FromSeq {
		return fmt.Sprintf("%s … %s (GTID %d-*-%d, the backup %s only: nothing archived after it yet; lineage %s)",
			w.FromTime.Format(time.RFC3339), w.ToTime.Format(time.RFC3339), w.Domain, w.FromSeq, w.BackupIDs[0], w.Lineage)
	}
	return fmt.Sprintf("%s … %s (GTID %d-*-%d … %d-*-%d; after backup %s; lineage %s)",
		w.FromTime.Format(time.RFC3339), w.ToTime.Format(time.RFC3339), w.Domain, w.FromSeq+1, w.Domain, w.ToSeq,
		w.BackupIDs[0], w.Lineage)
}

// Coverage is what the archive and the backups allow restoring to.
type Coverage struct {
	Windows []Window `json:"windows"`
	Gaps    []Gap    `json:"gaps"`
	// Notes: archived ranges no backup can start from, unreadable indexes.
	Notes []string `json:"notes"`
}

// Describe prints the windows and gaps for an operator.
func (c *Coverage) Describe() string {
	var b strings.Builder
	if len(c.Windows) == 0 {
		b.WriteString("restorable windows: none\n")
	} else {
		b.WriteString("restorable windows:\n")
	}
	for _, w := range c.Windows {
		fmt.Fprintf(&b, "  %s\n", w)
	}
	for _, g := range c.Gaps {
		fmt.Fprintf(&b, "  gap: %s\n", g)
	}
	for _, n := range c.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return strings.TrimRight(b.String(), "\n")
}

// backupSeq returns the backup's sequence number in domain d.
func backupSeq(m *backup.Manifest, d uint32) (uint64, bool) { return seqOf(m.Binlog.GTID, d) }

// Coverage computes the restorable windows. Every segment's data object is
// checked with Stat: a missing object is a gap.
func (a *Archive) Coverage(ctx context.Context, cat *backup.Catalog) (*Coverage, error) {
	segs, bad, err := a.Segments(ctx)
	if err != nil {
		return nil, err
	}
	backups, _, err := cat.List(ctx)
	if err != nil {
		return nil, err
	}
	cov := &Coverage{Windows: []Window{}, Gaps: []Gap{}, Notes: []string{}}
	for k, e := range bad {
		cov.Notes = append(cov.Notes, fmt.Sprintf("unreadable index %s: %v", k, e))
	}
	var order []segGroup
	byGroup := map[segGroup][]*Segment{}
	for _, s := range segs {
		g := segGroup{s.Lineage, s.Domain}
		if _, ok := byGroup[g]; !ok {
			order = append(order, g)
		}
		byGroup[g] = append(byGroup[g], s)
	}
	for _, g := range order {
		runs, err := a.contiguousRuns(ctx, g, byGroup[g], cov)
		if err != nil {
			return nil, err
		}
		for _, run := range runs {
			if w, ok := runWindow(g, run, backups, cov); ok {
				cov.Windows = append(cov.Windows, w)
			}
		}
	}
	return cov, nil
}

// contiguousRuns splits group g's segments, whose data objects it checks,
// into runs without gaps; the gaps and missing objects go into cov.
func (a *Archive) contiguousRuns(ctx context.Context, g segGroup, segs []*Segment, cov *Coverage) ([][]*Segment, error) {
	var runs [][]*Segment
	var missing []*Segment
	var run []*Segment
	var runTo uint64
	for _, s := range segs {
		oi, err := a.Store.Stat(ctx, s.Object.Key)
		if err != nil || oi.Size != s.Object.Size {
			why := "missing"
			if err == nil {
				why = fmt.Sprintf("%d bytes, index says %d", oi.Size, s.Object.Size)
			} else if !errors.Is(err, backend.ErrNotExist) {
				return nil, fmt.Errorf("check %s: %w", s.Object.Key, err)
			}
			missing = append(missing, s)
			cov.Notes = append(cov.Notes, fmt.Sprintf("data object %s is %s", s.Object.Key, why))
			continue
		}
		switch {
		case len(run) == 0:
			run, runTo = []*Segment{s}, s.To
		case s.From <= runTo:
			if s.To > runTo {
				run, runTo = append(run, s), s.To
			}
		default:
			reason := "not archived"
			for _, m := range missing {
				if m.To > runTo && m.From < s.From {
					reason = "data object " + m.Object.Key + " missing"
				}
			}
			cov.Gaps = append(cov.Gaps, Gap{Lineage: g.lineage, Domain: g.domain, After: runTo, Through: s.From, Reason: reason})
			runs = append(runs, run)
			run, runTo = []*Segment{s}, s.To
		}
	}
	if len(run) > 0 {
		runs = append(runs, run)
	}
	return runs, nil
}

// runWindow is the restorable window of run: from the first of backups
// inside it to its end. A run without a backup to start from is no
// window; cov notes it.
func runWindow(g segGroup, run []*Segment, backups []*backup.Manifest, cov *Coverage) (Window, bool) {
	from, to := run[0].From, run[len(run)-1].To
	w := Window{Lineage: g.lineage, Domain: g.domain, ToSeq: to, ToTime: run[len(run)-1].EndTime(), Segments: run}
	for _, m := range backups {
		if m.Galera.UUID != g.lineage && !(strings.HasPrefix(g.lineage, "server-") && m.Galera.UUID == "") {
			continue
		}
		seq, ok := backupSeq(m, g.domain)
		if !ok || seq < from || seq > to {
			continue
		}
		w.Backups = append(w.Backups, m)
		w.BackupIDs = append(w.BackupIDs, m.ID)
	}
	if len(w.Backups) == 0 {
		cov.Notes = append(cov.Notes, fmt.Sprintf("archived %d-*-%d … %d-*-%d (lineage %s) has no backup to start from", g.domain, from+1, g.domain, to, g.lineage))
		return w, false
	}
	w.FromSeq, _ = backupSeq(w.Backups[0], g.domain)
	w.FromTime = w.Backups[0].EndTime
	return w, true
}

// PITROptions configures a point-in-time restore. Exactly one of Time and
// GTID is set.
type PITROptions struct {
	backup.RestoreOptions
	// Time: restore the transactions committed before this instant (commit
	// times have 1 s resolution: a transaction is included when its commit
	// second is before Time).
	Time time.Time
	// GTID: restore everything before this transaction (exclusive).
	GTID *binlog.GTID
	// Binaries (defaults: mariadbd from /usr/sbin, mariadb-binlog and
	// mariadb from PATH).
	Mariadbd, MariadbBinlog, Mariadb string
	// Replay is ReplayApplier (default) or ReplayClient.
	Replay string
	// ApplierThreads is slave_parallel_threads for ReplayApplier
	// (default DefaultApplierThreads).
	ApplierThreads int
	// ApplierMode is slave_parallel_mode for ReplayApplier, one of
	// ApplierModes (default DefaultApplierMode).
	ApplierMode string
	// Progress, if set, receives the replay's progress (bytes of the
	// archived binlogs applied of the total, transactions, events) about
	// every 200 ms; without it a log line is written every 10 s.
	Progress func(ReplaySnapshot)
}

// PITRResult reports a point-in-time restore.
type PITRResult struct {
	Backup       *backup.Manifest `json:"-"`
	BackupID     string           `json:"backup"`
	Window       Window           `json:"window"`
	Transactions int              `json:"transactions"` // replayed
	First        string           `json:"first_gtid,omitempty"`
	Last         string           `json:"last_gtid,omitempty"`
	LastCommit   time.Time        `json:"last_commit,omitempty"`
	Files        int              `json:"files"`
	// Start says where the replay started: the backup's own binlog
	// coordinates, or the first transaction after its GTID in another
	// node's file.
	Start string `json:"start,omitempty"`
	// ReplayTime is the replay without server start and stop: the
	// client pipe's run time, or the applier's START SLAVE to its until
	// position, summed over runs.
	ReplayTime time.Duration `json:"replay_ns"`
	// Replay is the replay mode used ("applier" or "client");
	// ApplierThreads the applier's slave_parallel_threads; ReplayBytes
	// the bytes of relay logs the applier read (the archived events plus
	// each run's first relay log header).
	Replay         string `json:"replay,omitempty"`
	ApplierThreads int    `json:"applier_threads,omitempty"`
	ApplierMode    string `json:"applier_mode,omitempty"`
	ReplayBytes    int64  `json:"replay_bytes,omitempty"`
	// Events read by the replay: the SQL threads' Executed_log_entries
	// summed over runs (applier; includes each relay log's header events)
	// or the events mariadb-binlog printed (client); -1 if unknown.
	Events int64 `json:"events"`
	// TransactionsPerSecond is Transactions over ReplayTime.
	TransactionsPerSecond float64 `json:"transactions_per_s"`
	// reached is the sequence number in the window's domain of the last
	// transaction applied; position where the replay stopped in the
	// archive (for the marker).
	reached  uint64
	position string
}

// ErrOutsideWindow means the target cannot be restored from what is stored.
var ErrOutsideWindow = errors.New("target outside the restorable window")

// step replays one archived file from start to stop (-1: its end).
type step struct {
	seg         *Segment
	path        string
	start, stop int64
	tx          *txIndex // the transactions it applies, by offset (nil: none counted)
}

// PITR restores the newest backup before the target into o.TargetDir and
// replays archived binlogs from the backup's position up to the target on a
// temporary mariadbd (wsrep off, no network, its own socket), then shuts
// it down cleanly. Targets outside a gap-free window are refused before
// anything is written, with the windows in the error.
func PITR(ctx context.Context, cat *backup.Catalog, a *Archive, o PITROptions) (*PITRResult, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	log := o.Logger
	target, err := filepath.Abs(o.TargetDir)
	if err != nil {
		return nil, err
	}
	cov, err := a.Coverage(ctx, cat)
	if err != nil {
		return nil, err
	}
	w, base, err := pick(cov, o)
	if err != nil {
		return nil, err
	}
	baseSeq, _ := backupSeq(base, w.Domain)
	res := &PITRResult{Backup: base, BackupID: base.ID, Window: *w}
	log.Info("point-in-time restore", "backup", base.ID, "backup_gtid", base.Binlog.GTID, "target", describeTarget(o))

	// Everything happens in a staging directory next to the target: the
	// keys are checked, binlogs downloaded and planned, the base backup
	// restored and prepared, the binlogs replayed; only then is the result
	// swapped with the target.
	ro := o.RestoreOptions
	ro.TargetDir, ro.Galera = target, false
	sr, err := backup.CheckRestore(ctx, cat, base.ID, ro)
	if err != nil {
		return nil, fmt.Errorf("restore base backup %s: %w", base.ID, err)
	}
	if err := sr.Begin(); err != nil {
		return nil, err
	}
	defer sr.Close()
	binlogs := filepath.Join(sr.Dir(), "binlogs")
	if err := os.Mkdir(binlogs, 0o700); err != nil {
		return nil, err
	}
	steps, err := plan(ctx, a, w, base, baseSeq, o, binlogs, res)
	if err != nil {
		return nil, err
	}
	if err := sr.Fetch(ctx); err != nil {
		return nil, fmt.Errorf("restore base backup %s: %w", base.ID, err)
	}
	if err := replaySteps(ctx, sr, steps, o, res); err != nil {
		return nil, err
	}
	failpoint.Hit("replayed")
	// The marker goes in with the datadir, in the same swap: it records
	// how far it was replayed, for restore --continue.
	if err := writeMarker(sr.DataDir(), newMarker(base.ID, w, o, res, base.EndTime)); err != nil {
		return nil, err
	}
	if err := sr.Swap(); err != nil {
		return nil, err
	}
	return res, nil
}

// setDefaults checks the target and fills in the binaries and the replay
// mode.
func (o *PITROptions) setDefaults() error {
	if (o.GTID == nil) == o.Time.IsZero() {
		return errors.New("give exactly one target: a time or a GTID")
	}
	if o.Mariadbd == "" {
		o.Mariadbd = "/usr/sbin/mariadbd"
	}
	if o.MariadbBinlog == "" {
		o.MariadbBinlog = "mariadb-binlog"
	}
	if o.Mariadb == "" {
		o.Mariadb = "mariadb"
	}
	switch o.Replay {
	case "":
		o.Replay = ReplayApplier
	case ReplayApplier, ReplayClient:
	default:
		return fmt.Errorf("replay mode %q: want %s or %s", o.Replay, ReplayApplier, ReplayClient)
	}
	if o.ApplierThreads <= 0 {
		o.ApplierThreads = DefaultApplierThreads
	}
	if o.ApplierMode == "" {
		o.ApplierMode = DefaultApplierMode
	} else if err := CheckApplierMode(o.ApplierMode); err != nil {
		return fmt.Errorf("applier mode %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.TargetDir == "" {
		return errors.New("restore needs --target-dir")
	}
	// Commit times have 1 s resolution: a transaction stamped with second
	// S committed somewhere in [S, S+1). Only transactions certainly
	// committed before the target are restored, so a target with a
	// fraction excludes its whole second.
	o.Time = o.Time.Truncate(time.Second)
	return nil
}

// replaySteps replays the planned binlogs into the staged datadir in the
// chosen mode.
func replaySteps(ctx context.Context, sr *backup.StagedRestore, steps []step, o PITROptions, res *PITRResult) error {
	if len(steps) == 0 {
		o.Logger.Info("nothing to replay: the backup is the target state")
		return nil
	}
	if err := replayInto(ctx, sr.DataDir(), sr.Dir(), steps, o, res); err != nil {
		return fmt.Errorf("replay binlogs (in the staging directory; the target was not changed): %w", err)
	}
	return nil
}

// replayInto replays steps into datadir in o's replay mode, with scratch
// for the temporary server's files, and fills res's replay figures.
func replayInto(ctx context.Context, datadir, scratch string, steps []step, o PITROptions, res *PITRResult) error {
	var err error
	if o.Replay == ReplayClient {
		res.Replay = ReplayClient
		err = replay(ctx, datadir, scratch, steps, o, res)
	} else {
		err = replayApplier(ctx, datadir, scratch, steps, o, res)
	}
	if err != nil {
		return err
	}
	if res.ReplayTime > 0 {
		res.TransactionsPerSecond = float64(res.Transactions) / res.ReplayTime.Seconds()
	}
	return nil
}

func describeTarget(o PITROptions) string {
	if o.GTID != nil {
		return "before GTID " + o.GTID.String()
	}
	return "before " + o.Time.UTC().Format(time.RFC3339Nano)
}

// pick finds the window holding the target and the newest backup in it
// before the target.
func pick(cov *Coverage, o PITROptions) (*Window, *backup.Manifest, error) {
	for i := range cov.Windows {
		w := &cov.Windows[i]
		var best *backup.Manifest
		for _, m := range w.Backups {
			seq, _ := backupSeq(m, w.Domain)
			if o.GTID != nil {
				if o.GTID.Domain == w.Domain && seq < o.GTID.Seq && o.GTID.Seq <= w.ToSeq {
					best = m
				}
			} else if !o.Time.Before(m.EndTime) && !o.Time.After(w.ToTime) {
				best = m
			}
		}
		if best != nil {
			return w, best, nil
		}
	}
	why := ""
	if o.GTID != nil {
		doms := map[uint32]bool{}
		for _, w := range cov.Windows {
			doms[w.Domain] = true
		}
		if len(doms) > 0 && !doms[o.GTID.Domain] {
			why = fmt.Sprintf(" (domain %d is not archived: use the wsrep_gtid_domain_id domain)", o.GTID.Domain)
		}
	}
	return nil, nil, fmt.Errorf("%w: %s%s\n%s", ErrOutsideWindow, describeTarget(o), why, cov.Describe())
}

// plan downloads the segments needed and turns them into replay steps.
func plan(ctx context.Context, a *Archive, w *Window, base *backup.Manifest, baseSeq uint64, o PITROptions, dir string, res *PITRResult) ([]step, error) {
	var steps []step
	cur := baseSeq
	res.reached = cur
	if o.GTID != nil && o.GTID.Seq == cur+1 {
		return nil, nil
	}
	for i, s := range w.Segments {
		if s.To <= cur {
			continue
		}
		// s.File comes from an index read from storage: it is checked to be
		// a plain file name, and the file is created through an os.Root on
		// dir, so no name can write outside dir.
		if !ValidBinlogFile(s.File) {
			return nil, fmt.Errorf("segment %s: file %q is not a binlog file name: refusing to use it", s.Key(), s.File)
		}
		name := fmt.Sprintf("%04d-%s", i, s.File)
		path := filepath.Join(dir, name)
		if err := a.download(ctx, s, dir, name, o.Identities); err != nil {
			return nil, err
		}
		st := step{seg: s, path: path, start: s.ReplayFrom, stop: -1}
		switch {
		case len(steps) == 0 && base.Node == s.Node && filepath.Base(base.Binlog.File) == s.File && base.Binlog.Position >= 4 && s.From <= cur:
			// The backup's own coordinates, on the node it was taken from.
			st.start = base.Binlog.Position
			res.Start = fmt.Sprintf("backup position %s:%d on %s", s.File, st.start, s.Node)
		case s.From < cur:
			tx, found, err := findIn(path, func(p io.Reader) (binlog.Tx, bool, error) { return binlog.FindGTID(p, w.Domain, cur+1) })
			if err != nil {
				return nil, err
			}
			if !found {
				return nil, fmt.Errorf("segment %s does not hold %d-*-%d", s.Key(), w.Domain, cur+1)
			}
			st.start = tx.Offset
			res.Start = fmt.Sprintf("after GTID %d-*-%d: %s:%d on %s", w.Domain, cur, s.File, st.start, s.Node)
		default:
			if len(steps) == 0 {
				res.Start = fmt.Sprintf("after GTID %d-*-%d: %s:%d on %s (start of the segment)", w.Domain, cur, s.File, st.start, s.Node)
			}
		}
		// Find the stop and count what this step applies.
		end, done, err := scanStep(&st, w.Domain, o, res)
		if err != nil {
			return nil, err
		}
		if st.stop < 0 {
			// Replayed to its end: a crashed file can end inside a
			// transaction (cut mid-event, or at an event boundary), and
			// the replication applier would wait forever for the rest.
			// Stop after the last complete transaction (one more read of
			// a local file, small beside the replay itself).
			if st.stop, err = stopBeforeCut(&st, end, res); err != nil {
				return nil, err
			}
			if st.stop == s.Object.PlainSize {
				st.stop = -1 // the whole file
			}
		}
		if st.stop < 0 || st.stop > st.start {
			steps = append(steps, st)
			res.Files++
			stop := st.stop
			if stop < 0 {
				stop = s.Object.PlainSize
			}
			res.position = fmt.Sprintf("%s %s:%d", s.Node, s.File, stop)
		}
		cur = s.To
		if done {
			break
		}
	}
	return steps, nil
}

// scanStep reads st's downloaded segment from st.start: it sets st.stop
// at the target, if the target is in it (done), and counts what the step
// applies into res. end is where its last complete event ends.
func scanStep(st *step, domain uint32, o PITROptions, res *PITRResult) (end int64, done bool, err error) {
	var scanErr error
	st.tx = &txIndex{start: st.start}
	f, err := os.Open(st.path)
	if err != nil {
		return 0, false, err
	}
	end, err = binlog.Scan(f, func(tx binlog.Tx) bool {
		if tx.Offset < st.start {
			return true
		}
		if o.GTID != nil && tx.GTID.Domain == domain && tx.GTID.Seq >= o.GTID.Seq {
			if tx.GTID != *o.GTID {
				scanErr = fmt.Errorf("%w: the archive has %s where %s was asked for (wrong server id?)", ErrOutsideWindow, tx.GTID, o.GTID)
			}
			st.stop, done = tx.Offset, true
			return false
		}
		if o.GTID == nil && !tx.Commit.Before(o.Time) {
			st.stop, done = tx.Offset, true
			return false
		}
		if res.First == "" {
			res.First = tx.GTID.String()
		}
		res.Last, res.LastCommit = tx.GTID.String(), tx.Commit
		res.Transactions++
		if tx.GTID.Domain == domain {
			res.reached = tx.GTID.Seq
		}
		st.tx.add(tx.Offset)
		return true
	})
	f.Close()
	if err == nil {
		err = scanErr
	}
	if err != nil {
		return 0, false, fmt.Errorf("read archived %s: %w", st.seg.File, err)
	}
	return end, done, nil
}

// stopBeforeCut returns where replay of a file to its end must stop: at
// the start of a transaction the end of the file cut off, else at end
// (the end of its last complete event). The cut transaction is taken out
// of res's count.
func stopBeforeCut(st *step, end int64, res *PITRResult) (int64, error) {
	f, err := os.Open(st.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	stop := end
	var last *binlog.Transaction
	err = binlog.Walk(f, true, func(tx *binlog.Transaction) bool {
		if tx.Offset < st.start {
			return true
		}
		if !tx.Complete {
			stop = tx.Offset
			if tx.GTID.Domain == st.seg.Domain && tx.GTID.Seq > 0 && res.reached >= tx.GTID.Seq {
				// Not applied: the window's domain has no gaps, so the
				// transaction before it is the last one applied.
				res.reached = tx.GTID.Seq - 1
			}
			return false
		}
		last = tx
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("read archived %s: %w", st.seg.File, err)
	}
	if stop < end && res.Transactions > 0 {
		res.Transactions--
		if st.tx != nil && st.tx.n > 0 {
			st.tx.n--
		}
		if last != nil {
			res.Last, res.LastCommit = last.GTID.String(), last.Time
		}
	}
	return stop, nil
}

func findIn(path string, fn func(io.Reader) (binlog.Tx, bool, error)) (binlog.Tx, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return binlog.Tx{}, false, err
	}
	defer f.Close()
	return fn(f)
}

// download fetches one segment's data into the new file name in dir,
// verifying the stored SHA-256, the end marker and the plain SHA-256. name
// is resolved inside dir (os.Root): it cannot escape it, whatever it holds.
func (a *Archive) download(ctx context.Context, s *Segment, dir, name string, ids []age.Identity) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("scratch dir: %w", err)
	}
	defer root.Close()
	rc, err := a.Store.Get(ctx, s.Object.Key, 0, -1)
	if errors.Is(err, backend.ErrNotExist) {
		return fmt.Errorf("%w: data object %s is missing", ErrOutsideWindow, s.Object.Key)
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", s.Object.Key, err)
	}
	defer rc.Close()
	hc := backup.NewHashCounter()
	var src io.Reader = io.TeeReader(rc, hc)
	if s.Encrypted() && len(ids) == 0 {
		return fmt.Errorf("archived binlog %s is encrypted: give --identity FILE or --passphrase-file FILE", s.Object.Key)
	}
	ir, err := backup.Unseal(src, s.Object, s.Encrypted(), ids)
	if err != nil {
		return fmt.Errorf("object %s: %w", s.Object.Key, err)
	}
	defer ir.Close()
	f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("archived binlog %s: %w", s.Object.Key, err)
	}
	if _, err := io.Copy(f, ctxio.NewReader(ctx, ir)); err != nil {
		f.Close()
		return fmt.Errorf("object %s: %w", s.Object.Key, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, src); err != nil {
		return fmt.Errorf("object %s: %w", s.Object.Key, err)
	}
	if !hc.Matches(s.Object) {
		return fmt.Errorf("object %s: stored bytes differ from the index (size %d, want %d, or SHA-256 differs)", s.Object.Key, hc.Size(), s.Object.Size)
	}
	return nil
}

// replay starts a temporary mariadbd on datadir and pipes
// mariadb-binlog (one invocation per run of consecutive files of one node)
// into one mariadb client.
func replay(ctx context.Context, datadir, scratch string, steps []step, o PITROptions, res *PITRResult) error {
	log := o.Logger
	srv, err := mariadb.StartScratch(ctx, mariadb.ScratchOptions{
		DataDir: datadir, RunDir: scratch, Mariadbd: o.Mariadbd, BufferPool: "128M",
		ExtraArgs: []string{"--innodb-flush-log-at-trx-commit=2", "--max-allowed-packet=1G"},
	})
	if err != nil {
		return err
	}
	defer srv.Stop()
	sock := srv.Socket

	start := time.Now()
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	client := exec.CommandContext(ctx, o.Mariadb, "--no-defaults", "--socket="+sock, "--user=root", "--binary-mode")
	client.Stdin = pr
	clientOut := text.NewTail(8 << 10)
	client.Stdout, client.Stderr = clientOut, clientOut
	if err := client.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("start %s: %w", o.Mariadb, err)
	}
	pr.Close()
	clientDone := make(chan error, 1)
	go func() { clientDone <- client.Wait() }()
	// The server runs with --skip-grant-tables (no credentials needed), which
	// refuses account statements (CREATE USER, GRANT) the binlogs may hold.
	// FLUSH PRIVILEGES loads the grant tables; this session keeps the
	// privileges it connected with.
	_, feedErr := io.WriteString(pw, "FLUSH PRIVILEGES;\n")
	prog := newReplayProgress(steps, o, res)
	for _, run := range runsOf(steps) {
		if feedErr != nil {
			break
		}
		first, last := run[0], run[len(run)-1]
		bargs := []string{"--no-defaults", fmt.Sprintf("--start-position=%d", first.start)}
		if last.stop >= 0 {
			bargs = append(bargs, fmt.Sprintf("--stop-position=%d", last.stop))
		}
		for _, s := range run {
			bargs = append(bargs, s.path)
		}
		log.Info("replaying", "files", len(run), "first", first.seg.File, "node", first.seg.Node, "start", first.start, "stop", last.stop)
		bl := exec.CommandContext(ctx, o.MariadbBinlog, bargs...)
		tr := newClientTracker(run, prog)
		bl.Stdout = newAtScanner(pw, tr.at)
		blErr := text.NewTail(8 << 10)
		bl.Stderr = blErr
		bl.Env = append(os.Environ(), "TZ=UTC")
		if err := bl.Run(); err != nil {
			feedErr = fmt.Errorf("mariadb-binlog %s: %w\n%s", strings.Join(bargs[1:], " "), err, blErr.String())
		} else {
			tr.finish()
		}
	}
	pw.Close()
	cerr := <-clientDone
	if cerr != nil {
		return fmt.Errorf("mariadb client applying the binlogs failed: %w\n%s", cerr, clientOut.String())
	}
	if feedErr != nil {
		return feedErr
	}
	res.ReplayTime, res.Events = time.Since(start), prog.events
	return srv.Stop()
}
