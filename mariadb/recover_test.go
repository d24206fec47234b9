package mariadb

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gosst/gosst/ist"
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

// fakeMariadbd writes a script that stands in for mariadbd --wsrep-recover:
// it finds --log-error=, writes body there and runs tail.
func fakeMariadbd(t *testing.T, body, tail string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mariadbd")
	script := "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --log-error=*) log=\"${a#--log-error=}\";; esac; done\n" +
		"printf '%s' '" + body + "' > \"$log\"\necho \"$@\" > \"$log.args\"\n" + tail + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRecoverPosition(t *testing.T) {
	const pos = "6b94087a-e947-11f1-b506-2f33047b60b8:101,0-0-0"
	ctx := t.Context()
	datadir := t.TempDir()
	work := t.TempDir()
	got, err := RecoverPosition(ctx, RecoverOptions{DataDir: datadir, DefaultsFile: "/etc/node.cnf", WorkDir: work,
		Mariadbd: fakeMariadbd(t, "[Note] WSREP: Recovered position: "+pos+"\n", "exit 0")})
	if err != nil || got.String() != pos {
		t.Fatalf("got %v, %v", got, err)
	}
	args, _ := os.ReadFile(filepath.Join(work, "wsrep-recover.err.args"))
	for _, want := range []string{"--defaults-file=/etc/node.cnf --datadir=" + datadir + " --wsrep-recover", "--skip-networking",
		"--socket=" + work, "--pid-file=" + work} {
		if !strings.Contains(string(args), want) {
			t.Errorf("arguments %q lack %q", args, want)
		}
	}
	if !strings.HasPrefix(string(args), "--defaults-file=") {
		t.Errorf("--defaults-file must come first: %q", args)
	}

	_, err = RecoverPosition(ctx, RecoverOptions{DataDir: datadir,
		Mariadbd: fakeMariadbd(t, "[ERROR] InnoDB: Plugin initialization aborted\n", "exit 1")})
	if err == nil || !strings.Contains(err.Error(), "Plugin initialization aborted") {
		t.Fatalf("failed run: %v", err)
	}
	_, err = RecoverPosition(ctx, RecoverOptions{DataDir: datadir,
		Mariadbd: fakeMariadbd(t, "[Note] WSREP: wsrep_on=OFF, skipping position recovery\n", "exit 0")})
	if !errors.Is(err, ist.ErrNoRecoveredPosition) {
		t.Fatalf("skipped recovery: %v", err)
	}
}

// A server that does not finish is killed with its whole process group
// when the run is cancelled; nothing is left running.
func TestRecoverPositionCancel(t *testing.T) {
	work := t.TempDir()
	fifo := filepath.Join(work, "child.pid")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// The child sleeper stands for a server thread that would outlive a
	// kill of the parent alone. Its pid goes through a FIFO: the test
	// cancels only once the child exists.
	m := fakeMariadbd(t, "starting\n", "sleep 600 & echo $! > "+fifo+"\nwait")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pidc := make(chan int, 1)
	go func() {
		data, _ := os.ReadFile(fifo) // blocks until the script writes
		pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		pidc <- pid
		cancel()
	}()
	_, err := RecoverPosition(ctx, RecoverOptions{DataDir: t.TempDir(), WorkDir: work, Mariadbd: m})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "InnoDB recovery resumes") {
		t.Fatalf("got %v", err)
	}
	pid := <-pidc
	// The group was SIGKILLed: the child dies (it may still be finishing
	// its exit when Wait returns). Wait for it to be gone or a zombie; the
	// bound is only a safety net.
	for i := 0; ; i++ {
		st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			return
		}
		if f := strings.Fields(string(st)); len(f) > 2 && (f[2] == "Z" || f[2] == "X") {
			return
		}
		if i == 1000 {
			t.Fatalf("child %d still running 10 s after the kill: %s", pid, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
