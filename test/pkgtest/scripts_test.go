package pkgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeTool stands in for systemctl and deb-systemd-invoke: it records
// its name and arguments, one call per line, and succeeds.
const fakeTool = `#!/bin/sh
echo "$(basename "$0") $*" >> "$FAKE_LOG"
exit 0
`

const enableLink = "etc/systemd/system/multi-user.target.wants/galera-backup-schedule.service"

// runScript runs a maintainer script the way dpkg does (sh SCRIPT ARGS)
// in a private mount namespace whose /run is an empty tmpfs, with
// /run/systemd/system present when systemd is true, fake systemctl and
// deb-systemd-invoke first in PATH, and DPKG_ROOT set to root (files the
// scripts remove are looked for there). It returns the recorded calls.
// The host's /run, /etc and services are never touched.
func runScript(t *testing.T, script, root string, systemd bool, args ...string) []string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"systemctl", "deb-systemd-invoke", "deb-systemd-helper"} {
		if err := os.WriteFile(filepath.Join(bin, tool), []byte(fakeTool), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	log := filepath.Join(dir, "calls")
	setup := "mount -t tmpfs tmpfs /run"
	if systemd {
		setup += " && mkdir -p /run/systemd/system"
	}
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c",
		setup + ` && exec sh "$0" "$@"`, script}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "FAKE_LOG="+log, "DPKG_ROOT="+root)
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
// never starts the service, an upgrade restarts it only if it runs
// (try-restart), a removal stops it and an upgrade does not, a purge
// removes the enablement link, and without systemd nothing is called.
func checkScripts(t *testing.T, dir string) {
	if err := canUnshare(); err != nil {
		t.Skipf("cannot run the maintainer scripts in a private mount namespace here (%v): only their syntax was checked", err)
	}
	const svc = "galera-backup-schedule.service"
	const reload = "systemctl --system daemon-reload"
	for _, tc := range []struct {
		name     string
		script   string
		args     []string
		systemd  bool
		want     []string
		linkGone bool
	}{
		{"install does not start", "postinst", []string{"configure", ""}, true, []string{reload}, false},
		{"upgrade restarts only a running service", "postinst", []string{"configure", "0.9"}, true,
			[]string{reload, "deb-systemd-invoke try-restart " + svc}, false},
		{"removal stops", "prerm", []string{"remove"}, true, []string{"deb-systemd-invoke stop " + svc}, false},
		{"upgrade does not stop", "prerm", []string{"upgrade", "1.0"}, true, nil, false},
		{"removal keeps the enablement", "postrm", []string{"remove"}, true, []string{reload}, false},
		{"purge removes the enablement", "postrm", []string{"purge"}, true, []string{reload}, true},
		{"no systemd: postinst", "postinst", []string{"configure", "0.9"}, false, nil, false},
		{"no systemd: prerm", "prerm", []string{"remove"}, false, nil, false},
		{"no systemd: purge", "postrm", []string{"purge"}, false, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			link := filepath.Join(root, enableLink)
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/lib/systemd/system/"+svc, link); err != nil {
				t.Fatal(err)
			}
			got := runScript(t, filepath.Join(dir, tc.script), root, tc.systemd, tc.args...)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s %s called %q, want %q", tc.script, strings.Join(tc.args, " "), got, tc.want)
			}
			_, err := os.Lstat(link)
			if gone := os.IsNotExist(err); gone != tc.linkGone {
				t.Errorf("%s %s: enablement link removed=%v, want %v", tc.script, strings.Join(tc.args, " "), gone, tc.linkGone)
			}
		})
	}
}

// TestMaintainerScripts checks the scripts of the source tree; TestDeb
// checks the ones in the built package the same way.
func TestMaintainerScripts(t *testing.T) {
	checkScripts(t, filepath.Join(repoRoot(t), "packaging", "deb"))
}
