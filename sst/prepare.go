package sst

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/gosst/gosst/internal/text"
	"github.com/gosst/gosst/mariabackup"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/sst/wsrep"
)

// What mariabackup --prepare needs to know, and from where.
//
// mariabackup --backup writes backup-my.cnf into the backup: the donor's
// InnoDB page size, data file and undo/redo settings, and, for encryption
// at rest, the key management plugin (plugin_load, plugin_dir) and all of
// that plugin's options, with the donor's paths. --prepare reads it when
// it is given no other option file (and not at all with --no-defaults,
// which then fails on encrypted data: "Couldn't load plugin", "Encryption
// key is not found"). Plugin options can only reach the plugin through an
// option file: on mariabackup's command line they are unknown options
// (exit 7), and after its --mysqld-args they are silently dropped.
//
// So the joiner writes a private option file for --prepare: the backup's
// own backup-my.cnf (the description of the data, without !include
// directives), then a [mysqld] section with this node's own settings that
// prepare needs and that may differ from the donor's: plugin_dir and the
// options of the backup's key management plugin (the key file may live
// elsewhere on this node). Path options (datadir, innodb_*_dir) are never
// taken from this node: prepare works on the staging directory, whose
// layout backup-my.cnf describes. The page size is the data's; this node
// must be configured with the same one or its server will not start, so a
// mismatch stops the SST before anything is deleted.

// PrepareCnfName is the private option file of --prepare, inside the
// staging directory; it is removed when prepare ends.
const PrepareCnfName = "gosst-prepare.cnf"

// maxBackupCnf bounds backup-my.cnf (a real one is well under 2 KiB).
const maxBackupCnf = 1 << 20

// backupCnf is what the joiner reads from the backup's backup-my.cnf.
type backupCnf struct {
	PageSize  int64    // innodb_page_size in bytes, 0 if absent
	Plugins   []string // plugin names from plugin_load/plugin_load_add
	PluginDir string
	// Text is the file without !include/!includedir directives, ready to
	// be the start of the prepare option file.
	Text string
}

// parseBackupCnf reads backup-my.cnf as sent by the donor (untrusted).
func parseBackupCnf(data []byte) (backupCnf, error) {
	var bk backupCnf
	if len(data) > maxBackupCnf {
		return bk, fmt.Errorf("backup-my.cnf is %d bytes (more than %d)", len(data), maxBackupCnf)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return bk, errors.New("backup-my.cnf contains a NUL byte")
	}
	var text strings.Builder
	group := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxBackupCnf+1)
	for lineNo := 1; sc.Scan(); lineNo++ {
		raw := strings.TrimRight(sc.Text(), "\r")
		line := strings.TrimSpace(raw)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '!':
			continue // never follow the donor's includes on this node
		case line[0] == '[':
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return bk, fmt.Errorf("backup-my.cnf line %d: unterminated group %q", lineNo, line)
			}
			group = strings.ToLower(strings.TrimSpace(line[1:end]))
		case group == "mysqld":
			name, val, _ := strings.Cut(line, "=")
			val = unquoteCnf(strings.TrimSpace(val))
			switch mariadb.NormalizeOptionName(strings.TrimSpace(name)) {
			case "innodb-page-size":
				n, err := pageSize(val)
				if err != nil {
					return bk, fmt.Errorf("backup-my.cnf line %d: %w", lineNo, err)
				}
				bk.PageSize = n
			case "plugin-load", "plugin-load-add":
				bk.Plugins = appendPlugins(bk.Plugins, val)
			case "plugin-dir":
				bk.PluginDir = val
			}
		}
		text.WriteString(raw)
		text.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return bk, fmt.Errorf("backup-my.cnf: %w", err)
	}
	bk.Text = text.String()
	return bk, nil
}

