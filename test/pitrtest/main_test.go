// Package pitrtest runs galera-backup binlog archive and restore --pitr
// against a real 3-node Galera cluster, real binlogs, mariabackup,
// mariadb-binlog and local storage.
package pitrtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gosst/gosst/cli"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/test/cluster"
)

var (
	clu    *cluster.Cluster
	binDir string // built galera-backup
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	for _, a := range os.Args {
		if a == "-test.short=true" || strings.HasPrefix(a, "-test.list") {
			return m.Run()
		}
	}
	dir, err := os.MkdirTemp("", "gosst-pitr-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", binDir+"/", "github.com/gosst/gosst/cmd/galera-backup").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build galera-backup: %v\n%s", err, out)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	clu, err = cluster.Start(ctx, cluster.Options{Nodes: 3, Dir: filepath.Join(dir, "c"), GcacheSize: "128M"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer clu.Close()
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, clu.Tails(30))
	}
	return code
}

// gb runs galera-backup in-process and returns stdout+stderr and the exit code.
func gb(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut strings.Builder
	code := cli.Main(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), code
}

func mustGB(t *testing.T, args ...string) string {
	t.Helper()
	out, code := gb(t, args...)
	if code != 0 {
		t.Fatalf("galera-backup %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// standalone starts a throwaway mariadbd (wsrep off) on a restored datadir
// and returns a connection and a stop function (also run in t.Cleanup).
func standalone(t *testing.T, datadir string) (*sql.DB, func()) {
	t.Helper()
	srv, err := mariadb.StartScratch(context.Background(), mariadb.ScratchOptions{DataDir: datadir, BufferPool: "32M"})
	if err != nil {
		t.Fatal(err)
	}
	db, err := srv.DB()
	if err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	stop := func() {
		db.Close()
		srv.Stop()
	}
	t.Cleanup(stop)
	return db, stop
}

// archiver is a galera-backup binlog archive --follow child process.
type archiver struct {
	cmd  *exec.Cmd
	out  *strings.Builder
	done chan error
}

func startArchiver(t *testing.T, store string, n *cluster.Node, maxLag string, extra ...string) *archiver {
	t.Helper()
	var out strings.Builder
	cmd := exec.Command(filepath.Join(binDir, "galera-backup"), append([]string{"binlog", "archive", "--follow", "--max-lag", maxLag,
		"--storage", store, "--socket", n.Socket, "--user", "root", "--log-level", "info"}, extra...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = &syncWriter{b: &out}, &syncWriter{b: &out}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &archiver{cmd: cmd, out: &out, done: make(chan error, 1)}
	go func() { a.done <- cmd.Wait() }()
	t.Cleanup(func() { a.kill() })
	return a
}

func (a *archiver) kill() {
	select {
	case <-a.done:
		a.done <- nil
		return
	default:
	}
	_ = a.cmd.Process.Kill()
	<-a.done
	a.done <- nil
}

type syncWriter struct {
	b *strings.Builder
}

var outMu = make(chan struct{}, 1)

func (w *syncWriter) Write(p []byte) (int, error) {
	outMu <- struct{}{}
	defer func() { <-outMu }()
	return w.b.Write(p)
}

func (a *archiver) output() string {
	outMu <- struct{}{}
	defer func() { <-outMu }()
	return a.out.String()
}
