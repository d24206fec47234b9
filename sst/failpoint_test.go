//go:build !gosstfailpoint

package sst

import (
	"strings"
	"testing"

	"github.com/gosst/gosst/internal/failpoint"
)

// TestSwapStepIgnoresEnvInReleaseBuild: a release joiner goes on after
// every swap step whatever its environment names (the failpoint variable
// or the joiner's former test variable). Were a hook honoured, this test
// process would die of SIGKILL here.
func TestSwapStepIgnoresEnvInReleaseBuild(t *testing.T) {
	var log strings.Builder
	j := &Joiner{Config: DefaultConfig(), log: &logger{w: &log, role: "joiner"}}
	for _, step := range SwapSteps {
		t.Setenv(failpoint.Env, step)
		t.Setenv("GOSST_TEST_SWAP_FAILPOINT", step)
		j.swapStep(step)
	}
	if strings.Contains(log.String(), "failpoint") {
		t.Errorf("a release joiner logged a failpoint:\n%s", log.String())
	}
}
