package sst

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gosst/gosst/internal/fsutil"
	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/mariabackup"
)

// Names gosst uses inside the joiner's datadir.
const (
	StagingDir     = ".gosst-sst"      // receive + prepare area, same filesystem as the datadir
	LockFile       = "gosst_sst.lock"  // flock(2)ed for the whole run
	InProgressFile = "sst_in_progress" // present while the datadir must not be trusted
)

// ErrBusy means another SST script holds the datadir lock.
var ErrBusy = errors.New("another SST is running on this datadir")

// acquireLock takes an exclusive flock on <datadir>/gosst_sst.lock, waiting
// up to wait for an earlier run to finish. The lock dies with the process,
// so a killed run never blocks the next one.
func acquireLock(ctx context.Context, datadir string, wait time.Duration) (release func(), err error) {
	path := filepath.Join(datadir, LockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w: %s is locked (waited %s)", ErrBusy, path, wait)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, context.Cause(ctx)
		case <-time.After(500 * time.Millisecond):
		}
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}

// keepPatterns are the datadir entries a full SST leaves alone: Galera's
// state and cache, logs, certificates, markers, pid files and sockets.
var keepPatterns = []string{
	"grastate.dat", "gvwstate.dat", "galera.cache", "gcache.page.*", "*.err", "*.log", "*.pem",
	InProgressFile, LockFile, StagingDir, "wsrep_sst.pid", "RPM_UPGRADE_MARKER", "RPM_UPGRADE_HISTORY",
	"*.pid", "*.sock", "*.sock.lock", "lost+found",
}

// Keep reports whether a top-level datadir entry survives a full SST.
func Keep(name string) bool {
	for _, p := range keepPatterns {
		if ok, _ := filepath.Match(p, name); ok {
			return true
		}
	}
	return false
}

var (
	reData     = regexp.MustCompile(`^ibdata[0-9]*$`)
	reRedo     = regexp.MustCompile(`^ib_logfile[0-9]+$`)
	reUndo     = regexp.MustCompile(`^undo[0-9]+$`)
	reAria     = regexp.MustCompile(`^aria_log(_control|\.[0-9]+)$`)
	reTmp      = regexp.MustCompile(`^ibtmp[0-9]*$`)
	reBinlogNo = regexp.MustCompile(`\.[0-9]{6,}$`)
)

// isBinlogName: <base>.NNNNNN, but not the Aria log aria_log.NNNNNNNN.
func isBinlogName(name string) bool {
	return reBinlogNo.MatchString(name) && !reAria.MatchString(name)
}

// Move is one rename of the install plan. System moves carry the InnoDB
// system tablespace, redo, undo and the Aria logs: the files from which a
// position can be recovered, installed last.
type Move struct {
	From, To string
	System   bool
}

// Plan is how a prepared backup in the staging directory is installed.
type Plan struct {
	Staging string // the prepared backup, fsynced before the swap begins
	Moves   []Move
	Remove  []string // staging entries not installed (the donor's binlog)
}

// PlanInstall decides where each top-level entry of the prepared staging
// directory goes: InnoDB system, redo and undo files and the Aria logs to
// this node's own directories, the donor's binary log nowhere (MDEV-38147:
// the joiner starts a fresh binlog seeded from the engine checkpoint),
// everything else into the datadir. Entries whose target name is one
// the datadir keeps (Keep) are not installed. Moves are ordered for the
// swap: ordinary entries first, then undo, Aria logs, redo, and the
// system tablespace last, so that InnoDB can only yield a position once
// everything else is in place.
func PlanInstall(staging, datadir string, l Layout) (Plan, error) {
	entries, err := os.ReadDir(staging)
	if err != nil {
		return Plan{}, err
	}
	binlog := ""
	if bi, err := mariabackup.ReadBinlogInfo(staging); err == nil && bi.File != "" {
		binlog = filepath.Base(bi.File)
	}
	p := Plan{Staging: staging}
	var system [4][]Move // undo, aria, redo, data
	for _, e := range entries {
		name := e.Name()
		src := filepath.Join(staging, name)
		sys := -1
		dir := datadir
		switch {
		case e.Type().IsRegular() && (name == binlog || isBinlogName(name)):
			p.Remove = append(p.Remove, src)
			continue
		case reData.MatchString(name):
			dir, sys = Resolve(datadir, l.DataHome), 3
		case reRedo.MatchString(name):
			dir, sys = Resolve(datadir, l.LogHome), 2
		case reUndo.MatchString(name):
			dir, sys = Resolve(datadir, l.UndoDir), 0
		case reAria.MatchString(name):
			dir, sys = Resolve(datadir, l.AriaDir), 1
		case Keep(name):
			p.Remove = append(p.Remove, src)
			continue
		}
		m := Move{From: src, To: filepath.Join(dir, name), System: sys >= 0}
		if sys >= 0 {
			system[sys] = append(system[sys], m)
			continue
		}
		p.Moves = append(p.Moves, m)
	}
	for _, s := range system {
		p.Moves = append(p.Moves, s...)
	}
	return p, nil
}

