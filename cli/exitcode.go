package cli

import (
	"errors"
	"strings"
)

// Exit codes of galera-backup, shared by all commands (documented in
// --help and in docs/exit-codes.md). ExitCode is the one place that maps an
// error to a code.
const (
	ExitOK      = 0
	ExitFailure = 1 // the operation failed
	ExitUsage   = 2 // bad flags or arguments
	ExitPartial = 3 // some nodes or objects failed; details in the output
)

// ExitCode maps the error a command returned to the process exit status:
//
//	nil, --print-defaults done           0 ExitOK
//	*ExitError anywhere in the chain     its Code (ExitUsage, ExitPartial, ...)
//	cobra's own argument errors          2 ExitUsage (unknown command, wrong argument count)
//	anything else                        1 ExitFailure
func ExitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil, errors.Is(err, errDefaultsPrinted):
		return ExitOK
	case errors.As(err, &ee):
		return ee.Code
	case isCobraUsage(err):
		return ExitUsage
	}
	return ExitFailure
}

// isCobraUsage recognises the argument errors cobra returns as plain
// strings (no type to test with errors.As): unknown subcommands and
// argument-count checks (cobra.ExactArgs and friends). Flag errors are
// wrapped in an *ExitError by the root's FlagErrorFunc.
func isCobraUsage(err error) bool {
	m := err.Error()
	return strings.HasPrefix(m, "unknown command") || strings.HasPrefix(m, "accepts ")
}