func unquoteCnf(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// appendPlugins adds the plugin names of a plugin_load value
// ("name=library;name2=library2" or "library.so").
func appendPlugins(list []string, v string) []string {
	for _, item := range strings.Split(v, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, _, ok := strings.Cut(item, "=")
		if !ok { // a library: its plugin has its name
			name = strings.TrimSuffix(filepath.Base(item), ".so")
		}
		name = mariadb.NormalizeOptionName(strings.TrimSpace(name))
		if name != "" && !strings.ContainsAny(name, " /\\") {
			list = append(list, name)
		}
	}
	return list
}

// pageSize parses an innodb_page_size value: bytes, or with a K suffix.
func pageSize(v string) (int64, error) {
	n, err := text.ParseSize(v)
	if err != nil {
		return 0, fmt.Errorf("innodb_page_size %q: %w", v, err)
	}
	switch n {
	case 4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10:
		return n, nil
	}
	return 0, fmt.Errorf("innodb_page_size %q: not 4k, 8k, 16k, 32k or 64k", v)
}

// defaultPageSize is the server's default innodb_page_size.
const defaultPageSize = 16 << 10

// prepareSetting is one line of the [mysqld] section the joiner adds.
type prepareSetting struct{ Name, Value string }

// prepareSettings picks this node's settings that prepare needs (see the
// comment at the top). A page size that differs from the data's is an
// error: the server could not start on the data after the SST.
func prepareSettings(server []mariadb.Setting, bk backupCnf) ([]prepareSetting, []string, error) {
	var out []prepareSetting
	var warnings []string
	if v := lastSetting(server, "plugin-dir"); v != "" {
		out = append(out, prepareSetting{"plugin_dir", v})
	}
	for _, p := range bk.Plugins {
		prefix := p + "-"
		var names []string
		vals := map[string]string{}
		for _, s := range server {
			if strings.HasPrefix(s.Name, prefix) {
				if _, seen := vals[s.Name]; !seen {
					names = append(names, s.Name)
				}
				vals[s.Name] = s.Value
			}
		}
		if len(names) == 0 {
			warnings = append(warnings, fmt.Sprintf("the backup was taken with plugin %s, but this node's configuration sets none of its options; prepare uses the donor's (backup-my.cnf)", strings.ReplaceAll(p, "-", "_")))
		}
		for _, n := range names {
			out = append(out, prepareSetting{strings.ReplaceAll(n, "-", "_"), vals[n]})
		}
	}
	if bk.PageSize != 0 {
		mine := int64(defaultPageSize)
		how := "not set (default 16384)"
		if v := lastSetting(server, "innodb-page-size"); v != "" {
			n, err := pageSize(v)
			if err != nil {
				return nil, warnings, fmt.Errorf("%w: this node's %v", ErrConfig, err)
			}
			mine, how = n, strconv.FormatInt(n, 10)
		}
		if mine != bk.PageSize {
			return nil, warnings, fmt.Errorf("%w: the donor's data has innodb_page_size=%d, this node's configuration has innodb_page_size %s: its server could not start on that data. Give every node the same innodb_page_size (it is fixed when a datadir is created)", ErrConfig, bk.PageSize, how)
		}
		out = append(out, prepareSetting{"innodb_page_size", strconv.FormatInt(mine, 10)})
	}
	for _, s := range out {
		if strings.ContainsAny(s.Value, "\n\r\x00") {
			return nil, warnings, fmt.Errorf("%w: %s contains a line break", ErrConfig, s.Name)
		}
	}
	return out, warnings, nil
}

// prepareCnf is the text of the prepare option file.
func prepareCnf(bk backupCnf, set []prepareSetting) string {
	var b strings.Builder
	b.WriteString("# Written by wsrep_sst_gosst for mariabackup --prepare and removed after it:\n# the backup's backup-my.cnf, then this node's own settings.\n")
	b.WriteString(bk.Text)
	if len(set) > 0 {
		b.WriteString("\n[mysqld]\n")
		for _, s := range set {
			fmt.Fprintf(&b, "%s=%s\n", s.Name, quoteCnf(s.Value))
		}
	}
	return b.String()
}

// quoteCnf quotes an option-file value when it needs it.
func quoteCnf(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t#;'\"\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(v) + `"`
}

// prepareArgs is the --prepare command line. No secrets: plugin options
// are in the option file (mode 0600).
func prepareArgs(cnf, staging string, c Config) []string {
	args := []string{"--defaults-file=" + cnf, "--prepare", "--target-dir=" + staging}
	if c.UseMemory != "" {
		args = append(args, "--use-memory="+c.UseMemory)
	}
	return append(args, c.ApplyOpts...)
}

// writePrepareCnf reads the backup's backup-my.cnf, checks it against
// this node's configuration and writes the prepare option file. It
// returns the file's path and a description of the settings for the log.
func writePrepareCnf(staging string, c Config, log *logger) (string, error) {
	data, err := os.ReadFile(filepath.Join(staging, "backup-my.cnf"))
	if err != nil {
		return "", exitf(wsrep.ExitPipe, "received backup: %w", err)
	}
	bk, err := parseBackupCnf(data)
	if err != nil {
		return "", exitf(wsrep.ExitPipe, "received backup: %w", err)
	}
	set, warnings, err := prepareSettings(c.Server, bk)
	for _, w := range warnings {
		log.Warnf("%s", w)
	}
	if err != nil {
		return "", exitf(wsrep.ExitInvalid, "%w", err)
	}
	path := filepath.Join(staging, PrepareCnfName)
	if err := os.WriteFile(path, []byte(prepareCnf(bk, set)), 0o600); err != nil {
		return "", exitf(wsrep.ExitInvalid, "write %s: %w", path, err)
	}
	var desc []string
	for _, s := range set {
		desc = append(desc, s.Name+"="+redactValue(s.Name, s.Value))
	}
	if len(bk.Plugins) > 0 {
		desc = append(desc, "key management plugin "+strings.ReplaceAll(strings.Join(bk.Plugins, ", "), "-", "_")+" (from the backup)")
	}
	if len(desc) == 0 {
		desc = append(desc, "none needed")
	}
	log.Infof("prepare reads the backup's backup-my.cnf with this node's settings: %s", strings.Join(desc, ", "))
	return path, nil
}

// serverSettings lists this node's server settings: the server groups of
// its option files, then --mysqld-args (which win, as on the command line).
func serverSettings(o *mariadb.Options, a *wsrep.Args) []mariadb.Setting {
	var out []mariadb.Setting
	for _, g := range mariadb.GroupsWithSuffix(a.DefaultsGroupSuffix, serverGroups...) {
		out = append(out, o.Group(g)...)
	}
	for _, arg := range a.MysqldArgs {
		if !strings.HasPrefix(arg, "--") {
			continue
		}
		name, val, _ := strings.Cut(arg, "=")
		out = append(out, mariadb.Setting{Name: mariadb.NormalizeOptionName(name), Value: val, File: "--mysqld-args"})
	}
	return out
}

// lastSetting returns the last value of a (normalised) option name.
func lastSetting(list []mariadb.Setting, name string) string {
	v := ""
	for _, s := range list {
		if s.Name == name {
			v = strings.TrimSpace(unquoteCnf(strings.TrimSpace(s.Value)))
		}
	}
	return v
}

// applyOpts splits inno-apply-opts into arguments. The stock script hands
// the value to a shell; gosst runs no shell, so quoting is refused rather
// than guessed, and so are options that would change what is prepared.
func applyOpts(v string) ([]string, error) {
	if strings.ContainsAny(v, "'\"\\$`") {
		return nil, errors.New("quotes, backslashes and $ are not supported here; separate options by spaces")
	}
	f := strings.Fields(v)
	if len(f) == 0 {
		return nil, nil
	}
	for _, a := range f {
		if !strings.HasPrefix(a, "--") {
			return nil, fmt.Errorf("%q is not a --option", a)
		}
		name, _, _ := strings.Cut(a, "=")
		switch mariadb.NormalizeOptionName(name) {
		case "defaults-file", "defaults-extra-file", "no-defaults", "defaults-group-suffix",
			"target-dir", "datadir", "prepare", "backup", "copy-back", "move-back", "mysqld-args":
			return nil, fmt.Errorf("%s is set by gosst", name)
		}
	}
	return f, nil
}

// secretName matches option names whose values must not be logged.
var secretName = regexp.MustCompile(`(?i)(filekey|token|password|passwd|secret)`)

func redactValue(name, value string) string {
	if secretName.MatchString(name) && value != "" {
		return "<redacted>"
	}
	return value
}

// mbSpec is how the SST runs mariabackup: its output goes to the error
// log with prefix, and to file (mariabackup.<phase>.log) if not nil; sig
// goes to its process group when the transfer is abandoned.
func mbSpec(log *logger, path string, args []string, prefix string, file *os.File, sig syscall.Signal) mariabackup.Spec {
	return mariabackup.Spec{
		Path: path, Args: args, Signal: sig,
		OnLine:         func(s string) { log.Infof("%s%s", prefix, s) },
		LogFile:        fileWriter(file),
		OnLogFileError: func(err error) { log.Warnf("write mariabackup log file: %v (further lines only in this log)", err) },
	}
}
