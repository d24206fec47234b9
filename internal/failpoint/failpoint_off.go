//go:build !gosstfailpoint

package failpoint

// Enabled reports whether this binary was built with failpoints: release
// builds are not.
const Enabled = false

// Armed is always false in a release build: no step is ever armed.
func Armed(step string) bool { return false }

// Hit does nothing in a release build.
func Hit(step string) {}
