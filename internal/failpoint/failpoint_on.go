//go:build gosstfailpoint

package failpoint

import (
	"os"
	"syscall"
)

// Enabled reports whether this binary was built with failpoints.
const Enabled = true

// Armed reports whether Hit(step) kills this process: GOSST_FAILPOINT
// holds step.
func Armed(step string) bool { return step != "" && os.Getenv(Env) == step }

// Hit SIGKILLs this process if the failpoint step is armed; it does not
// return then. Otherwise it does nothing.
func Hit(step string) {
	if !Armed(step) {
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be handled: never go on
}
