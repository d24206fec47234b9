// Package mariabackup runs mariabackup and reads what it writes: one
// runner for --backup and --prepare, and the parsers of the files it puts
// into a backup (xtrabackup_checkpoints, galera info, binlog info). It is
// a leaf: it imports no other gosst package.
package mariabackup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec describes one run of mariabackup.
type Spec struct {
	// Path is the binary ("mariabackup" from PATH if empty).
	Path string
	// Args is the command line. It must hold no secret: the password goes
	// in Password, plugin options in an option file of mode 0600.
	Args []string
	// Env is the child's environment (os.Environ() if nil). MYSQL_PWD and
	// the SST script's credential variables are removed from it.
	Env []string
	// Password is handed to mariabackup as MYSQL_PWD, set when not empty
	// or when PasswordSet is true (an account without password that must
	// not pick up an inherited MYSQL_PWD).
	Password    string
	PasswordSet bool
	// Dir is the working directory.
	Dir string
	// Signal goes to the child's whole process group when ctx ends
	// (default SIGKILL); the group gets SIGKILL KillDelay later (default
	// 10 s) if it is still there, and SIGKILL if this process dies first.
	Signal    syscall.Signal
	KillDelay time.Duration
	// CombinedOutput sends stdout into the same line reader as stderr
	// (--prepare); otherwise Process.Stdout is a pipe to read (--backup
	// --stream).
	CombinedOutput bool
	// OnLine, when set, gets each non-blank output line, secret option
	// values removed. It is called from one goroutine, in order.
	OnLine func(string)
	// LogFile, when set, gets every output line (secrets removed). After
	// a write error it gets nothing more and OnLogFileError is called.
	LogFile        io.Writer
	OnLogFileError func(error)
	// TailLines bounds the lines kept for error messages (default 20).
	TailLines int
}

// Process is a running mariabackup.
type Process struct {
	// Stdout is the child's standard output (nil with CombinedOutput).
	// Read it to its end (or close it) before calling Wait.
	Stdout  io.ReadCloser
	cmd     *exec.Cmd
	tail    *Tail
	drained chan struct{}
	ctx     context.Context
	delay   time.Duration
	once    sync.Once
	err     error
}

// Start starts mariabackup in a process group of its own, with its output
// read concurrently into the log and the tail.
func Start(ctx context.Context, s Spec) (*Process, error) {
	path := s.Path
	if path == "" {
		path = "mariabackup"
	}
	sig := s.Signal
	if sig == 0 {
		sig = syscall.SIGKILL
	}
	cmd := exec.CommandContext(ctx, path, s.Args...)
	cmd.Cancel = func() error {
		if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil {
			return cmd.Process.Signal(sig)
		}
		return nil
	}
	cmd.WaitDelay = s.KillDelay
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = 10 * time.Second
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = s.Dir
	cmd.Env = childEnv(s.Env, s.Password, s.PasswordSet)
	p := &Process{cmd: cmd, tail: NewTail(s.TailLines), drained: make(chan struct{}), ctx: ctx, delay: cmd.WaitDelay}

	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = pw
	if s.CombinedOutput {
		cmd.Stdout = pw
	} else {
		if p.Stdout, err = cmd.StdoutPipe(); err != nil {
			pr.Close()
			pw.Close()
			return nil, err
		}
		// Every streamed backup wants it (mariabackup writes its
		// chunks, up to 10 MiB, in single writes): see growPipe.
		growPipe(p.Stdout)
	}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		if p.Stdout != nil {
			p.Stdout.Close()
		}
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	pw.Close() // the child has its copy: EOF when it (and its children) exit
	go func() {
		defer close(p.drained)
		defer pr.Close()
		readLines(pr, s, p.tail)
	}()
	return p, nil
}

// Drained is closed once the child's output has been read to its end.
func (p *Process) Drained() <-chan struct{} { return p.drained }