// isSystemFile matches the files InnoDB and Aria recover from: system
// tablespace, redo, undo, temporary tablespace, Aria control and logs.
func isSystemFile(name string) bool {
	return reData.MatchString(name) || reRedo.MatchString(name) || reUndo.MatchString(name) || reAria.MatchString(name) || reTmp.MatchString(name)
}

// systemDirs are the distinct directories that hold system files.
func systemDirs(datadir string, l Layout) []string {
	dirs := []string{filepath.Clean(datadir)}
	for _, d := range []string{l.DataHome, l.LogHome, l.UndoDir, l.AriaDir} {
		if dir := Resolve(datadir, d); !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

// Swap steps, in the order Swap performs them. After each one the state
// on disk is durable; a crash between two steps leaves sst_in_progress
// (saying "swap") and a datadir from which no usable position can be
// recovered, until the last step.
const (
	// StepInvalidated: the marker says a swap began and grastate.dat
	// carries no position; nothing deleted yet.
	StepInvalidated = "invalidated"
	// StepSystemRemoved: the old system tablespace, redo, undo and Aria
	// logs are gone, in every directory that holds them.
	StepSystemRemoved = "system-removed"
	// StepOldHalfRemoved: about half of the other old entries are gone.
	StepOldHalfRemoved = "old-half-removed"
	// StepOldRemoved: all old data and the old binary logs are gone.
	StepOldRemoved = "old-removed"
	// StepNewHalfInstalled: about half of the new ordinary entries are in.
	StepNewHalfInstalled = "new-half-installed"
	// StepDataInstalled: every new entry but the system files is in.
	StepDataInstalled = "data-installed"
	// StepSystemInstalled: everything is in; the marker is still there.
	StepSystemInstalled = "system-installed"
)

// SwapSteps lists the steps in order.
var SwapSteps = []string{StepInvalidated, StepSystemRemoved, StepOldHalfRemoved, StepOldRemoved,
	StepNewHalfInstalled, StepDataInstalled, StepSystemInstalled}

// Contents of sst_in_progress. A marker that says markerSwap (or that
// gosst did not write) means the datadir was being replaced.
const (
	markerReceive = "gosst receive\n"
	markerSwap    = "gosst swap\n"
)

// swapBegun reports whether marker content means that a swap may have
// started: anything but gosst's own receive-phase content (the stock
// scripts delete old data while still receiving).
func swapBegun(content []byte) bool { return string(content) != markerReceive }

// Swap replaces the old server files by the planned new ones so that no
// intermediate state carries a usable position: it first makes the
// staged files durable (mariabackup --prepare rewrites them), marks the swap and
// invalidates grastate.dat durably, removes the old system files first,
// then the rest, installs the new ordinary files, and the new system
// files last. Every directory it touches is fsynced before the next step.
// step, if not nil, is called after each step (see SwapSteps). The
// caller removes the marker once the datadir is complete.
func Swap(datadir string, l Layout, p Plan, step func(string)) (removed int, err error) {
	if step == nil {
		step = func(string) {}
	}
	if p.Staging != "" {
		if err := syncTree(p.Staging); err != nil {
			return 0, fmt.Errorf("make the new data durable before the old is deleted: %w", err)
		}
	}
	if err := invalidatePosition(datadir); err != nil {
		return 0, err
	}
	step(StepInvalidated)
	r, err := removeSystem(datadir, l)
	removed += len(r)
	if err != nil {
		return removed, fmt.Errorf("delete old system files: %w", err)
	}
	step(StepSystemRemoved)
	r, err = removeRest(datadir, l, func() { step(StepOldHalfRemoved) })
	removed += len(r)
	if err != nil {
		return removed, err
	}
	step(StepOldRemoved)
	if err := install(p, false, func() { step(StepNewHalfInstalled) }); err != nil {
		return removed, err
	}
	step(StepDataInstalled)
	if err := install(p, true, nil); err != nil {
		return removed, err
	}
	step(StepSystemInstalled)
	return removed, nil
}

// invalidatedGrastate is a saved state without a position. Galera then
// requests a full SST, and ignores a position recovered from InnoDB whose
// UUID does not match the saved one.
const invalidatedGrastate = "# GALERA saved state\nversion: 2.1\nuuid:    00000000-0000-0000-0000-000000000000\nseqno:   -1\nsafe_to_bootstrap: 0\n"

// invalidatePosition writes the swap marker and a position-less
// grastate.dat, both durably. grastate.dat is rewritten in place: Galera
// holds it open and rewrites it in place itself.
func invalidatePosition(datadir string) error {
	if err := fsutil.WriteFileDurable(filepath.Join(datadir, InProgressFile), []byte(markerSwap), 0o640); err != nil {
		return fmt.Errorf("mark the swap in %s: %w", InProgressFile, err)
	}
	gs := filepath.Join(datadir, "grastate.dat")
	f, err := os.OpenFile(gs, os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return fsutil.SyncDir(datadir) // no saved state: nothing to invalidate
	}
	if err != nil {
		return fmt.Errorf("invalidate %s: %w", gs, err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(invalidatedGrastate), 0); err != nil {
		return fmt.Errorf("invalidate %s: %w", gs, err)
	}
	if err := f.Truncate(int64(len(invalidatedGrastate))); err != nil {
		return fmt.Errorf("invalidate %s: %w", gs, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("invalidate %s: %w", gs, err)
	}
	return fsutil.SyncDir(datadir)
}

// removeSystem deletes the old system files in every directory that holds
// them and fsyncs those directories.
func removeSystem(datadir string, l Layout) ([]string, error) {
	var removed []string
	var errs []error
	for _, dir := range systemDirs(datadir, l) {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		changed := false
		for _, e := range entries {
			if !isSystemFile(e.Name()) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, p)
			changed = true
		}
		if changed {
			errs = append(errs, fsutil.SyncDir(dir))
		}
	}
	return removed, errors.Join(errs...)
}

// removeRest deletes every other top-level datadir entry Keep does not
// protect and the old binary logs and index, then fsyncs the datadir and
// the binlog directories. half is called when about half the entries
// are gone.
func removeRest(datadir string, l Layout, half func()) ([]string, error) {
	entries, err := os.ReadDir(datadir)
	if err != nil {
		return nil, err
	}
	var doomed []string
	for _, e := range entries {
		if Keep(e.Name()) || (!e.IsDir() && !e.Type().IsRegular() && e.Type()&os.ModeSymlink == 0) {
			continue
		}
		doomed = append(doomed, filepath.Join(datadir, e.Name()))
	}
	var removed []string
	var errs []error
	if half == nil {
		half = func() {}
	}
	for i, p := range doomed {
		if i == len(doomed)/2 {
			if err := fsutil.SyncDir(datadir); err != nil {
				return removed, err
			}
			half()
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	if len(doomed) == 0 {
		half()
	}
	r, err := cleanBinlogs(datadir, l)
	removed = append(removed, r...)
	errs = append(errs, err, fsutil.SyncDir(datadir))
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("delete old data: %w", err)
	}
	return removed, nil
}

// CleanOld deletes the old server files so the new ones can move in: the
// InnoDB/Aria system files first (in the datadir and in separate
// InnoDB/Aria directories), then every other top-level datadir entry
// Keep does not protect, and the old binary logs and index. Every
// directory it changes is fsynced. It returns the paths it deleted.
func CleanOld(datadir string, l Layout) ([]string, error) {
	removed, err := removeSystem(datadir, l)
	if err != nil {
		return removed, err
	}
	r, err := removeRest(datadir, l, nil)
	return append(removed, r...), err
}

// cleanBinlogs deletes the files listed in the binlog index, the index,
// <base>.NNNNNN and <base>.state, and makes sure the binlog and index
// directories exist (mysqld does not create them).
func cleanBinlogs(datadir string, l Layout) ([]string, error) {
	if l.Binlog == "" {
		return nil, nil
	}
	base := Resolve(datadir, l.Binlog)
	index := base + ".index"
	if l.BinlogIndex != "" {
		index = Resolve(datadir, l.BinlogIndex)
		if filepath.Ext(index) == "" {
			index += ".index"
		}
	}
	var removed []string
	var errs []error
	rm := func(p string) {
		if err := os.Remove(p); err == nil {
			removed = append(removed, p)
		} else if !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if f, err := os.Open(index); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if s := strings.TrimSpace(sc.Text()); s != "" {
				rm(Resolve(datadir, s))
			}
		}
		f.Close()
	}
	matches, _ := filepath.Glob(base + ".[0-9]*")
	for _, m := range matches {
		if reBinlogNo.MatchString(m) {
			rm(m)
		}
	}
	rm(base + ".state")
	rm(index)
	for _, d := range []string{filepath.Dir(base), filepath.Dir(index)} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, fsutil.SyncDir(d))
	}
	return removed, errors.Join(errs...)
}

// Install executes the plan: removes what is not installed, creates the
// target directories and renames (copying when a target directory is on
// another filesystem), ordinary entries first and the system files last,
// fsyncing every directory it changes.
func Install(p Plan) error {
	if err := install(p, false, nil); err != nil {
		return err
	}
	return install(p, true, nil)
}

// install moves the plan's system or ordinary entries (the ordinary pass
// also drops p.Remove) and fsyncs every directory it changes. half is
// called after about half of the moves, once they are durable.
func install(p Plan, system bool, half func()) error {
	if !system {
		for _, r := range p.Remove {
			if err := os.RemoveAll(r); err != nil {
				return err
			}
		}
	}
	var moves []Move
	for _, m := range p.Moves {
		if m.System == system {
			moves = append(moves, m)
		}
	}
	var dirs []string
	sync := func() error {
		for _, d := range dirs {
			if err := fsutil.SyncDir(d); err != nil {
				return err
			}
		}
		return nil
	}
	if half == nil {
		half = func() {}
	}
	if len(moves) == 0 {
		half()
	}
	for i, m := range moves {
		if i == len(moves)/2 {
			if err := sync(); err != nil {
				return err
			}
			half()
		}
		dir := filepath.Dir(m.To)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
		if !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
		if err := os.RemoveAll(m.To); err != nil {
			return err
		}
		err := os.Rename(m.From, m.To)
		if errors.Is(err, syscall.EXDEV) {
			err = copyFile(m.From, m.To)
		}
		if err != nil {
			return fmt.Errorf("install %s: %w", m.To, err)
		}
	}
	if len(moves) > 0 {
		if d := filepath.Dir(moves[0].From); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return sync()
}

// syncTree fsyncs every regular file and directory under root.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", p, err)
		}
		return nil
	})
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("directory %s cannot move across filesystems", from)
	}
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Remove(from)
}

