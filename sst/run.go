// Package sst implements wsrep_sst_gosst, the program mysqld runs for
// wsrep_sst_method=gosst: the joiner (receive, verify, prepare, install,
// report the position), the donor (stream mariabackup's backup to the
// joiner, or with --bypass only the IST position) and their transport.
//
// The mysqld contract (arguments, stdout lines, exit codes) lives in
// sst/wsrep; docs/sst.md is the operator's guide.
package sst

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gosst/gosst/sst/wsrep"
	"github.com/gosst/gosst/stream/wire"
)

// Env is the process environment of one run; tests substitute it.
type Env struct {
	Stdout io.Writer // protocol lines for mysqld
	Stderr io.Writer // log lines (mysqld's error log)
	Getenv func(string) string
	// Environ is the environment handed to mariabackup (os.Environ() if nil).
	Environ []string
}

// Extra exit codes (errno values) beyond those in sst/wsrep.
const (
	ExitAccess   = 13  // EACCES: wrong secret or certificate
	ExitNoSpace  = 28  // ENOSPC: not enough room for the SST
	ExitRemChg   = 78  // EREMCHG: backup is of another cluster state
	ExitTimedOut = 110 // ETIMEDOUT: connect, initial or idle timeout
)

// ExitError carries the exit code for an error.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

func exitf(code int, format string, args ...any) error {
	return &ExitError{Code: code, Err: fmt.Errorf(format, args...)}
}

// ErrParentDied is the cancellation cause when mysqld goes away.
var ErrParentDied = errors.New("mysqld (the --parent process) died")

// ErrInterrupted is the cancellation cause for SIGTERM/SIGINT.
var ErrInterrupted = errors.New("interrupted by a signal")

// ExitCode maps an error to the errno-style exit status mysqld expects.
func ExitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	case errors.Is(err, ErrInterrupted):
		return wsrep.ExitInterrupted
	case errors.Is(err, ErrConfig), errors.Is(err, wsrep.ErrUsage):
		return wsrep.ExitInvalid
	case errors.Is(err, ErrBusy):
		return wsrep.ExitAlready
	case errors.Is(err, ErrProtoVersion), errors.Is(err, wire.ErrVersion):
		return wsrep.ExitProtoNoSupport
	case errors.Is(err, ErrTimeout):
		return ExitTimedOut
	case errors.Is(err, wire.ErrAuth):
		return ExitAccess
	case errors.Is(err, syscall.EADDRINUSE):
		return wsrep.ExitBusy
	case errors.Is(err, syscall.ENOSPC):
		return ExitNoSpace
	}
	return wsrep.ExitPipe
}

// Run is the whole program: parse argv, read the configuration, act as
// joiner or donor, and return the exit status.
func Run(ctx context.Context, argv []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Environ == nil {
		env.Environ = os.Environ()
	}
	boot := &logger{w: env.Stderr, role: "start"}
	a, err := wsrep.Parse(argv)
	if err != nil {
		boot.Errorf("%v", err)
		return wsrep.ExitInvalid
	}
	log := &logger{w: env.Stderr, role: string(a.Role)}
	for _, u := range a.Unknown {
		log.Warnf("ignoring unknown option %s", u)
	}
	c, err := LoadConfig(a)
	for _, w := range c.Warnings {
		log.Warnf("%s", w)
	}
	if err != nil {
		log.Errorf("%v", err)
		return ExitCode(err)
	}
	if c.EncryptOff {
		log.Warnf("%s", c.TLSSummary())
	} else {
		log.Infof("%s", c.TLSSummary())
	}
	out := &output{w: env.Stdout}
	start := time.Now()
	logged := false
	// failed logs the failure once and returns the exit code. The joiner
	// calls it early when it must wait before exiting: its mysqld may be
	// gone before the wait ends.
	failed := func(err error) int {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
		code := ExitCode(err)
		if !logged {
			logged = true
			log.Errorf("failed after %.1f s, exit %d: %v", time.Since(start).Seconds(), code, err)
		}
		return code
	}
	switch a.Role {
	case wsrep.Joiner:
		j := &Joiner{Args: a, Config: c, log: log, out: out, reportFailure: failed}
		err = j.Run(ctx)
	default:
		d := &Donor{Args: a, Config: c, log: log, out: out, getenv: env.Getenv, environ: env.Environ}
		err = d.Run(ctx)
	}
	if err != nil {
		return failed(err)
	}
	log.Infof("finished in %.1f s", time.Since(start).Seconds())
	return 0
}

// watchParent cancels ctx with ErrParentDied as soon as pid is gone (or a
// zombie). mysqld starts the script through sh, so the ppid is no help.
func watchParent(ctx context.Context, cancel context.CancelCauseFunc, pid int) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !alive(pid) {
			cancel(fmt.Errorf("%w (pid %d)", ErrParentDied, pid))
			return
		}
	}
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}
