package mariadb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDefaultsFiles checks which files are read and in which order, as
// my_print_defaults 1.8 (MariaDB 11) does on Debian: /etc/my.cnf,
// /etc/mysql/my.cnf, $MARIADB_HOME|$MYSQL_HOME/my.cnf, the
// --defaults-extra-file, then ~/.my.cnf; --defaults-file alone (the extra
// file ignored); --no-defaults nothing.
func TestDefaultsFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sys1 := write("etc/my.cnf", "[client]\nuser=sys1\n[galera-backup]\nlevel=1\n")
	sys2 := write("etc/mysql/my.cnf", "[client]\nuser=sys2\n!includedir conf.d\n")
	write("etc/mysql/conf.d/a.cnf", "[galera-backup]\nlevel=2\n")
	missing := filepath.Join(dir, "etc/none.cnf")
	write("home/.my.cnf", "[client]\nuser=home\n")
	extra := write("extra.cnf", "[client]\nuser=extra\n")
	only := write("only.cnf", "[client]\nuser=only\n")
	base := Defaults{SystemFiles: []string{sys1, missing, sys2}, Home: filepath.Join(dir, "home")}
	with := func(f func(*Defaults)) Defaults { d := base; f(&d); return d }
	tests := []struct {
		name string
		d    Defaults
		want string // user= values in the order read
	}{
		{"system then home", base, "sys1,sys2,home"},
		{"extra file before ~/.my.cnf", with(func(d *Defaults) { d.ExtraFile = extra }), "sys1,sys2,extra,home"},
		{"defaults-file only", with(func(d *Defaults) { d.File = only }), "only"},
		{"defaults-file ignores the extra file", with(func(d *Defaults) { d.File = only; d.ExtraFile = extra }), "only"},
		{"no-defaults", with(func(d *Defaults) { d.NoDefaults = true; d.File = only }), ""},
		{"no home file", with(func(d *Defaults) { d.Home = filepath.Join(dir, "nohome") }), "sys1,sys2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := tt.d.Load()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range o.Settings("client") {
				got = append(got, s.Value)
			}
			if g := strings.Join(got, ","); g != tt.want {
				t.Fatalf("read %q, want %q", g, tt.want)
			}
			if v, _ := o.Get("user", "client"); tt.want != "" && !strings.HasSuffix(tt.want, v) {
				t.Fatalf("the last file does not win: %q", v)
			}
		})
	}

	o, err := base.Load()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := o.Get("level", "galera-backup"); v != "2" {
		t.Fatalf("!includedir of a system file not followed: level=%q", v)
	}

	t.Setenv("MARIADB_HOME", "")
	t.Setenv("MYSQL_HOME", filepath.Join(dir, "mh"))
	files := Defaults{Home: "/h"}.Files()
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	if got, want := strings.Join(paths, " "), "/etc/my.cnf /etc/mysql/my.cnf "+filepath.Join(dir, "mh", "my.cnf")+" /h/.my.cnf"; got != want {
		t.Fatalf("default files %q, want %q", got, want)
	}
}

func TestDefaultsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.cnf")
	if err := os.WriteFile(bad, []byte("[client]\nuser=a\n[broken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	brokenInclude := filepath.Join(dir, "inc.cnf")
	if err := os.WriteFile(brokenInclude, []byte("[client]\n!include "+filepath.Join(dir, "gone.cnf")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	none := filepath.Join(dir, "none.cnf")
	tests := []struct {
		name string
		d    Defaults
		want string
	}{
		{"missing defaults-file", Defaults{File: none}, none},
		{"missing extra file", Defaults{SystemFiles: []string{}, Home: dir, ExtraFile: none}, none},
		{"syntax error names file and line", Defaults{File: bad}, bad + ":3"},
		{"syntax error in a system file", Defaults{SystemFiles: []string{bad}, Home: dir}, bad + ":3"},
		{"missing include target", Defaults{SystemFiles: []string{brokenInclude}, Home: dir}, "gone.cnf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.d.Load()
			if !errors.Is(err, ErrOptionFile) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrOptionFile naming %q", err, tt.want)
			}
		})
	}
}

func TestSettingsOrderAndLoose(t *testing.T) {
	o, err := ParseOptions(strings.NewReader("[client]\nuser=a\n[galera-backup]\nuser=b\nloose_Future_Key=1\nflag\n[client]\nuser=c\n[other]\nuser=d\n"), "t.cnf")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range o.Settings("galera-backup", "client") {
		got = append(got, s.Group+":"+s.Name+"="+s.Value)
	}
	if g := strings.Join(got, " "); g != "client:user=a galera-backup:user=b galera-backup:future-key=1 galera-backup:flag= client:user=c" {
		t.Fatalf("settings %q: want file order across groups", g)
	}
	s := o.Settings("galera-backup")
	if !s[1].Loose || s[0].Loose || s[1].Line != 5 || s[2].HasValue || !s[1].HasValue {
		t.Fatalf("loose/has-value/line wrong: %+v", s)
	}
}