// CheckBackup verifies that dir holds a complete backup of one of the
// given backup_types ("full-backuped" before prepare; after it MariaDB
// 10.11 writes "log-applied", older tools "full-prepared").
func CheckBackup(dir string, wantTypes ...string) error {
	cp, err := mariabackup.ReadCheckpoints(dir)
	if err != nil {
		return fmt.Errorf("backup incomplete: %w", err)
	}
	if t := cp.Type(); !slices.Contains(wantTypes, t) {
		return fmt.Errorf("xtrabackup_checkpoints: backup_type = %q, want %s", t, strings.Join(wantTypes, " or "))
	}
	if cp["compact"] == "1" {
		return errors.New("xtrabackup_checkpoints: compact backups are not supported")
	}
	if _, err := BackupPosition(dir); err != nil {
		return err
	}
	return nil
}

// BackupPosition is the position mariabackup recorded inside the backup:
// line 1 of donor_galera_info, else of xtrabackup_galera_info (else of
// its 11.x name, mariadb_backup_galera_info).
func BackupPosition(dir string) (ist.Position, error) {
	f, line, err := mariabackup.ReadGaleraInfo(dir)
	if errors.Is(err, os.ErrNotExist) {
		return ist.Position{}, fmt.Errorf("backup has no %s (was mariabackup run with --galera-info?)", strings.Join(mariabackup.GaleraInfoFiles[:2], " or "))
	}
	if err != nil {
		return ist.Position{}, err
	}
	p, err := ist.ParseGaleraInfo(line)
	if err != nil {
		return ist.Position{}, fmt.Errorf("%s: %w", f, err)
	}
	if p.Seqno < 0 {
		return ist.Position{}, fmt.Errorf("%s: undefined seqno in %q", f, line)
	}
	return p, nil
}

// dataSize estimates the bytes mariabackup will stream from datadir:
// regular files except Galera's cache and logs.
func dataSize(datadir string) int64 {
	var n int64
	_ = filepath.WalkDir(datadir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if p != datadir && slices.Contains([]string{StagingDir, "lost+found"}, d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		if filepath.Dir(p) == filepath.Clean(datadir) && (Keep(name) || isBinlogName(name) || strings.HasSuffix(name, ".index")) {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
