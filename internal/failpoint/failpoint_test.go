package failpoint

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// childEnv makes the test binary, run again by TestHitKillsOnlyTestBuilds,
// call Hit with the step it names and exit 0 if it survives.
const childEnv = "GOSST_FAILPOINT_TEST_CHILD"

func TestMain(m *testing.M) {
	if step, ok := os.LookupEnv(childEnv); ok {
		Hit(step)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestHitKillsOnlyTestBuilds runs Hit in a child process: it must die of
// SIGKILL exactly when the build has failpoints and GOSST_FAILPOINT names
// the step, and never in a release build.
func TestHitKillsOnlyTestBuilds(t *testing.T) {
	for _, tc := range []struct {
		name, armed, step string
		kill              bool // in a build with the gosstfailpoint tag
	}{
		{"armed step", "swapped", "swapped", true},
		{"other step", "swapped", "before-swap", false},
		{"not armed", "", "swapped", false},
		{"empty step", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"="+tc.step, Env+"="+tc.armed)
			out, err := cmd.CombinedOutput()
			killed := false
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				ws, ok := ee.Sys().(syscall.WaitStatus)
				killed = ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
				if !killed {
					t.Fatalf("child: %v\n%s", err, out)
				}
			} else if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if want := tc.kill && Enabled; killed != want {
				t.Errorf("Hit(%q) with %s=%q in a build with Enabled=%v: killed %v, want %v", tc.step, Env, tc.armed, Enabled, killed, want)
			}
		})
	}
}

// TestReleaseBinariesHaveNoFailpoint builds the two shipped binaries as a
// release is built (no tags) and checks that neither mentions a failpoint
// variable: a release binary cannot honour a test hook from its
// environment.
func TestReleaseBinariesHaveNoFailpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both release binaries (make test runs it)")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the release binaries with")
	}
	dir := t.TempDir()
	cmd := exec.Command(goBin, "build", "-o", dir+string(filepath.Separator),
		"github.com/gosst/gosst/cmd/wsrep_sst_gosst", "github.com/gosst/gosst/cmd/galera-backup")
	// Whatever tags this test was built with, the binaries are built as
	// a release is.
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, name := range []string{"wsrep_sst_gosst", "galera-backup"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		// The second name is the joiner's old, environment-only hook.
		for _, s := range []string{Env, "GOSST_TEST_SWAP_FAILPOINT", "test failpoint"} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("release build of %s contains %q: it carries failpoint code", name, s)
			}
		}
	}
}
