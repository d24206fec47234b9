// Package fsutil holds the file-system helpers every package shares: the
// directory fsync, the free-space query, the synced file write and the
// crash-safe file replace.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// SyncDir fsyncs a directory so that the entries created, renamed or
// deleted in it survive a crash. A failed open is returned as is; a failed
// fsync names the directory and wraps the cause (callers that tolerate a
// file system without directory fsync test for EINVAL/ENOTSUP themselves).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	cerr := d.Close()
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return cerr
}

// FreeBytes is the space available to an unprivileged user in the file
// system holding dir.
func FreeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// WriteFileDurable replaces path with data the crash-safe way: a temporary
// file in the same directory, fsync, rename over path, fsync of the
// directory. The new file keeps the old one's mode and owner, so a root
// run does not leave a file the mysql user cannot rewrite; a file that did
// not exist gets perm. A crash at any point leaves either the old or the
// new file, never a torn one (at worst a hidden temporary file next to it).
func WriteFileDurable(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	mode := perm
	uid, gid := -1, -1
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".gosst-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if uid >= 0 && os.Geteuid() == 0 {
		if err = tmp.Chown(uid, gid); err != nil {
			return fmt.Errorf("write %s: %w", tmp.Name(), err)
		}
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if err = SyncDir(dir); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// WriteFileSync writes data to path (created with perm, or truncated) and
// fsyncs it before closing: os.WriteFile that returns only once the bytes
// are on disk. It replaces nothing atomically and does not sync the
// directory (see WriteFileDurable for that); on an error the file may be
// left partly written.
func WriteFileSync(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
