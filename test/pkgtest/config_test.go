package pkgtest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gosst/gosst/cli"
)

const exampleConfig = "galera-backup.cnf.example"

// scheduleKeys are the keys of the example that only `galera-backup
// schedule` has. Their names follow issue #14 and must match the flags of
// the schedule command; once it exists, TestExampleConfig checks that.
var scheduleKeys = []string{"full-schedule", "incremental-schedule", "verify-schedule", "metrics-addr"}

// commentedSetting is a commented-out setting of the example: "#key=value"
// or a bare "#key"; prose comments have a space after the "#".
var commentedSetting = regexp.MustCompile(`^#([a-z][a-z0-9-]*)(=.*)?$`)

// uncommented returns the example with every commented-out setting
// enabled, and the keys so enabled.
func uncommented(b []byte) ([]byte, []string) {
	var out bytes.Buffer
	var keys []string
	for _, line := range strings.Split(string(b), "\n") {
		if m := commentedSetting.FindStringSubmatch(line); m != nil {
			line = line[1:]
			keys = append(keys, m[1])
		}
		out.WriteString(line + "\n")
	}
	return out.Bytes(), keys
}

func hasCommand(name string) bool {
	c := cli.NewRootCommand(new(bytes.Buffer), new(bytes.Buffer))
	for _, s := range c.Commands() {
		if s.Name() == name {
			return true
		}
	}
	return false
}

// TestExampleConfig enables every setting of the shipped example
// configuration and has galera-backup read it: a key that no command has,
// or a value a command would refuse, makes galera-backup exit 2 naming the
// file and line, so an operator who uncomments a line never gets a service
// that refuses to start because of the example.
func TestExampleConfig(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging", "deb", exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	b, keys := uncommented(src)
	for _, k := range append([]string{"user", "password", "socket", "storage", "keep-full", "keep-days", "pitr-window"}, scheduleKeys...) {
		if !slices.Contains(keys, k) {
			t.Errorf("the example has no commented-out %s= setting", k)
		}
	}
	haveSchedule := hasCommand("schedule")
	if !haveSchedule {
		// Until `schedule` is merged, no command has these keys: leave
		// them out and say so, rather than skip the whole check.
		var kept []string
		for _, line := range strings.Split(string(b), "\n") {
			k, _, _ := strings.Cut(line, "=")
			if slices.Contains(scheduleKeys, strings.TrimSpace(k)) {
				continue
			}
			kept = append(kept, line)
		}
		b = []byte(strings.Join(kept, "\n"))
		t.Logf("no `galera-backup schedule` command in this tree: the keys %v of the example are not checked", scheduleKeys)
	}
	f := filepath.Join(t.TempDir(), "galera-backup.cnf")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := cli.Main(context.Background(), []string{"--defaults-file", f, "version"}, &out, &errOut); code != 0 {
		t.Fatalf("galera-backup refuses the example with every setting enabled (exit %d):\n%s", code, errOut.String())
	}
	if !haveSchedule {
		return
	}
	out.Reset()
	errOut.Reset()
	if code := cli.Main(context.Background(), []string{"--defaults-file", f, "schedule", "--print-defaults"}, &out, &errOut); code != 0 {
		t.Fatalf("schedule --print-defaults: exit %d:\n%s", code, errOut.String())
	}
	for _, k := range append([]string{"storage", "keep-full", "keep-days", "pitr-window"}, scheduleKeys...) {
		if !strings.Contains(out.String(), "--"+k+"=") {
			t.Errorf("schedule does not take %s= from [galera-backup]; --print-defaults gave:\n%s", k, out.String())
		}
	}
}

// TestExampleConfigRefusals shows the check above has teeth: a misspelt
// key in the example would be refused.
func TestExampleConfigRefusals(t *testing.T) {
	f := filepath.Join(t.TempDir(), "galera-backup.cnf")
	if err := os.WriteFile(f, []byte("[galera-backup]\nkeep-ful=2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), []string{"--defaults-file", f, "version"}, &out, &errOut)
	if code != cli.ExitUsage || !strings.Contains(errOut.String(), f+":2") {
		t.Fatalf("exit %d, %q: want exit %d naming %s:2", code, errOut.String(), cli.ExitUsage, f)
	}
}
