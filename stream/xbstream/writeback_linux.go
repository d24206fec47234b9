package xbstream

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing n bytes of f from off
// to disk without waiting for it (sync_file_range SYNC_FILE_RANGE_WRITE).
// It is only a hint: durability still comes from the fsync at the end.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}

// directSupported: O_DIRECT writes and syncfs are available.
const directSupported = true

// openDirect opens path (already created) under root for writing with
// O_DIRECT.
func openDirect(root *os.Root, path string) (*os.File, error) {
	return root.OpenFile(path, os.O_WRONLY|unix.O_DIRECT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// syncFS flushes the filesystem holding root (syncfs(2); since Linux 5.8
// it also reports write-back errors of files already closed).
func syncFS(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	rc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Syncfs(int(fd)) }); err != nil {
		return err
	}
	return serr
}
