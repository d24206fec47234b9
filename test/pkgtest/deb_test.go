package pkgtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/gosst/gosst/cli"
)

// debEntry is one line of `dpkg-deb -c`.
type debEntry struct{ mode, owner, path string }

// debVersion is Debian policy's version syntax without an epoch.
var debVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*(-[A-Za-z0-9.+~]+)?$`)

func run(t *testing.T, ctx context.Context, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// manPages lists the pages gen-man must have written: one per available
// command of the tree, plus wsrep_sst_gosst.
func manPages() []string {
	var pages []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
			return
		}
		pages = append(pages, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1.gz")
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(cli.NewRootCommand(io.Discard, io.Discard))
	return append(pages, "wsrep_sst_gosst.1.gz")
}

// TestDeb builds the package with `make deb` (the target operators and
// releases use) and checks what dpkg would install.
func TestDeb(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the package build (make deb builds nfpm and both binaries)")
	}
	for _, tool := range []string{"make", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to build and check the .deb: %v", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // safety net only
	defer cancel()
	root := repoRoot(t)
	out := t.TempDir()
	t.Logf("make deb DEB_DIR=%s (builds nfpm into .tools when missing)", out)
	run(t, ctx, root, nil, "make", "-C", root, "deb", "DEB_DIR="+out)
	debs, _ := filepath.Glob(filepath.Join(out, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb left %d .deb files in %s, want 1: %v", len(debs), out, debs)
	}
	deb := debs[0]

	t.Run("control", func(t *testing.T) {
		fields := map[string]string{}
		for _, f := range []string{"Package", "Version", "Architecture", "Maintainer", "Depends", "Recommends", "Suggests", "Section", "Description"} {
			fields[f] = strings.TrimSpace(string(run(t, ctx, root, nil, "dpkg-deb", "-f", deb, f)))
		}
		wantVersion := strings.TrimSpace(string(run(t, ctx, root, nil, "sh", "packaging/deb/version.sh")))
		arch := strings.TrimSpace(string(run(t, ctx, root, nil, "dpkg", "--print-architecture")))
		for f, want := range map[string]string{
			"Package": "gosst", "Version": wantVersion, "Architecture": arch,
			"Depends": "mariadb-backup, mariadb-client", "Section": "database",
		} {
			if fields[f] != want {
				t.Errorf("%s: %q, want %q", f, fields[f], want)
			}
		}
		if !debVersion.MatchString(fields["Version"]) {
			t.Errorf("Version %q is not a Debian version", fields["Version"])
		}
		for _, f := range []string{"Maintainer", "Description", "Recommends", "Suggests"} {
			if fields[f] == "" {
				t.Errorf("control field %s is empty", f)
			}
		}
		if got := filepath.Base(deb); got != "gosst_"+wantVersion+"_"+arch+".deb" {
			t.Errorf("file name %s, want gosst_%s_%s.deb", got, wantVersion, arch)
		}
		info := string(run(t, ctx, root, nil, "dpkg-deb", "-I", deb))
		for _, s := range []string{"postinst", "prerm", "postrm", "conffiles"} {
			if !strings.Contains(info, s) {
				t.Errorf("control archive has no %s:\n%s", s, info)
			}
		}
		if cf := string(run(t, ctx, root, nil, "dpkg-deb", "-I", deb, "conffiles")); strings.TrimSpace(cf) != "/etc/gosst/galera-backup.cnf.example" {
			t.Errorf("conffiles: %q, want only /etc/gosst/galera-backup.cnf.example", cf)
		}
	})

	t.Run("contents", func(t *testing.T) {
		var entries []debEntry
		sc := bufio.NewScanner(bytes.NewReader(run(t, ctx, root, nil, "dpkg-deb", "-c", deb)))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 6 {
				t.Fatalf("unexpected dpkg-deb -c line (a symlink or a space in a name?): %q", sc.Text())
			}
			entries = append(entries, debEntry{mode: f[0], owner: f[1], path: strings.TrimPrefix(f[5], ".")})
		}
		files := map[string]string{}
		for _, e := range entries {
			if e.owner != "root/root" {
				t.Errorf("%s is owned by %s, want root/root", e.path, e.owner)
			}
			if strings.HasPrefix(e.mode, "d") {
				if e.mode != "drwxr-xr-x" {
					t.Errorf("directory %s has mode %s", e.path, e.mode)
				}
				continue
			}
			files[e.path] = e.mode
		}
		want := map[string]string{
			"/usr/bin/galera-backup":                             "-rwxr-xr-x",
			"/usr/bin/wsrep_sst_gosst":                           "-rwxr-xr-x",
			"/lib/systemd/system/galera-backup-schedule.service": "-rw-r--r--",
			"/etc/gosst/galera-backup.cnf.example":               "-rw-r--r--",
			"/usr/share/doc/gosst/copyright":                     "-rw-r--r--",
			"/usr/share/doc/gosst/README.md":                     "-rw-r--r--",
			"/usr/share/doc/gosst/operations.md":                 "-rw-r--r--",
			"/usr/share/doc/gosst/changelog.gz":                  "-rw-r--r--",
			"/usr/share/lintian/overrides/gosst":                 "-rw-r--r--",
		}
		for _, p := range manPages() {
			want["/usr/share/man/man1/"+p] = "-rw-r--r--"
		}
		docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
		for _, d := range docs {
			want["/usr/share/doc/gosst/"+filepath.Base(d)] = "-rw-r--r--"
		}
		for p, m := range want {
			if got, ok := files[p]; !ok {
				t.Errorf("missing: %s", p)
			} else if got != m {
				t.Errorf("%s has mode %s, want %s", p, got, m)
			}
		}
		for p := range files {
			if _, ok := want[p]; !ok {
				t.Errorf("unexpected file in the package: %s", p)
			}
		}
	})

	x := t.TempDir()
	run(t, ctx, root, nil, "dpkg-deb", "-x", deb, x)

	t.Run("binaries run", func(t *testing.T) {
		if v := string(run(t, ctx, root, nil, filepath.Join(x, "usr/bin/galera-backup"), "version")); !strings.HasPrefix(v, "galera-backup ") {
			t.Errorf("galera-backup version: %q", v)
		}
		if v := string(run(t, ctx, root, nil, filepath.Join(x, "usr/bin/wsrep_sst_gosst"), "--version")); !strings.HasPrefix(v, "wsrep_sst_gosst ") {
			t.Errorf("wsrep_sst_gosst --version: %q", v)
		}
	})

	t.Run("man pages", func(t *testing.T) {
		for _, p := range manPages() {
			f, err := os.Open(filepath.Join(x, "usr/share/man/man1", p))
			if err != nil {
				t.Error(err)
				continue
			}
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Errorf("%s: not gzip: %v", p, err)
				f.Close()
				continue
			}
			b, err := io.ReadAll(zr)
			f.Close()
			if err != nil {
				t.Errorf("%s: %v", p, err)
				continue
			}
			name := strings.ToUpper(strings.TrimSuffix(p, ".1.gz"))
			if !bytes.Contains(b, []byte(`.TH "`+strings.ReplaceAll(name, "-", `\-`)+`" "1"`)) &&
				!bytes.Contains(b, []byte(`.TH "`+name+`" "1"`)) {
				t.Errorf("%s: no .TH header for %s:\n%.300s", p, name, b)
			}
		}
	})

	t.Run("maintainer scripts", func(t *testing.T) {
		ctl := t.TempDir()
		run(t, ctx, root, nil, "dpkg-deb", "-e", deb, ctl)
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			fi, err := os.Stat(filepath.Join(ctl, s))
			if err != nil {
				t.Error(err)
				continue
			}
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("%s has mode %v, want 0755", s, fi.Mode().Perm())
			}
			run(t, ctx, root, nil, "sh", "-n", filepath.Join(ctl, s))
		}
		checkScripts(t, ctl)
	})

	t.Run("lintian", func(t *testing.T) {
		li, err := exec.LookPath("lintian")
		if err != nil {
			t.Logf("lintian is not installed: the package was not linted (apt-get install lintian to run it)")
			return
		}
		// lintian exits non-zero on errors; judge its tags, not its status.
		o, _ := exec.CommandContext(ctx, li, "--tag-display-limit", "0", deb).Output()
		for _, line := range strings.Split(strings.TrimSpace(string(o)), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || (f[0] != "E:" && f[0] != "W:") {
				continue
			}
			if strings.HasPrefix(f[2], "bogus-mail-host") {
				// make deb's default Maintainer until the project has an address
				t.Logf("lintian (accepted until DEB_MAINTAINER has a default address): %s", line)
				continue
			}
			t.Errorf("lintian: %s", line)
		}
	})

	t.Run("unit", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(x, "lib/systemd/system", unitName))
		if err != nil {
			t.Fatal(err)
		}
		if bad := checkUnit(b); len(bad) > 0 {
			t.Fatalf("%s:\n%s", unitName, strings.Join(bad, "\n"))
		}
		secs, _ := unitSections(b)
		for _, d := range strings.Fields(secs["Unit"]["Documentation"][0]) {
			if p, ok := strings.CutPrefix(d, "file:"); ok {
				if _, err := os.Stat(filepath.Join(x, p)); err != nil {
					t.Errorf("Documentation=%s is not in the package", d)
				}
			}
		}
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Logf("systemd-analyze is not installed: the unit was checked by parsing it (go-systemd's parser and checkUnit) only")
			return
		}
		// systemd-analyze verify wants ExecStart's binary where the unit
		// says; point it at the extracted one, and MANPATH at the
		// extracted pages so Documentation=man: is checked too. It exits
		// 0 on unknown keys and bad values, only warning: any output is
		// a failure.
		dir := t.TempDir()
		u := strings.ReplaceAll(string(b), "/usr/bin/galera-backup", filepath.Join(x, "usr/bin/galera-backup"))
		if err := os.WriteFile(filepath.Join(dir, unitName), []byte(u), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, sa, "verify", filepath.Join(dir, unitName))
		cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(x, "usr/share/man"))
		o, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(o)) > 0 {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, o)
		}
		t.Logf("systemd-analyze verify: no complaint")
	})
}