// Tail returns the last lines of the output.
func (p *Process) Tail() *Tail { return p.tail }

// Wait waits for the output to be read to its end, then for the child.
// Once ctx has ended it waits for the output at most KillDelay (a process
// that left the group may hold it open). A failure is an *ExitError
// carrying the last lines of output. Calling it again returns the same
// result.
func (p *Process) Wait() error {
	p.once.Do(func() {
		select {
		case <-p.drained:
		case <-p.ctx.Done():
			t := time.NewTimer(p.delay)
			select {
			case <-p.drained:
			case <-t.C:
			}
			t.Stop()
		}
		err := p.cmd.Wait()
		if err != nil {
			p.err = &ExitError{Err: err, Tail: p.tail.String(), Canceled: p.ctx.Err() != nil}
		}
	})
	return p.err
}

// ExitError is a mariabackup that failed (or was stopped).
type ExitError struct {
	Err      error  // from exec: the exit status or signal
	Tail     string // last lines of output
	Canceled bool   // the context ended first
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%v; last output:\n%s", e.Err, e.Tail)
}

func (e *ExitError) Unwrap() error { return e.Err }

// Run starts mariabackup and waits for it (--prepare).
func Run(ctx context.Context, s Spec) error {
	p, err := Start(ctx, s)
	if err != nil {
		return err
	}
	if p.Stdout != nil {
		_, _ = io.Copy(io.Discard, p.Stdout)
	}
	return p.Wait()
}

// credentialVars are never inherited by mariabackup: the password is
// handed over in MYSQL_PWD only when the caller sets it.
var credentialVars = []string{"MYSQL_PWD=", "WSREP_SST_OPT_AUTH=", "WSREP_SST_OPT_REMOTE_AUTH="}

func childEnv(base []string, password string, set bool) []string {
	if base == nil {
		base = os.Environ()
	}
	env := make([]string, 0, len(base)+1)
next:
	for _, e := range base {
		for _, c := range credentialVars {
			if strings.HasPrefix(e, c) {
				continue next
			}
		}
		env = append(env, e)
	}
	if password != "" || set {
		env = append(env, "MYSQL_PWD="+password)
	}
	return env
}

// readLines copies the child's output line by line to the log, the file
// and the tail, and drains what it cannot use so the child never blocks.
func readLines(r io.Reader, s Spec, tail *Tail) {
	file := s.LogFile
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := RedactLine(sc.Text())
		if strings.TrimSpace(line) != "" { // mariabackup writes blank lines
			tail.Add(line)
			if s.OnLine != nil {
				s.OnLine(line)
			}
		}
		if file != nil {
			if _, err := io.WriteString(file, line+"\n"); err != nil {
				if s.OnLogFileError != nil {
					s.OnLogFileError(err)
				}
				file = nil
			}
		}
	}
	_, _ = io.Copy(io.Discard, r) // never block the child on a long line
}

// Tail keeps the last lines of a child's output for error messages.
type Tail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

// NewTail keeps up to max lines (20 if max <= 0).
func NewTail(max int) *Tail {
	if max <= 0 {
		max = 20
	}
	return &Tail{max: max}
}

// Add appends a line, forgetting the oldest beyond the bound.
func (t *Tail) Add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, s)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

// String is the kept lines, one per line.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// secretParam finds "--<option with a secret-looking name>=<value>" in
// mariabackup's output (it prints every encryption plugin parameter).
var secretParam = regexp.MustCompile(`(?i)(--[a-z0-9_-]*(?:filekey|token|password|passwd|secret)[a-z0-9_-]*=)[^'"\s]+`)

// RedactLine removes secret option values from a line of mariabackup output.
func RedactLine(s string) string {
	return secretParam.ReplaceAllString(s, "${1}<redacted>")
}

// IsCanceled reports whether err is a run stopped by its context.
func IsCanceled(err error) bool {
	var ee *ExitError
	return errors.As(err, &ee) && ee.Canceled
}
