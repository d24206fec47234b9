package mariabackup

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// growPipe raises the capacity of the pipe behind r (mariabackup's
// stdout) from the default 64 KiB to up to 1 MiB, so that mariabackup
// keeps copying while the donor hashes and sends the previous megabyte
// instead of handing over the stream 64 KiB at a time. Best effort: the
// limit is /proc/sys/fs/pipe-max-size for unprivileged users.
func growPipe(r io.Reader) {
	f, ok := r.(*os.File)
	if !ok {
		return
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20)
	})
}
