package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cnf writes an option file with the given mode into dir.
func cnf(t *testing.T, dir, name, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask
		t.Fatal(err)
	}
	return p
}

// statusNodes runs `status --json` (every node unreachable) and returns
// the node labels it tried, which shows the connection settings in effect.
func statusNodes(t *testing.T, args ...string) ([]string, string, int) {
	t.Helper()
	out, errOut, code := run(t, append([]string{"status", "--json"}, args...)...)
	if code == ExitUsage {
		return nil, errOut, code
	}
	var rows []StatusRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("status output %q (stderr %q): %v", out, errOut, err)
	}
	var nodes []string
	for _, r := range rows {
		nodes = append(nodes, r.Node)
	}
	return nodes, errOut, code
}

// TestOptionFilesConnection: the connection comes from [client] and
// [galera-backup] in the files the client tools read, in their order, and
// the command line wins. Observed through the targets status tries.
func TestOptionFilesConnection(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	t.Setenv("MARIADB_HOME", "")
	t.Setenv("MYSQL_HOME", "")
	cnf(t, home, ".my.cnf", "[client]\nsocket=/tmp/gosst-home.sock\n", 0o600)
	sockOnly := cnf(t, dir, "sock.cnf", "[client]\nsocket=/tmp/gosst-file.sock\n[galera-backup]\ntimeout=2s\n", 0o600)
	extra := cnf(t, dir, "extra.cnf", "[client]\nsocket=/tmp/gosst-extra.sock\n", 0o600)
	clientTCP := cnf(t, dir, "tcp.cnf", "[client]\nsocket=/tmp/gosst-file.sock\nhost=127.0.0.1\nport=1\n", 0o600)
	clientLocal := cnf(t, dir, "local.cnf", "[client]\nhost=localhost\nport=1\nsocket=/tmp/gosst-file.sock\n", 0o600)
	appHosts := cnf(t, dir, "hosts.cnf", "[client]\nsocket=/tmp/gosst-file.sock\n[galera-backup]\nhost=127.0.0.1:1\nhost=[::1]:1\n", 0o600)
	hostOnly := cnf(t, dir, "host.cnf", "[client]\nhost=127.0.0.1\n", 0o600)
	portOnly := cnf(t, dir, "port.cnf", "[client]\nport=1\nsocket=/tmp/gosst-file.sock\n", 0o600)
	suffix := cnf(t, dir, "suffix.cnf", "[client]\nsocket=/tmp/a.sock\n[client.b]\nsocket=/tmp/b.sock\n", 0o600)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"defaults-file socket", []string{"--defaults-file", sockOnly}, []string{"unix:/tmp/gosst-file.sock"}},
		{"defaults-file given on the root", []string{"--defaults-file=" + sockOnly}, []string{"unix:/tmp/gosst-file.sock"}},
		{"command line socket wins", []string{"--defaults-file", sockOnly, "--socket", "/tmp/cli.sock"}, []string{"unix:/tmp/cli.sock"}},
		{"command line host replaces the file's socket", []string{"--defaults-file", sockOnly, "--host", "127.0.0.1:1"}, []string{"tcp:127.0.0.1:1"}},
		{"command line node replaces the file's socket", []string{"--defaults-file", sockOnly, "--node", "u@tcp(127.0.0.1:1)/"}, []string{"tcp:127.0.0.1:1"}},
		{"~/.my.cnf after the system files", nil, []string{"unix:/tmp/gosst-home.sock"}},
		{"~/.my.cnf after the extra file", []string{"--defaults-extra-file", extra}, []string{"unix:/tmp/gosst-home.sock"}},
		{"no-defaults", []string{"--no-defaults"}, []string{"unix:" + defaultSocket}},
		{"client host other than localhost means tcp", []string{"--defaults-file", clientTCP}, []string{"tcp:127.0.0.1:1"}},
		{"client host localhost means the socket", []string{"--defaults-file", clientLocal}, []string{"unix:/tmp/gosst-file.sock"}},
		{"galera-backup hosts replace the client socket", []string{"--defaults-file", appHosts}, []string{"tcp:127.0.0.1:1", "tcp:[::1]:1"}},
		{"command line port with the file's host", []string{"--defaults-file", hostOnly, "--port", "1"}, []string{"tcp:127.0.0.1:1"}},
		{"file port with the command line host", []string{"--defaults-file", portOnly, "--host", "127.0.0.1"}, []string{"tcp:127.0.0.1:1"}},
		{"group suffix", []string{"--defaults-file", suffix, "--defaults-group-suffix", ".b"}, []string{"unix:/tmp/b.sock"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, errOut, code := statusNodes(t, append([]string{"--timeout", "2s"}, tt.args...)...)
			if code != ExitFailure || !slices.Equal(nodes, tt.want) {
				t.Fatalf("exit %d, nodes %q, want exit %d and %q; stderr %q", code, nodes, ExitFailure, tt.want, errOut)
			}
		})
	}

	// The selection flags work before the command name too.
	out, errOut, code := run(t, "--defaults-file", sockOnly, "status", "--json")
	if code != ExitFailure || !strings.Contains(out, "unix:/tmp/gosst-file.sock") {
		t.Fatalf("--defaults-file before the command: exit %d, %q %q", code, out, errOut)
	}

	// Without ~/.my.cnf an extra file is read after the system files.
	if err := os.Remove(filepath.Join(home, ".my.cnf")); err != nil {
		t.Fatal(err)
	}
	nodes, errOut, code := statusNodes(t, "--timeout", "2s", "--defaults-extra-file", extra)
	if code != ExitFailure || !slices.Equal(nodes, []string{"unix:/tmp/gosst-extra.sock"}) {
		t.Fatalf("extra file: exit %d nodes %q stderr %q", code, nodes, errOut)
	}
}

