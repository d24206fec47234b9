// Package pkgtest checks the Debian package that `make deb` builds: its
// files and modes, control fields, man pages, the systemd unit of
// `galera-backup schedule` and the example configuration. The unit and the
// configuration are also checked from the source tree in -short runs.
package pkgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"
)

const unitName = "galera-backup-schedule.service"

// repoRoot is the directory holding go.mod above the working directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", wd)
		}
	}
}

// unitSections parses a systemd unit file with go-systemd's parser
// (the same syntax systemd reads: sections, continuation lines, comments).
func unitSections(b []byte) (map[string]map[string][]string, error) {
	secs, err := unit.DeserializeSections(strings.NewReader(string(b)))
	if err != nil {
		return nil, err
	}
	m := map[string]map[string][]string{}
	for _, s := range secs {
		if m[s.Section] == nil {
			m[s.Section] = map[string][]string{}
		}
		for _, e := range s.Entries {
			m[s.Section][e.Name] = append(m[s.Section][e.Name], e.Value)
		}
	}
	return m, nil
}

// checkUnit returns every way the unit departs from what docs/operations.md
// promises: the service runs `galera-backup schedule` as mysql, reloads on
// SIGHUP, lets galera-backup stop its own children on SIGTERM, restarts on
// failure but not on bad configuration, and waits for its configuration.
// It is the check used when systemd-analyze is not installed, and runs in
// addition to it otherwise.
func checkUnit(b []byte) []string {
	secs, err := unitSections(b)
	if err != nil {
		return []string{"unit does not parse: " + err.Error()}
	}
	var bad []string
	for name := range secs {
		if !slices.Contains([]string{"Unit", "Service", "Install"}, name) {
			bad = append(bad, fmt.Sprintf("unexpected section [%s]", name))
		}
	}
	one := func(sec, key string) (string, bool) {
		v := secs[sec][key]
		if len(v) != 1 {
			bad = append(bad, fmt.Sprintf("[%s] %s: want exactly one setting, have %d", sec, key, len(v)))
			return "", false
		}
		return v[0], true
	}
	want := func(sec, key, val string) {
		if v, ok := one(sec, key); ok && v != val {
			bad = append(bad, fmt.Sprintf("[%s] %s=%s, want %s", sec, key, v, val))
		}
	}
	if v, ok := one("Service", "ExecStart"); ok {
		f := strings.Fields(v)
		if len(f) < 2 || f[0] != "/usr/bin/galera-backup" || f[1] != "schedule" {
			bad = append(bad, "ExecStart must run /usr/bin/galera-backup schedule, is: "+v)
		}
		if !slices.Contains(f, "--defaults-extra-file=/etc/gosst/galera-backup.cnf") {
			bad = append(bad, "ExecStart must read /etc/gosst/galera-backup.cnf with --defaults-extra-file")
		}
		for _, a := range f {
			if strings.Contains(strings.ToLower(a), "password") {
				bad = append(bad, "a password-like argument on the command line: "+a)
			}
		}
	}
	want("Service", "ExecReload", "/bin/kill -HUP $MAINPID")
	want("Service", "User", "mysql")
	want("Service", "Group", "mysql")
	want("Service", "Restart", "on-failure")
	want("Service", "RestartPreventExitStatus", "2")
	want("Service", "KillMode", "mixed")
	want("Service", "KillSignal", "SIGTERM")
	want("Unit", "ConditionPathExists", "/etc/gosst/galera-backup.cnf")
	want("Install", "WantedBy", "multi-user.target")
	// Settings that would break mariabackup or the restore test.
	for key, refused := range map[string]string{
		"ProtectSystem":          "strict", // the datadir and local storage must stay writable
		"MemoryDenyWriteExecute": "yes",    // mariadbd's PCRE JIT in the restore test
		"PrivateUsers":           "yes",    // the datadir's owner must be the real mysql
		"DynamicUser":            "yes",
	} {
		if slices.Contains(secs["Service"][key], refused) {
			bad = append(bad, fmt.Sprintf("[Service] %s=%s breaks mariabackup or the restore test", key, refused))
		}
	}
	return bad
}

func readUnit(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging", "deb", unitName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnitFile(t *testing.T) {
	if bad := checkUnit(readUnit(t)); len(bad) > 0 {
		t.Fatalf("packaging/deb/%s:\n%s", unitName, strings.Join(bad, "\n"))
	}
}

// TestUnitChecker shows that checkUnit, the check used where
// systemd-analyze is missing, refuses units that would misbehave.
func TestUnitChecker(t *testing.T) {
	good := string(readUnit(t))
	for _, tc := range []struct{ name, old, new, want string }{
		{"runs as root", "User=mysql", "User=root", "User=root, want mysql"},
		{"restarts on bad configuration", "RestartPreventExitStatus=2\n", "", "RestartPreventExitStatus: want exactly one"},
		{"restarts always", "Restart=on-failure", "Restart=always", "Restart=always"},
		{"SIGTERM to every process", "KillMode=mixed", "KillMode=control-group", "KillMode=control-group"},
		{"no reload", "ExecReload=/bin/kill -HUP $MAINPID\n", "", "ExecReload: want exactly one"},
		{"another command", "galera-backup schedule --", "galera-backup backup --", "must run /usr/bin/galera-backup schedule"},
		{"starts unconfigured", "ConditionPathExists=/etc/gosst/galera-backup.cnf\n", "", "ConditionPathExists: want exactly one"},
		{"read-only datadir", "ProtectSystem=full", "ProtectSystem=strict", "ProtectSystem=strict breaks"},
		{"password on the command line", "schedule --defaults", "schedule --password=x --defaults", "password-like argument"},
		{"unknown section", "[Install]", "[Instal]", "unexpected section [Instal]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("the unit no longer contains %q; update the test", tc.old)
			}
			bad := checkUnit([]byte(strings.Replace(good, tc.old, tc.new, 1)))
			if !slices.ContainsFunc(bad, func(s string) bool { return strings.Contains(s, tc.want) }) {
				t.Fatalf("want a complaint containing %q, got %q", tc.want, bad)
			}
		})
	}
}
