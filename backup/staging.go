package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	fp "github.com/gosst/gosst/internal/failpoint"
	"github.com/gosst/gosst/internal/fsutil"
	"golang.org/x/sys/unix"
)

// A restore never writes into its target before the new datadir is
// complete. It works in a staging directory on the target's filesystem:
//
//	<parent>/.<target>.gosst-restore-<random>/
//	    owner      who created it (pid, host, time), for operators
//	    new/       the datadir being restored and prepared
//	    inc-NN-ID/ incremental backups being applied to new/
//	    binlogs/   archived binlogs a point-in-time restore replays
//	    old/       only on filesystems without RENAME_EXCHANGE (see swap)
//
// and swaps new/ with the target only at the end. Restores into one target
// are serialised by an flock on <parent>/.<target>.gosst-restore.lock; the
// process holding it owns every staging directory of that target, so any
// other one is the leftover of a killed run and is removed (after putting
// back a target a killed fallback swap had moved aside).

// failpoint is called at the named steps of a restore. It does nothing
// unless the binary is built with the gosstfailpoint tag (tests only),
// where GOSST_FAILPOINT=step kills the process there (see
// internal/failpoint); unit tests replace it.
var failpoint = fp.Hit

const (
	stagingInfix = ".gosst-restore-"
	lockSuffix   = ".gosst-restore.lock"
	// insideStaging is the staging directory's prefix when the target is
	// an empty mount point (staged inside the target itself).
	insideStaging = ".gosst-restore-"
)

// ErrRestoreRunning means another restore holds the target's lock.
var ErrRestoreRunning = errors.New("another restore into this target is running")

// staging is one restore's work area next to its target.
type staging struct {
	target string
	dir    string
	lock   *os.File
	// exists: the target existed (a directory) when the restore started.
	exists bool
	// inside: the target is an empty mount point; dir is inside it and the
	// finished datadir's entries are moved into it.
	inside  bool
	swapped bool
	log     *slog.Logger
}

func (s *staging) newDir() string { return filepath.Join(s.dir, "new") }

// beginStaging locks the target, removes what killed restores of it left
// behind, checks the target may be replaced, and creates the staging
// directory. Nothing in the target is changed.
func beginStaging(target string, force bool, log *slog.Logger) (_ *staging, err error) {
	if fi, err := os.Lstat(target); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		// A datadir symlinked elsewhere: stage next to, and swap, the
		// directory it points to; the link stays as it is.
		real, err := filepath.EvalSymlinks(target)
		if err != nil {
			return nil, fmt.Errorf("restore target %s is a symlink: %w", target, err)
		}
		log.Info("the target is a symlink: restoring into the directory it points to", "target", target, "dir", real)
		target = real
	}
	parent, base := filepath.Dir(target), filepath.Base(target)
	if err := os.MkdirAll(parent, 0o750); err != nil {
		return nil, fmt.Errorf("create the target's parent directory: %w", err)
	}
	s := &staging{target: target, log: log}
	if s.lock, err = lockTarget(filepath.Join(parent, "."+base+lockSuffix)); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.lock.Close()
		}
	}()
	leftovers, _ := filepath.Glob(filepath.Join(parent, "."+globEscape(base)+stagingInfix+"*"))
	if err := s.removeLeftovers(leftovers); err != nil {
		return nil, err
	}
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("restore target: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("restore target %s is not a directory", target)
	default:
		s.exists = true
		mnt, err := isMountPoint(target, fi)
		if err != nil {
			return nil, err
		}
		if mnt {
			inside, _ := filepath.Glob(filepath.Join(target, insideStaging+"*"))
			if err := s.removeLeftovers(inside); err != nil {
				return nil, err
			}
		}
		entries, err := os.ReadDir(target)
		if err != nil {
			return nil, fmt.Errorf("restore target: %w", err)
		}
		if len(entries) > 0 && !force {
			return nil, fmt.Errorf("%w: %s has %d entries; restore into an empty directory, or use --force to replace its contents", ErrTargetNotEmpty, target, len(entries))
		}
		if mnt {
			if n := realEntries(entries); n > 0 && !hasEntry(entries, IncompleteMarker) {
				return nil, fmt.Errorf("%s is a mount point and holds %d entries: a mount point cannot be swapped atomically, so gosst does not replace its contents. "+
					"Restore into an empty directory on that filesystem and point datadir at it, or, with mariadbd stopped, move the old files away yourself and run the restore again", target, n)
			}
			s.inside = true
		}
	}
	where := parent
	prefix := "." + base + stagingInfix
	if s.inside {
		where, prefix = target, insideStaging
	}
	if s.dir, err = os.MkdirTemp(where, prefix); err != nil {
		return nil, fmt.Errorf("create the staging directory next to the target: %w", err)
	}
	host, _ := os.Hostname()
	owner := fmt.Sprintf("gosst restore into %s\npid %d on %s, started %s\n", target, os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	if err := os.WriteFile(filepath.Join(s.dir, "owner"), []byte(owner), 0o600); err != nil {
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("create the staging directory next to the target: %w", err)
	}
	log.Info("staging the restore", "dir", s.dir)
	return s, nil
}