// TestOptionFilesRefused: bad configuration is refused at start with exit
// 2 and a message naming file and line; nothing runs.
func TestOptionFilesRefused(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	tests := []struct {
		name, text string
		want       []string
	}{
		{"unknown key", "[client]\nuser=x\n[galera-backup]\nstorage=/tmp\nstorgae=/tmp\n", []string{":5:", "storgae", "unknown option"}},
		{"bad value for this command", "[galera-backup]\ntimeout=soon\n", []string{":2:", "--timeout", "soon"}},
		{"bad value for another command", "[galera-backup]\n\nlevel=abc\n", []string{":3:", "--level", "abc"}},
		{"bare key needs a value", "[galera-backup]\nstorage\n", []string{":2:", "--storage needs a value"}},
		{"control option in a file", "[galera-backup]\ndefaults-file=/etc/x.cnf\n", []string{":2:", "command-line option only"}},
		{"syntax error", "[galera-backup\nx=1\n", []string{":1:", "group header"}},
		{"several errors at once", "[galera-backup]\nbogus=1\nlevel=x\n", []string{":2:", ":3:"}},
		{"bad log level from a file", "[galera-backup]\nlog-level=loud\n", []string{"--log-level"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := cnf(t, dir, "bad.cnf", tt.text, 0o600)
			out, errOut, code := run(t, "status", "--defaults-file", p, "--socket", filepath.Join(dir, "none.sock"))
			if code != ExitUsage || out != "" {
				t.Fatalf("exit %d (want %d), stdout %q: a bad configuration must stop before any work", code, ExitUsage, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if !strings.Contains(errOut, p) && tt.name != "bad log level from a file" {
				t.Errorf("stderr %q does not name the file", errOut)
			}
		})
	}
	// A missing --defaults-file is refused too.
	_, errOut, code := run(t, "status", "--defaults-file", filepath.Join(dir, "nope.cnf"))
	if code != ExitUsage || !strings.Contains(errOut, "nope.cnf") {
		t.Fatalf("missing defaults file: exit %d, %q", code, errOut)
	}
}

// TestOptionFilesLooseAndForms: loose- unknown keys are only warned about;
// boolean forms and every flag type apply from the file.
func TestOptionFilesLooseAndForms(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	sock := filepath.Join(dir, "none.sock")
	p := cnf(t, dir, "my.cnf", "[galera-backup]\nloose-future-option=1\nsocket="+sock+"\ntimeout = 2s\nloose_json\nlog_format=json\n", 0o600)
	out, errOut, code := run(t, "status", "--defaults-file", p)
	if code != ExitFailure {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(errOut, `"level":"WARN"`) || !strings.Contains(errOut, "loose-future-option") || !strings.Contains(errOut, p+":2") {
		t.Fatalf("no JSON warning naming the loose option and file:line: %q", errOut)
	}
	var rows []StatusRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || rows[0].Node != "unix:"+sock {
		t.Fatalf("json= from the file not applied or wrong node: %q %v", out, err)
	}
	// skip-json turns the boolean off again; the command line still wins.
	p = cnf(t, dir, "my.cnf", "[galera-backup]\nsocket="+sock+"\njson\nskip-json\n", 0o600)
	if out, _, _ := run(t, "status", "--defaults-file", p); !strings.HasPrefix(out, "NODE") {
		t.Fatalf("skip-json ignored: %q", out)
	}
	if out, _, _ := run(t, "status", "--defaults-file", p, "--json"); !strings.HasPrefix(out, "[") {
		t.Fatalf("--json on the command line lost to skip-json in the file: %q", out)
	}
}

// TestPrintDefaults: --print-defaults lists what the files give the
// command, one --key=value per line, password masked, and runs nothing.
func TestPrintDefaults(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	p := cnf(t, dir, "my.cnf", `[client]
user=backup
password="Pw 9f3kQ"
default-character-set=utf8mb4
[galera-backup]
storage=/var/backups/galera
level=3
force
[mysqld]
datadir=/var/lib/mysql
`, 0o600)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--defaults-file", p, "--print-defaults"}, "--user=backup\n--password=*****\n--storage=/var/backups/galera\n--level=3\n--force\n"},
		{[]string{"status", "--defaults-file", p, "--print-defaults"}, "--user=backup\n--password=*****\n"},
		{[]string{"backup", "--print-defaults", "--defaults-file", p, "--level", "9"}, "--user=backup\n--password=*****\n--storage=/var/backups/galera\n--level=3\n--force\n"},
		{[]string{"list", "--no-defaults", "--print-defaults"}, ""},
	}
	for _, tt := range tests {
		out, errOut, code := run(t, tt.args...)
		if code != ExitOK || out != tt.want {
			t.Errorf("%q: exit %d, stdout %q, want %q (stderr %q)", tt.args, code, out, tt.want, errOut)
		}
		if strings.Contains(out+errOut, "9f3kQ") {
			t.Errorf("%q: the password leaked", tt.args)
		}
	}
}

// TestOptionFilePasswordMustBePrivate: a password may come from any
// option file, and such a file must not be readable by others: one rule
// for --defaults-file and the files found by default.
func TestOptionFilePasswordMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	sock := filepath.Join(dir, "none.sock")
	cnf(t, dir, ".my.cnf", "[client]\nuser=monitor\npassword=Pw-9f3kQ\nsocket="+sock+"\n", 0o644)
	out, errOut, code := run(t, "status", "--timeout", "2s")
	if code == ExitOK || !strings.Contains(out, "chmod 600") || !strings.Contains(out, filepath.Join(dir, ".my.cnf")) {
		t.Fatalf("exit %d, out %q, err %q: want a refusal naming the file and chmod 600", code, out, errOut)
	}
	if strings.Contains(out+errOut, "Pw-9f3kQ") {
		t.Fatal("the password leaked into the output")
	}
	if err := os.Chmod(filepath.Join(dir, ".my.cnf"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, _ = run(t, "status", "--timeout", "2s")
	if strings.Contains(out, "chmod 600") || !strings.Contains(out, "unix:"+sock) {
		t.Fatalf("a private ~/.my.cnf is refused or not used: %q", out)
	}
}

func FuzzHostTarget(f *testing.F) {
	for _, s := range []string{"db1", "10.0.0.1:3307", "[::1]:3306", "::1", "a:b", ":1", "[]:1", "h:0", "h:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tg, err := hostTarget(h, 3306)
		if err != nil {
			return
		}
		if tg.Host == "" || tg.Port <= 0 || tg.Port > 65535 {
			t.Fatalf("%q accepted as %+v", h, tg)
		}
	})
}
