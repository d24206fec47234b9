package mariadb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseOptions(t *testing.T) {
	const text = `# comment
; another
[client]
user = monitor
password = "p#ss word"   # trailing comment
socket=/run/mysqld/mysqld.sock

[mysqld]
innodb_data_home_dir=/a
loose-innodb-data-home-dir=/b
log-bin
[MYSQLD.2]
port=3307
[sst]
tca='/etc/ssl/ca.pem'
compressor=zstd -1 # inline
escaped="a\tb\\c"
`
	o, err := ParseOptions(strings.NewReader(text), "test.cnf")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		groups []string
		want   string
		found  bool
	}{
		{"user", []string{"client"}, "monitor", true},
		{"password", []string{"client"}, "p#ss word", true},
		{"innodb_data_home_dir", []string{"mysqld"}, "/b", true},
		{"log_bin", []string{"mysqld"}, "", true},
		{"port", GroupsWithSuffix(".2", "mysqld"), "3307", true},
		{"port", []string{"mysqld"}, "", false},
		{"tca", []string{"sst"}, "/etc/ssl/ca.pem", true},
		{"compressor", []string{"sst"}, "zstd -1", true},
		{"escaped", []string{"SST"}, "a\tb\\c", true},
		{"user", []string{"mysqld"}, "", false},
	}
	for _, tt := range tests {
		got, found := o.Get(tt.name, tt.groups...)
		if got != tt.want || found != tt.found {
			t.Errorf("Get(%q, %v) = %q, %v; want %q, %v", tt.name, tt.groups, got, found, tt.want, tt.found)
		}
	}
}

func TestParseOptionsErrors(t *testing.T) {
	for _, text := range []string{
		"user=x\n",            // outside a group
		"[client\nuser=x\n",   // unterminated header
		"[]\n",                // empty group
		"[client]\n=x\n",      // empty name
		"[client]\nx='open\n", // unterminated quote
		"[client]\nx='a' b\n", // text after quote
		"!frobnicate /tmp\n",  // unknown directive
		"!include\n",          // missing path
	} {
		if _, err := ParseOptions(strings.NewReader(text), "t.cnf"); !errors.Is(err, ErrOptionFile) {
			t.Errorf("%q: want ErrOptionFile, got %v", text, err)
		}
	}
}

func TestIncludes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "conf.d"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("my.cnf", "[mysqld]\nport=1\n!includedir conf.d\n!include extra.cnf\n")
	write("extra.cnf", "[mysqld]\nport=4\n")
	write("conf.d/b.cnf", "[mysqld]\nport=3\n")
	write("conf.d/a.cnf", "[mysqld]\nport=2\n")
	write("conf.d/ignored.txt", "[mysqld]\nport=99\n")
	write("conf.d/ignored.ini", "[mysqld]\nport=98\n") // .ini is Windows-only for the MariaDB tools
	o, err := ReadOptionFile(filepath.Join(dir, "my.cnf"))
	if err != nil {
		t.Fatal(err)
	}
	var seq []string
	for _, s := range o.Group("mysqld") {
		seq = append(seq, s.Value)
	}
	if got := strings.Join(seq, ","); got != "1,2,3,4" {
		t.Fatalf("include order %s, want 1,2,3,4", got)
	}
	write("loop.cnf", "[mysqld]\n!include loop.cnf\n")
	if _, err := ReadOptionFile(filepath.Join(dir, "loop.cnf")); !errors.Is(err, ErrOptionFile) {
		t.Fatalf("include loop: %v", err)
	}
}