// lockTarget takes the exclusive flock that serialises restores into one
// target. The lock file stays; the kernel drops the lock when the process
// dies, however it dies.
func lockTarget(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("restore lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (lock %s held by: %s)", ErrRestoreRunning, path, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("restore lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "pid %d, since %s\n", os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	return f, nil
}

// removeLeftovers removes the staging directories of killed restores of
// this target (the caller holds the lock, so none is in use). A target
// that a killed fallback swap had moved aside is put back first.
func (s *staging) removeLeftovers(dirs []string) error {
	parent := filepath.Dir(s.target)
	for _, d := range dirs {
		if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
			continue
		}
		old := filepath.Join(d, "old")
		if _, err := os.Lstat(old); err == nil {
			if _, err := os.Lstat(s.target); errors.Is(err, os.ErrNotExist) {
				if err := os.Rename(old, s.target); err != nil {
					return fmt.Errorf("an interrupted restore left the target at %s; moving it back to %s failed: %w", old, s.target, err)
				}
				if err := fsutil.SyncDir(parent); err != nil {
					return err
				}
				s.log.Warn("put back the target an interrupted restore had moved aside", "from", old, "target", s.target)
			}
		}
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("remove the staging directory of an interrupted restore: %w", err)
		}
		s.log.Warn("removed the staging directory of an interrupted restore", "dir", d)
	}
	return nil
}

// swap puts the finished datadir (newDir) in place of the target:
//
//   - target missing: one rename.
//   - target a directory: renameat2(RENAME_EXCHANGE) swaps the two in one
//     step, so at every instant the target path is wholly old or wholly
//     new. The old datadir, now in the staging directory, is removed only
//     after the parent directory is synced.
//   - filesystems without RENAME_EXCHANGE: target → staging/old, then new
//     → target. A kill between the two leaves no target and the old datadir
//     in staging/old; the next restore moves it back.
//   - an empty mount point: the entries are moved in under IncompleteMarker.
//
// The new datadir is synced to disk before the swap, and the directory
// gets the old target's permissions and owner.
func (s *staging) swap() error {
	nd := s.newDir()
	mode, uid, gid := os.FileMode(0o750), -1, -1
	if fi, err := os.Stat(s.target); err == nil && s.exists {
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	if err := os.Chmod(nd, mode); err != nil {
		return err
	}
	if uid >= 0 {
		if err := os.Lchown(nd, uid, gid); errors.Is(err, os.ErrPermission) {
			// Not root: the files are the restoring user's anyway, and
			// the operator chowns the datadir afterwards as documented.
			s.log.Warn("cannot give the new datadir the target's owner (not root): chown it after the restore", "uid", uid, "gid", gid)
		} else if err != nil {
			return fmt.Errorf("give the new datadir the target's owner: %w", err)
		}
	}
	if err := syncTree(nd); err != nil {
		return fmt.Errorf("sync the new datadir to disk: %w", err)
	}
	failpoint("before-swap")
	parent := filepath.Dir(s.target)
	switch {
	case s.inside:
		if err := s.clearFailedInside(); err != nil {
			return err
		}
		if err := moveInto(nd, s.target); err != nil {
			return fmt.Errorf("move the prepared datadir into %s: %w (the target was empty; its partial contents are marked by %s)", s.target, err, IncompleteMarker)
		}
	case !s.exists:
		if err := os.Rename(nd, s.target); err != nil {
			return fmt.Errorf("move the new datadir to %s: %w", s.target, err)
		}
	default:
		err := exchange(nd, s.target)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
			s.log.Info("this filesystem cannot exchange directories atomically: moving the target aside, then the new datadir in", "err", err)
			err = s.swapByRenames(nd)
		} else if err != nil {
			hint := ""
			if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EXDEV) {
				hint = " (is it a mount point? see the restore documentation)"
			}
			err = fmt.Errorf("swap the new datadir with %s: %w%s; the target was not changed", s.target, err, hint)
		}
		if err != nil {
			return err
		}
	}
	s.swapped = true
	failpoint("swapped")
	if err := fsutil.SyncDir(parent); err != nil {
		return fmt.Errorf("sync %s after the swap: %w", parent, err)
	}
	return nil
}

