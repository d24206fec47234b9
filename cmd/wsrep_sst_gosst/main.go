// Command wsrep_sst_gosst is the program mysqld runs for
// wsrep_sst_method=gosst, on the joiner and on the donor. It speaks the
// mysqld SST-script contract: arguments in, "ready"/position or
// "done" lines on stdout, log lines on stderr (the server's error log),
// and errno-style exit codes.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/gosst/gosst/internal/version"
	"github.com/gosst/gosst/sst/wsrep"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func logf(level, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "WSREP_SST: [%s] gosst: %s\n", level, fmt.Sprintf(format, args...))
}

func run(argv []string) int {
	if len(argv) == 1 && (argv[0] == "--version" || argv[0] == "version") {
		fmt.Printf("wsrep_sst_gosst %s\n", version.String())
		return 0
	}
	a, err := wsrep.Parse(argv)
	if err != nil {
		logf("ERROR", "%v", err)
		if errors.Is(err, wsrep.ErrUsage) {
			return wsrep.ExitInvalid
		}
		return wsrep.ExitInvalid
	}
	for _, u := range a.Unknown {
		logf("WARNING", "ignoring unknown option %s", u)
	}
	logf("ERROR", "role %s: state transfer is not implemented in gosst %s yet; use wsrep_sst_method=mariabackup", a.Role, version.String())
	return wsrep.ExitNotSupported
}
