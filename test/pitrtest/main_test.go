// Package pitrtest runs galera-backup binlog archive and restore --pitr
// against a real 3-node Galera cluster, real binlogs, mariabackup,
// mariadb-binlog and local storage.
package pitrtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gosst/gosst/test/cluster"
	"github.com/gosst/gosst/test/gbtest"
)

var (
	clu    *cluster.Cluster
	binDir string // built galera-backup
)

func TestMain(m *testing.M) {
	os.Exit(gbtest.Main(m, "pitr", func(c *cluster.Cluster, bin string) { clu, binDir = c, bin }))
}

var (
	gb     = gbtest.GB
	mustGB = gbtest.MustGB
)

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

// waitOutput waits until the archiver has printed want at least n times
// in all (it polls the output of a real process; the bound is only a
// safety net). The tests kill and stop at moments chosen by what the
// archiver did, never after a guessed delay.
func (a *archiver) waitOutput(t *testing.T, want string, n int) {
	t.Helper()
	for i := 0; strings.Count(a.output(), want) < n; i++ {
		if i > 3000 {
			t.Fatalf("the archiver printed %q %d times, want %d, in 5 min:\n%s", want, strings.Count(a.output(), want), n, a.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// archived is how many binlog segments the archiver has uploaded.
func (a *archiver) archived() int { return strings.Count(a.output(), "archived binlog") }

func (a *archiver) output() string {
	outMu <- struct{}{}
	defer func() { <-outMu }()
	return a.out.String()
}
