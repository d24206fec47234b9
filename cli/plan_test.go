package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProviderSegment(t *testing.T) {
	for in, want := range map[string]int{
		"":                                  0,
		`"gcache.size=8M;gmcast.segment=2"`: 2,
		"gmcast.segment = 3 ; evs.x=1":      3,
		"gmcast.segment=x":                  0,
		"gmcast.segments=4":                 0,
	} {
		if got := providerSegment(in); got != want {
			t.Errorf("providerSegment(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestPlanUsage(t *testing.T) {
	if _, errOut, code := run(t, "plan", "--no-defaults"); code != ExitUsage || !strings.Contains(errOut, "--node") {
		t.Fatalf("no members: exit %d, stderr %q", code, errOut)
	}
	// A member that does not answer: Galera might have chosen it, so plan
	// refuses to guess.
	dir := t.TempDir()
	cnf := filepath.Join(dir, "my.cnf")
	if err := os.WriteFile(cnf, []byte("[mysqld]\ndatadir="+filepath.Join(dir, "data")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run(t, "plan", "--no-defaults", "--defaults-file", cnf, "--socket", filepath.Join(dir, "none.sock"), "--timeout", "2s")
	if code != ExitFailure || !strings.Contains(errOut, "every running member must answer") {
		t.Fatalf("unreachable member: exit %d, stderr %q", code, errOut)
	}
}