func TestTargetConfig(t *testing.T) {
	dir := t.TempDir()
	cnf := filepath.Join(dir, "client.cnf")
	if err := os.WriteFile(cnf, []byte("[client]\nuser=monitor\npassword=s3cret\nsocket=/run/x.sock\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MYSQL_PWD", "from-env")
	tests := []struct {
		name                 string
		target               Target
		net, addr, user, pwd string
	}{
		{"dsn with env password", Target{DSN: "root@tcp(127.0.0.1:3307)/"}, "tcp", "127.0.0.1:3307", "root", "from-env"},
		{"socket", Target{Socket: "/s.sock", User: "u"}, "unix", "/s.sock", "u", "from-env"},
		{"defaults file", Target{DefaultsFile: cnf}, "unix", "/run/x.sock", "monitor", "s3cret"},
		{"dsn wins over defaults address", Target{DSN: "root@tcp(h:1)/", DefaultsFile: cnf}, "tcp", "h:1", "root", "s3cret"},
		{"host and port", Target{Host: "10.0.0.2", Port: 3307, User: "u"}, "tcp", "10.0.0.2:3307", "u", "from-env"},
		{"host, default port", Target{Host: "db1", User: "u"}, "tcp", "db1:3306", "u", "from-env"},
		{"ipv6 host", Target{Host: "::1", Port: 3310, User: "u"}, "tcp", "[::1]:3310", "u", "from-env"},
		{"localhost means the socket", Target{Host: "localhost", Port: 3307, User: "u"}, "unix", DefaultSocket, "u", "from-env"},
		{"localhost with a socket", Target{Host: "localhost", Socket: "/s.sock", User: "u"}, "unix", "/s.sock", "u", "from-env"},
		{"host wins over socket and dsn address", Target{Host: "h", Socket: "/s.sock", DSN: "root@tcp(x:1)/"}, "tcp", "h:3306", "root", "from-env"},
		{"option-file password before MYSQL_PWD", Target{Socket: "/s.sock", User: "u", Password: "Opt-Pw-77", PasswordFile: cnf}, "unix", "/s.sock", "u", "Opt-Pw-77"},
		{"defaults file password before option-file password", Target{DefaultsFile: cnf, Password: "Opt-Pw-77", PasswordFile: cnf}, "unix", "/run/x.sock", "monitor", "s3cret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.target.Config()
			if err != nil {
				t.Fatal(err)
			}
			if c.Net != tt.net || c.Addr != tt.addr || c.User != tt.user || c.Passwd != tt.pwd {
				t.Fatalf("got %s %s %s %s", c.Net, c.Addr, c.User, c.Passwd)
			}
		})
	}
	if err := os.Chmod(cnf, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := Target{DefaultsFile: cnf}.Config()
	var ie *InsecureFileError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable defaults file with a password: %v", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatal("error leaks the password")
	}
	_, err = Target{Socket: "/s.sock", Password: "Opt-Pw-77", PasswordFile: cnf}.Config()
	if !errors.As(err, &ie) || strings.Contains(err.Error(), "Opt-Pw-77") {
		t.Fatalf("option-file password from a group-readable file: %v", err)
	}
	if _, err := (Target{DSN: "not a dsn"}).Config(); err == nil {
		t.Fatal("bad DSN accepted")
	}
}

func FuzzParseOptions(f *testing.F) {
	f.Add("[client]\nuser=a\npassword='b c'\n")
	f.Add("[mysqld]\nloose_x = \"y\\tz\" # c\n[sst]\nflag\n")
	f.Add("[galera-backup]\n--LOOSE-loose_Level=3\nskip-desync\n[client.b]\nhost = db1 # c\n")
	f.Fuzz(func(t *testing.T, text string) {
		if strings.Contains(text, "!include") {
			return // no file system access from the fuzzer
		}
		o, err := ParseOptions(strings.NewReader(text), "fuzz.cnf")
		if err != nil {
			return
		}
		for g, settings := range o.groups {
			if g == "" {
				t.Fatal("empty group accepted")
			}
			if n := len(o.Settings(g)); n != len(settings) {
				t.Fatalf("group %q: %d settings in file order, %d in the group", g, n, len(settings))
			}
			for _, s := range settings {
				if s.Name == "" || s.Name != NormalizeOptionName(s.Name) {
					t.Fatalf("bad name %q", s.Name)
				}
				if s.Group != g || (!s.HasValue && s.Value != "") {
					t.Fatalf("setting %+v in group %q", s, g)
				}
			}
		}
	})
}

// TestGetLastInFile: the setting that comes last in file order wins
// across groups and merged files, as my_print_defaults prints them.
func TestGetLastInFile(t *testing.T) {
	a, err := ParseOptions(strings.NewReader("[mariadb]\nssl-cert=a1\n[mysqld]\nssl_cert=m1\n[galera]\nx=1\n"), "a.cnf")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := a.GetLastInFile("ssl-cert", "mysqld", "mariadb"); v != "m1" {
		t.Errorf("got %q, want m1", v)
	}
	b, err := ParseOptions(strings.NewReader("[mariadb]\nssl-cert=a2\n"), "b.cnf")
	if err != nil {
		t.Fatal(err)
	}
	a.Merge(b)
	if v, ok := a.GetLastInFile("ssl-cert", "mysqld", "mariadb"); v != "a2" || !ok {
		t.Errorf("after merge got %q, %v, want a2 (the later file)", v, ok)
	}
	if _, ok := a.GetLastInFile("ssl-cert", "galera"); ok {
		t.Error("found ssl-cert in [galera]")
	}
}
