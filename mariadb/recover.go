package mariadb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/gosst/gosst/internal/text"
	"github.com/gosst/gosst/ist"
)

// ErrServerRunning means a mariadbd holds the datadir.
var ErrServerRunning = errors.New("a server is running on this datadir")

// lockedFiles are the files a running server keeps fcntl-locked: InnoDB's
// system tablespace, Aria's control file, Galera's saved state.
var lockedFiles = []string{"ibdata1", "aria_log_control", "grastate.dat"}

// ServerRunning reports whether a process holds one of the locks a running
// mariadbd keeps on files of datadir (dataHome: innodb_data_home_dir when
// it differs from the datadir). It only tests the locks (F_GETLK) and
// takes none, so it cannot disturb a server that is starting.
func ServerRunning(datadir, dataHome string) error {
	paths := make([]string, 0, len(lockedFiles)+1)
	for _, f := range lockedFiles {
		paths = append(paths, filepath.Join(datadir, f))
	}
	if dataHome != "" {
		if !filepath.IsAbs(dataHome) {
			dataHome = filepath.Join(datadir, dataHome)
		}
		paths = append(paths, filepath.Join(dataHome, "ibdata1"))
	}
	for _, p := range paths {
		pid, err := lockHolder(p)
		if err != nil {
			return err
		}
		if pid != 0 {
			return fmt.Errorf("%w: process %d holds a lock on %s; stop the server first", ErrServerRunning, pid, p)
		}
	}
	return nil
}

// lockHolder returns the pid holding a write-conflicting fcntl lock on path,
// 0 when none (or when the file does not exist).
func lockHolder(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("check whether a server uses %s: %w", path, err)
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		return 0, fmt.Errorf("check whether a server uses %s: %w", path, err)
	}
	if lk.Type == syscall.F_UNLCK {
		return 0, nil
	}
	return int(lk.Pid), nil
}

// RecoverOptions configures RecoverPosition.
type RecoverOptions struct {
	// DataDir is the stopped node's datadir. Required.
	DataDir string
	// DefaultsFile is the node's option file, passed to the server as
	// --defaults-file so InnoDB, binlog and wsrep settings match the
	// node's; empty: the server reads its default option files.
	DefaultsFile string
	// DataHome is innodb_data_home_dir, checked for a running server.
	DataHome string
	// Mariadbd is the server binary (default /usr/sbin/mariadbd).
	Mariadbd string
	// WorkDir receives the socket, pid file and error log of the recovery
	// run; it must exist. Empty: a new temporary directory, removed after.
	WorkDir string
	// Timeout bounds the run (default 30 minutes: crash recovery of a big
	// redo log takes a while).
	Timeout time.Duration
}

// RecoverPosition runs mariadbd --wsrep-recover on a stopped node's datadir
// and returns the position the server recovered from InnoDB. The server
// runs with the node's own option files plus its own socket, pid file and
// error log in a private directory, no networking, and as the datadir's
// owner when run by root, so files it creates keep the right owner. It
// exits by itself; on cancellation its process group is killed and waited
// for, so nothing is left running. Like the distribution's galera_recovery
// wrapper, it changes the datadir only as --wsrep-recover itself does
// (InnoDB crash recovery, binlog XA recovery); grastate.dat is not written.
func RecoverPosition(ctx context.Context, o RecoverOptions) (ist.Position, error) {
	if o.DataDir == "" {
		return ist.Position{}, errors.New("wsrep recovery: no datadir")
	}
	if o.Mariadbd == "" {
		o.Mariadbd = "/usr/sbin/mariadbd"
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Minute
	}
	if err := ServerRunning(o.DataDir, o.DataHome); err != nil {
		return ist.Position{}, err
	}
	if o.WorkDir == "" {
		d, err := os.MkdirTemp("", "gosst-recover-")
		if err != nil {
			return ist.Position{}, fmt.Errorf("wsrep recovery: %w", err)
		}
		defer os.RemoveAll(d)
		o.WorkDir = d
	}
	errLog := filepath.Join(o.WorkDir, "wsrep-recover.err")
	var args []string
	if o.DefaultsFile != "" {
		args = append(args, "--defaults-file="+o.DefaultsFile) // must come first
	}
	args = append(args, "--datadir="+o.DataDir, "--wsrep-recover",
		"--log-error="+errLog, "--socket="+filepath.Join(o.WorkDir, "mysqld.sock"),
		"--pid-file="+filepath.Join(o.WorkDir, "mysqld.pid"), "--skip-networking")
	if os.Geteuid() == 0 {
		owner, err := datadirOwner(o.DataDir)
		if err != nil {
			return ist.Position{}, err
		}
		args = append(args, "--user="+owner)
		// The server (running as the owner) writes its log here.
		if err := chownToOwnerOf(o.WorkDir, o.DataDir); err != nil {
			return ist.Position{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.Mariadbd, args...)
	cmd.Dir = o.WorkDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// On cancellation kill the whole group; Wait still reaps the server.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A process that left the group and keeps the output pipe open must
	// not hold us forever.
	cmd.WaitDelay = time.Minute
	out, runErr := cmd.CombinedOutput()
	logData, _ := os.ReadFile(errLog)
	if runErr != nil {
		if ctx.Err() != nil {
			return ist.Position{}, fmt.Errorf("mariadbd --wsrep-recover on %s stopped (time limit %s; %w); InnoDB recovery resumes at the next start:\n%s", o.DataDir, o.Timeout, ctx.Err(), text.LastLines(string(logData), 20))
		}
		return ist.Position{}, fmt.Errorf("mariadbd --wsrep-recover on %s failed (%w):\n%s%s", o.DataDir, runErr, text.LastLines(string(out), 5), text.LastLines(string(logData), 20))
	}
	pos, err := ist.ParseRecoveredPosition(logData)
	if err != nil {
		return ist.Position{}, fmt.Errorf("mariadbd --wsrep-recover on %s: %w:\n%s", o.DataDir, err, text.LastLines(string(logData), 20))
	}
	return pos, nil
}

func datadirOwner(dir string) (string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("wsrep recovery: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "root", nil
	}
	u, err := user.LookupId(strconv.Itoa(int(st.Uid)))
	if err != nil {
		return "", fmt.Errorf("wsrep recovery: owner of %s (uid %d) has no user name: %w", dir, st.Uid, err)
	}
	return u.Username, nil
}

func chownToOwnerOf(path, ref string) error {
	fi, err := os.Stat(ref)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if err := os.Chown(path, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("wsrep recovery: %w", err)
	}
	return nil
}
