package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/gosst/gosst/internal/text"
)

// ScratchOptions configures a throwaway mariadbd on a restored datadir.
type ScratchOptions struct {
	// DataDir is the datadir to serve. Required.
	DataDir string
	// RunDir holds the socket, pid file, error log and tmpdir (default: the
	// datadir's parent).
	RunDir string
	// Mariadbd is the server binary (default /usr/sbin/mariadbd).
	Mariadbd string
	// BufferPool is innodb_buffer_pool_size (default 64M).
	BufferPool string
	// ExtraArgs are appended to the server's arguments.
	ExtraArgs []string
	// StartTimeout bounds crash recovery and start-up (default 5 minutes).
	StartTimeout time.Duration
}

// ScratchServer is a mariadbd with wsrep off, no network, no binlog and
// --skip-grant-tables, reachable only over its own unix socket. It is for
// checking or replaying into a restored datadir, never for serving clients.
type ScratchServer struct {
	Socket, ErrorLog string
	cmd              *exec.Cmd
	exited           chan error
	stopped          bool
	sockDir          string // private directory holding Socket, removed by Stop ("" when Socket is next to the datadir)
}

// maxSocketPath is the longest unix socket path mariadbd accepts ("The
// socket file path is too long (> 107)").
const maxSocketPath = 107

// scratchSocket returns the socket path for a scratch server whose files
// are named base.*: base.sock when that fits a unix socket path, otherwise
// a socket in a new private directory under the system temporary directory
// (returned as dir, for removal), so that a long target or staging path
// (restore --target-dir deep in a tree) does not make the server refuse
// to start.
func scratchSocket(base string) (sock, dir string, err error) {
	if len(base+".sock") <= maxSocketPath {
		return base + ".sock", "", nil
	}
	dir, err = os.MkdirTemp("", "gosst-sock-")
	if err != nil {
		return "", "", fmt.Errorf("scratch mariadbd: the socket path next to %s is too long and no short one can be made: %w", base, err)
	}
	sock = filepath.Join(dir, "mysqld.sock")
	if len(sock) > maxSocketPath {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("scratch mariadbd: no unix socket path of at most %d bytes: %s and %s are too long (set TMPDIR to a short directory)", maxSocketPath, base+".sock", sock)
	}
	return sock, dir, nil
}

func (s *ScratchServer) removeSockDir() {
	if s.sockDir != "" {
		_ = os.RemoveAll(s.sockDir)
	}
}

// StartScratch starts the server and waits until it accepts connections.
// On failure the error carries the server's error-log tail.
func StartScratch(ctx context.Context, o ScratchOptions) (*ScratchServer, error) {
	if o.DataDir == "" {
		return nil, errors.New("scratch mariadbd: no datadir")
	}
	if o.RunDir == "" {
		o.RunDir = filepath.Dir(o.DataDir)
	}
	if o.Mariadbd == "" {
		o.Mariadbd = "/usr/sbin/mariadbd"
	}
	if o.BufferPool == "" {
		o.BufferPool = "64M"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 5 * time.Minute
	}
	base := filepath.Join(o.RunDir, "scratch-"+filepath.Base(o.DataDir))
	sock, sockDir, err := scratchSocket(base)
	if err != nil {
		return nil, err
	}
	s := &ScratchServer{Socket: sock, ErrorLog: base + ".err", sockDir: sockDir, exited: make(chan error, 1)}
	args := []string{"--no-defaults", "--datadir=" + o.DataDir, "--socket=" + s.Socket, "--skip-networking",
		"--wsrep-on=0", "--skip-grant-tables", "--skip-log-bin", "--skip-slave-start",
		"--innodb-buffer-pool-size=" + o.BufferPool, "--log-error=" + s.ErrorLog,
		"--pid-file=" + base + ".pid", "--tmpdir=" + o.RunDir}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	args = append(args, o.ExtraArgs...)
	s.cmd = exec.Command(o.Mariadbd, args...)
	// Own process group: signals meant for us do not reach it, and we stop
	// it explicitly, by PID.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.removeSockDir()
		return nil, fmt.Errorf("start mariadbd on %s: %w", o.DataDir, err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	db, err := s.DB()
	if err != nil {
		s.Stop()
		return nil, err
	}
	defer db.Close()
	deadline := time.Now().Add(o.StartTimeout)
	for {
		if err := db.PingContext(ctx); err == nil {
			return s, nil
		}
		select {
		case err := <-s.exited:
			s.stopped = true
			s.removeSockDir()
			return nil, fmt.Errorf("mariadbd exited on %s (%v):\n%s", o.DataDir, err, s.logTail(20))
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("mariadbd on %s did not accept connections within %s:\n%s", o.DataDir, o.StartTimeout, s.logTail(20))
		}
	}
}

// DB returns a new connection pool to the server (root, no password).
func (s *ScratchServer) DB() (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", s.Socket
	cfg.Timeout = 2 * time.Second
	cfg.ParseTime = true
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

// Stop shuts the server down cleanly (SIGTERM) and reports an unclean exit.
// After 10 minutes it is killed (InnoDB then recovers at the next start).
// Stop is idempotent.
func (s *ScratchServer) Stop() error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	defer s.removeSockDir()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			return fmt.Errorf("mariadbd did not shut down cleanly (%v):\n%s", err, s.logTail(15))
		}
		return nil
	case <-time.After(10 * time.Minute):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("mariadbd did not shut down within 10 minutes; killed (InnoDB recovers at the next start)")
	}
}

func (s *ScratchServer) logTail(n int) string {
	data, _ := os.ReadFile(s.ErrorLog)
	return text.LastLines(string(data), n)
}
