//go:build gosstfailpoint

package backup

import (
	"os"
	"syscall"
)

// In binaries built with -tags gosstfailpoint (tests only), the
// environment variable GOSST_FAILPOINT names a restore step at which the
// process kills itself with SIGKILL, as a crash or kill -9 would.
func init() {
	at := os.Getenv("GOSST_FAILPOINT")
	if at == "" {
		return
	}
	failpoint = func(step string) {
		if step == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}
