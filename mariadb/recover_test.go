package mariadb

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestMain doubles as a lock holder: with GOSST_LOCK_HELPER set, the test
// binary takes an fcntl write lock on that file (as mariadbd does on
// ibdata1), says so, and holds it until its stdin closes.
func TestMain(m *testing.M) {
	if p := os.Getenv("GOSST_LOCK_HELPER"); p != "" {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			os.Exit(3)
		}
		lk := syscall.Flock_t{Type: syscall.F_WRLCK}
		if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
			os.Exit(4)
		}
		os.Stdout.WriteString("locked\n")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestServerRunning(t *testing.T) {
	dir := t.TempDir()
	if err := ServerRunning(dir, ""); err != nil {
		t.Fatalf("empty datadir: %v", err)
	}
	for _, name := range []string{"ibdata1", "aria_log_control", "grastate.dat"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := ServerRunning(dir, ""); err != nil {
		t.Fatalf("unlocked files: %v", err)
	}
	for _, name := range []string{"ibdata1", "grastate.dat"} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "GOSST_LOCK_HELPER="+filepath.Join(dir, name))
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { stdin.Close(); _ = cmd.Wait() }()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil || line != "locked\n" {
				t.Fatalf("lock helper: %q %v", line, err)
			}
			err = ServerRunning(dir, "")
			if !errors.Is(err, ErrServerRunning) || !strings.Contains(err.Error(), name) {
				t.Fatalf("want ErrServerRunning naming %s, got %v", name, err)
			}
		})
	}
}
