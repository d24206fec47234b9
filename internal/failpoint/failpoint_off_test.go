//go:build !gosstfailpoint

package failpoint

import "testing"

// TestReleaseBuildIgnoresEnv: without the gosstfailpoint tag, no step is
// ever armed, whatever GOSST_FAILPOINT holds, and Hit returns.
func TestReleaseBuildIgnoresEnv(t *testing.T) {
	if Enabled {
		t.Fatal("Enabled in a build without the gosstfailpoint tag")
	}
	for _, step := range []string{"swapped", "before-swap", "replayed", "invalidated"} {
		t.Setenv(Env, step)
		if Armed(step) {
			t.Errorf("Armed(%q) with %s=%q in a release build", step, Env, step)
		}
		Hit(step) // the test process would die here
	}
}
