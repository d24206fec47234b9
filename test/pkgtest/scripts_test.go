package pkgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeSystemctl records its arguments, one call per line; `is-active`
// answers from $FAKE_ACTIVE as systemctl would (0 active, 3 inactive).
const fakeSystemctl = `#!/bin/sh
echo "$*" >> "$FAKE_LOG"
case "$1" in is-active) [ "$FAKE_ACTIVE" = 1 ] && exit 0 || exit 3 ;; esac
exit 0
`

// runScript runs a maintainer script the way dpkg does (sh SCRIPT ARGS)
// in a private mount namespace whose /run is an empty tmpfs, with
// /run/systemd/system present when systemd is true, and a fake systemctl
// first in PATH. It returns the systemctl calls. The host's /run and
// services are never touched.
func runScript(t *testing.T, script string, systemd, active bool, args ...string) []string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(fakeSystemctl), 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "calls")
	setup := "mount -t tmpfs tmpfs /run"
	if systemd {
		setup += " && mkdir -p /run/systemd/system"
	}
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c",
		setup + ` && exec sh "$0" "$@"`, script}, args...)...)
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "FAKE_LOG=" + log, "FAKE_ACTIVE=0"}
	if active {
		env[2] = "FAKE_ACTIVE=1"
	}
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh %s %s: %v\n%s", filepath.Base(script), strings.Join(args, " "), err, out)
	}
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// canUnshare says whether runScript can work here: it needs root (or a
// user namespace) to mount a private /run.
func canUnshare() error {
	return exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs tmpfs /run").Run()
}

// checkScripts runs the maintainer scripts in dir through the dpkg
// situations that matter and checks what they ask of systemd: an install
// never starts the service, an upgrade restarts it only if it was running,
// a removal stops and disables it, an upgrade does not stop it, and
// without systemd nothing is called.
func checkScripts(t *testing.T, dir string) {
	if err := canUnshare(); err != nil {
		t.Skipf("cannot run the maintainer scripts in a private mount namespace here (%v): only their syntax was checked", err)
	}
	const svc = "galera-backup-schedule.service"
	for _, tc := range []struct {
		name            string
		script          string
		args            []string
		systemd, active bool
		want            []string
	}{
		{"install does not start", "postinst", []string{"configure", ""}, true, true, []string{"daemon-reload"}},
		{"upgrade restarts a running service", "postinst", []string{"configure", "0.9"}, true, true,
			[]string{"daemon-reload", "is-active --quiet " + svc, "restart " + svc}},
		{"upgrade leaves a stopped service stopped", "postinst", []string{"configure", "0.9"}, true, false,
			[]string{"daemon-reload", "is-active --quiet " + svc}},
		{"removal stops and disables", "prerm", []string{"remove"}, true, true, []string{"disable --now " + svc}},
		{"upgrade does not stop", "prerm", []string{"upgrade", "1.0"}, true, true, nil},
		{"removal forgets the unit", "postrm", []string{"remove"}, true, false, []string{"daemon-reload"}},
		{"purge forgets the unit", "postrm", []string{"purge"}, true, false, []string{"daemon-reload"}},
		{"no systemd: postinst", "postinst", []string{"configure", "0.9"}, false, true, nil},
		{"no systemd: prerm", "prerm", []string{"remove"}, false, true, nil},
		{"no systemd: postrm", "postrm", []string{"purge"}, false, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runScript(t, filepath.Join(dir, tc.script), tc.systemd, tc.active, tc.args...)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("%s %s called systemctl %q, want %q", tc.script, strings.Join(tc.args, " "), got, tc.want)
			}
		})
	}
}

// TestMaintainerScripts checks the scripts of the source tree; TestDeb
// checks the ones in the built package the same way.
func TestMaintainerScripts(t *testing.T) {
	checkScripts(t, filepath.Join(repoRoot(t), "packaging", "deb"))
}
