package sst

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gosst/gosst/internal/fsutil"
)

// mariabackup's own logs, where DBAs look for them: the stock method writes
// mariabackup.backup.log (donor) and mariabackup.prepare.log (joiner) into
// the datadir, and with sst-log-archive (on by default) first moves the
// previous one to <sst-log-archive-dir>/mariabackup.<phase>.log.<time>.gz.
// gosst does the same, but only when it is about to write a new one, so
// every log is kept exactly once; an IST touches none. Logging never fails
// a transfer: problems are warnings.

// PhaseLogName is the datadir file of one mariabackup phase.
func PhaseLogName(phase string) string { return "mariabackup." + phase + ".log" }

// archiveStamp is the stock script's `date '+%Y.%m.%d-%H.%M.%S.%N'`.
const archiveStamp = "2006.01.02-15.04.05.000000000"

// openPhaseLog archives an earlier log of the phase (if configured) and
// creates a new, empty one. It returns nil (and logs why) if it cannot.
func openPhaseLog(datadir, phase string, c Config, log *logger, now time.Time) *os.File {
	path := filepath.Join(datadir, PhaseLogName(phase))
	if c.LogArchive {
		if _, err := os.Stat(path); err == nil {
			dst, err := archiveLog(path, c.LogArchiveDir, now)
			if err != nil && dst == "" && c.LogArchiveDir != datadir {
				log.Warnf("cannot archive %s in %s (%v); archiving it in the datadir", path, c.LogArchiveDir, err)
				dst, err = archiveLog(path, datadir, now)
			}
			if err != nil {
				log.Warnf("cannot archive %s: %v; it is overwritten", path, err)
			} else {
				log.Infof("archived the previous %s as %s", PhaseLogName(phase), dst)
			}
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		log.Warnf("cannot write %s: %v; mariabackup's output is only in this log", path, err)
		return nil
	}
	return f
}

// archiveLog gzips src into dir as <name>.<stamp>.gz, durably, then
// removes src.
func archiveLog(src, dir string, now time.Time) (string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, filepath.Base(src)+"."+now.Format(archiveStamp)+".gz")
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dir, ".gosst-archive-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	zw := gzip.NewWriter(tmp)
	zw.Name = filepath.Base(src)
	zw.ModTime = now
	_, err = io.Copy(zw, in)
	err = errors.Join(err, zw.Close(), tmp.Chmod(0o640), tmp.Sync(), tmp.Close())
	if err != nil {
		return "", fmt.Errorf("write %s: %w", dst, err)
	}
	if _, err := os.Stat(dst); err == nil {
		return "", fmt.Errorf("%s already exists", dst)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", err
	}
	_ = fsutil.SyncDir(dir) // best effort, as before: the log is archived either way
	if err := os.Remove(src); err != nil {
		return dst, fmt.Errorf("archived as %s, but: %w", dst, err)
	}
	return dst, nil
}

// fileWriter returns f as an io.Writer, or nil if f is nil (a nil *os.File
// in an interface is not a nil interface).
func fileWriter(f *os.File) io.Writer {
	if f == nil {
		return nil
	}
	return f
}