// exchange swaps two directories atomically (a variable for tests).
var exchange = func(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

func (s *staging) swapByRenames(nd string) error {
	old := filepath.Join(s.dir, "old")
	if err := os.Rename(s.target, old); err != nil {
		return fmt.Errorf("move the old target aside: %w", err)
	}
	failpoint("mid-swap")
	if err := os.Rename(nd, s.target); err != nil {
		if berr := os.Rename(old, s.target); berr != nil {
			return fmt.Errorf("move the new datadir to %s: %w; moving the old target back also failed (%v): it is at %s", s.target, err, berr, old)
		}
		return fmt.Errorf("move the new datadir to %s: %w (the old target is back in place)", s.target, err)
	}
	return nil
}

// clearFailedInside empties a mount-point target that holds only a failed
// restore (IncompleteMarker) before new files go in.
func (s *staging) clearFailedInside() error {
	entries, err := os.ReadDir(s.target)
	if err != nil {
		return err
	}
	if !hasEntry(entries, IncompleteMarker) {
		return nil
	}
	s.log.Warn("removing the partial files of an interrupted restore", "target", s.target)
	for _, e := range entries {
		p := filepath.Join(s.target, e.Name())
		if p == s.dir || e.Name() == "lost+found" || e.Name() == IncompleteMarker {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("clear the failed restore in %s: %w", s.target, err)
		}
	}
	return nil
}

// Close removes the staging directory (after a swap it holds the old
// datadir, or nothing) and releases the lock.
func (s *staging) Close() {
	if s == nil {
		return
	}
	if err := os.RemoveAll(s.dir); err != nil {
		s.log.Warn("could not remove the staging directory", "dir", s.dir, "err", err)
	} else if s.swapped && s.exists && !s.inside {
		s.log.Info("removed the replaced datadir", "dir", s.dir)
	}
	_ = fsutil.SyncDir(filepath.Dir(s.dir))
	s.lock.Close()
}

// isMountPoint reports whether dir is on another device than its parent.
func isMountPoint(dir string, fi os.FileInfo) (bool, error) {
	pfi, err := os.Stat(filepath.Dir(dir))
	if err != nil {
		return false, err
	}
	a, ok1 := fi.Sys().(*syscall.Stat_t)
	b, ok2 := pfi.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Dev != b.Dev, nil
}

// realEntries counts entries other than lost+found and gosst's staging.
func realEntries(entries []os.DirEntry) int {
	n := 0
	for _, e := range entries {
		if e.Name() != "lost+found" && !strings.HasPrefix(e.Name(), insideStaging) {
			n++
		}
	}
	return n
}

func hasEntry(entries []os.DirEntry, name string) bool {
	for _, e := range entries {
		if e.Name() == name {
			return true
		}
	}
	return false
}

// syncTree fsyncs every file and directory under dir.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() && !d.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}
