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

// Move is one rename of the install plan.
type Move struct{ From, To string }

// Plan is how a prepared backup in the staging directory is installed.
type Plan struct {
	Moves  []Move
	Remove []string // staging entries not installed (the donor's binlog)
}

// PlanInstall decides where each top-level entry of the prepared staging
// directory goes: InnoDB system, redo and undo files and the Aria logs to
// this node's own directories, the donor's binary log nowhere (MDEV-38147:
// the joiner starts a fresh binlog seeded from the engine checkpoint),
// everything else into the datadir. Entries whose target name is one
// the datadir keeps (Keep) are not installed.
func PlanInstall(staging, datadir string, l Layout) (Plan, error) {
	entries, err := os.ReadDir(staging)
	if err != nil {
		return Plan{}, err
	}
	binlog := ""
	if b, err := os.ReadFile(filepath.Join(staging, "xtrabackup_binlog_info")); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			binlog = filepath.Base(f[0])
		}
	}
	var p Plan
	for _, e := range entries {
		name := e.Name()
		src := filepath.Join(staging, name)
		dir := datadir
		switch {
		case e.Type().IsRegular() && (name == binlog || isBinlogName(name)):
			p.Remove = append(p.Remove, src)
			continue
		case reData.MatchString(name):
			dir = Resolve(datadir, l.DataHome)
		case reRedo.MatchString(name):
			dir = Resolve(datadir, l.LogHome)
		case reUndo.MatchString(name):
			dir = Resolve(datadir, l.UndoDir)
		case reAria.MatchString(name):
			dir = Resolve(datadir, l.AriaDir)
		case Keep(name):
			p.Remove = append(p.Remove, src)
			continue
		}
		p.Moves = append(p.Moves, Move{From: src, To: filepath.Join(dir, name)})
	}
	return p, nil
}

// CleanOld deletes the old server files so the new ones can move in: every
// top-level datadir entry Keep does not protect, InnoDB/Aria files in
// separate InnoDB/Aria directories, and the old binary logs and index.
// It returns the paths it deleted.
func CleanOld(datadir string, l Layout) ([]string, error) {
	var removed []string
	var errs []error
	rm := func(p string) {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
			return
		}
		removed = append(removed, p)
	}
	entries, err := os.ReadDir(datadir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if Keep(e.Name()) || (!e.IsDir() && !e.Type().IsRegular() && e.Type()&os.ModeSymlink == 0) {
			continue
		}
		rm(filepath.Join(datadir, e.Name()))
	}
	for _, d := range []string{l.DataHome, l.LogHome, l.UndoDir, l.AriaDir} {
		dir := Resolve(datadir, d)
		if dir == filepath.Clean(datadir) {
			continue
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			n := e.Name()
			if reData.MatchString(n) || reRedo.MatchString(n) || reUndo.MatchString(n) || reAria.MatchString(n) || reTmp.MatchString(n) {
				rm(filepath.Join(dir, n))
			}
		}
	}
	r, err := cleanBinlogs(datadir, l)
	removed = append(removed, r...)
	errs = append(errs, err)
	return removed, errors.Join(errs...)
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
		}
	}
	return removed, errors.Join(errs...)
}

// Install executes the plan: removes what is not installed, creates the
// target directories and renames (copying when a target directory is on
// another filesystem).
func Install(p Plan) error {
	for _, r := range p.Remove {
		if err := os.RemoveAll(r); err != nil {
			return err
		}
	}
	for _, m := range p.Moves {
		if err := os.MkdirAll(filepath.Dir(m.To), 0o750); err != nil {
			return err
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
	return nil
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

// ReadCheckpoints parses xtrabackup_checkpoints ("key = value" lines).
func ReadCheckpoints(dir string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "xtrabackup_checkpoints"))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if len(m) == 0 {
		return nil, errors.New("xtrabackup_checkpoints is empty")
	}
	return m, nil
}

// CheckBackup verifies that dir holds a complete backup of one of the
// given backup_types ("full-backuped" before prepare; after it MariaDB
// 10.11 writes "log-applied", older tools "full-prepared").
func CheckBackup(dir string, wantTypes ...string) error {
	cp, err := ReadCheckpoints(dir)
	if err != nil {
		return fmt.Errorf("backup incomplete: %w", err)
	}
	if t := cp["backup_type"]; !slices.Contains(wantTypes, t) {
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

// galeraInfoFiles are read in this order; mariadb-backup writes both from
// the state it read under its backup locks.
var galeraInfoFiles = []string{"donor_galera_info", "xtrabackup_galera_info", "mariadb_backup_galera_info"}

// BackupPosition is the position mariabackup recorded inside the backup:
// line 1 of donor_galera_info, else of xtrabackup_galera_info.
func BackupPosition(dir string) (Position, error) {
	for _, f := range galeraInfoFiles {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return Position{}, err
		}
		line, _, _ := strings.Cut(string(b), "\n")
		p, err := ParsePosition(line)
		if err != nil {
			return Position{}, fmt.Errorf("%s: %w", f, err)
		}
		if p.Seqno < 0 {
			return Position{}, fmt.Errorf("%s: undefined seqno in %q", f, line)
		}
		return p, nil
	}
	return Position{}, fmt.Errorf("backup has no %s (was mariabackup run with --galera-info?)", strings.Join(galeraInfoFiles[:2], " or "))
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

// freeSpace is the space available to an unprivileged user in dir.
func freeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
