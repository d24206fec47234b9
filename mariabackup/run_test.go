package mariabackup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fake writes a shell script standing in for mariabackup.
func fake(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mariabackup")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRedactLine(t *testing.T) {
	for in, want := range map[string]string{
		"[00] \t Encryption plugin parameter :  '--file_key_management_filekey=s3cr3t'":   "[00] \t Encryption plugin parameter :  '--file_key_management_filekey=<redacted>'",
		"[00] \t Encryption plugin parameter :  '--hashicorp-key-management-token=hvs.x'": "[00] \t Encryption plugin parameter :  '--hashicorp-key-management-token=<redacted>'",
		"[00] \t Encryption plugin parameter :  '--file_key_management_filename=/k.txt'":  "[00] \t Encryption plugin parameter :  '--file_key_management_filename=/k.txt'",
		"[00] \t Encryption plugin parameter :  '--file_key_management_filekey='":         "[00] \t Encryption plugin parameter :  '--file_key_management_filekey='",
	} {
		if got := RedactLine(in); got != want {
			t.Errorf("RedactLine(%q) = %q, want %q", in, got, want)
		}
	}
	var file bytes.Buffer
	var errlog bytes.Buffer
	readLines(strings.NewReader("a --password=pw1\nb\n"), Spec{OnLine: func(s string) { errlog.WriteString("mb: " + s + "\n") }, LogFile: &file}, NewTail(0))
	if strings.Contains(file.String()+errlog.String(), "pw1") || file.String() != "a --password=<redacted>\nb\n" {
		t.Errorf("file %q, error log %q", file.String(), errlog.String())
	}
}

// TestRunFailureTail: a failing mariabackup's last lines, and its exit
// status, are in the error, however fast it exits after writing them;
// blank lines are not kept, and the tail is bounded.
func TestRunFailureTail(t *testing.T) {
	mb := fake(t, `i=0; while [ $i -lt 3000 ]; do echo "[00] copying file $i"; echo; i=$((i+1)); done >&2
echo "[00] FATAL ERROR: simulated failure" >&2
exit 3
`)
	for _, combined := range []bool{false, true} {
		var file bytes.Buffer
		var lines int
		err := Run(context.Background(), Spec{Path: mb, CombinedOutput: combined, TailLines: 5, LogFile: &file, OnLine: func(string) { lines++ }})
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("combined %v: %v", combined, err)
		}
		var xe *exec.ExitError
		if !errors.As(err, &xe) || xe.ExitCode() != 3 || ee.Canceled {
			t.Errorf("combined %v: %v, want exit status 3", combined, err)
		}
		if !strings.HasSuffix(ee.Tail, "[00] FATAL ERROR: simulated failure") || strings.Count(ee.Tail, "\n") != 4 || !strings.Contains(err.Error(), "FATAL ERROR") {
			t.Errorf("combined %v: tail %q", combined, ee.Tail)
		}
		if lines != 3001 || strings.Count(file.String(), "\n") != 6001 {
			t.Errorf("combined %v: %d lines logged, %d in the file", combined, lines, strings.Count(file.String(), "\n"))
		}
	}
}

// TestPasswordOnlyInEnv: the password reaches mariabackup as MYSQL_PWD
// only; inherited credentials do not reach it at all.
func TestPasswordOnlyInEnv(t *testing.T) {
	mb := fake(t, `echo "args=$*"; echo "pwd=${MYSQL_PWD-unset}"; echo "auth=${WSREP_SST_OPT_AUTH-unset}"; echo "keep=$KEEP"`)
	env := []string{"PATH=" + os.Getenv("PATH"), "MYSQL_PWD=inherited", "WSREP_SST_OPT_AUTH=u:sst", "KEEP=1"}
	for _, tc := range []struct {
		password string
		set      bool
		want     string
	}{
		{"s3cr3t", false, "pwd=s3cr3t"},
		{"", false, "pwd=unset"},
		{"", true, "pwd="},
	} {
		p, err := Start(context.Background(), Spec{Path: mb, Args: []string{"--backup"}, Env: env, Password: tc.password, PasswordSet: tc.set})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		_, _ = out.ReadFrom(p.Stdout)
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		want := "args=--backup\n" + tc.want + "\nauth=unset\nkeep=1\n"
		if out.String() != want {
			t.Errorf("password %q set %v: got\n%s\nwant\n%s", tc.password, tc.set, out.String(), want)
		}
	}
}

// TestCancelKillsGroup: cancelling the context kills mariabackup and
// everything it started (its process group), and Wait returns once the
// output is closed by all of them, with the error marked as cancelled.
func TestCancelKillsGroup(t *testing.T) {
	mb := fake(t, `sleep 1000 & echo started >&2; echo "child $!"; wait`)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		var got []string
		p, err := Start(ctx, Spec{Path: mb, Signal: sig, KillDelay: 10 * time.Minute, OnLine: func(s string) { mu.Lock(); got = append(got, s); mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(p.Stdout).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "child ") {
			t.Fatalf("%q %v", line, err)
		}
		cancel()
		err = p.Wait()
		if !IsCanceled(err) {
			t.Errorf("%v: %v, want a cancelled run", sig, err)
		}
		select {
		case <-p.Drained():
		default:
			t.Errorf("%v: Wait returned before the group's output was closed (the child outlived the cancel)", sig)
		}
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			if ws, ok := xe.Sys().(syscall.WaitStatus); !ok || ws.Signal() != sig {
				t.Errorf("%v: %v", sig, xe)
			}
		}
		mu.Lock()
		if len(got) != 1 || got[0] != "started" {
			t.Errorf("%v: lines %q", sig, got)
		}
		mu.Unlock()
	}
}

func TestStartError(t *testing.T) {
	_, err := Start(context.Background(), Spec{Path: filepath.Join(t.TempDir(), "missing")})
	if err == nil || !strings.Contains(err.Error(), "start ") {
		t.Fatalf("%v", err)
	}
}
