package cli

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gosst/gosst/mariadb"
)

// Option files, the MariaDB way (docs/configuration.md): every flag of
// every command can be set in a [galera-backup] group of the option files
// the MariaDB client tools read; [client] and its siblings supply the
// connection; the command line wins. One generic mechanism covers every
// flag: after cobra has parsed the command line, each flag of the running
// command that was not given there takes its value from the files.

// appGroup is the option-file group of galera-backup.
const appGroup = "galera-backup"

// Flags that select the option files. They are read from the command line
// only, never from a file.
const (
	flagNoDefaults    = "no-defaults"
	flagDefaultsFile  = "defaults-file"
	flagDefaultsExtra = "defaults-extra-file"
	flagGroupSuffix   = "defaults-group-suffix"
	flagPrintDefaults = "print-defaults"
)

// controlKeys may not appear in an option file.
var controlKeys = []string{flagNoDefaults, flagDefaultsFile, flagDefaultsExtra, flagGroupSuffix, flagPrintDefaults, "help"}

// connKeys are what galera-backup takes from the client groups ([client],
// [client-server], [client-mariadb], [mariadb-client]); the other keys
// there belong to other tools and are left alone.
var connKeys = []string{"user", "password", "host", "port", "socket"}

// addrKeys name the server: given on the command line, none of them is
// taken from a file, so a file's socket= does not add to (or override) a
// --host or --node given by hand. port= is an ordinary key: it applies to
// whichever host is used, as for the client tools.
var addrKeys = []string{"node", "host", "socket"}

// errDefaultsPrinted ends a --print-defaults run successfully.
var errDefaultsPrinted = errors.New("defaults printed")

func addDefaultsFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.Bool(flagNoDefaults, false, "read no option file")
	f.String(flagDefaultsFile, "", "read only this option file (must exist)")
	f.String(flagDefaultsExtra, "", "also read this option file, after the system files and before ~/.my.cnf (must exist)")
	f.String(flagGroupSuffix, "", "also read the groups [galera-backup<SUFFIX>] and [client<SUFFIX>]")
	f.Bool(flagPrintDefaults, false, "print the options the option files give this command, one per line (password masked), and exit")
}

// fileConfig is the outcome of reading the option files for one command.
type fileConfig struct {
	// apply holds, per flag of the running command not given on the
	// command line, the values to set, in order.
	apply []mariadb.Setting
	// printed is what --print-defaults shows.
	printed []mariadb.Setting
	// password and the file it came from, if an option file gives one.
	password, passwordFile string
	warnings               []string
}

// applyOptionFiles reads the option files selected by the defaults flags
// and sets every flag of cmd that the command line left unset. A syntax
// error, an unknown key or a bad value is refused, naming file and line.
func applyOptionFiles(cmd *cobra.Command, g *Globals) error {
	fl := cmd.Flags()
	str := func(name string) string { v, _ := fl.GetString(name); return v }
	bl := func(name string) bool { v, _ := fl.GetBool(name); return v }
	d := mariadb.Defaults{NoDefaults: bl(flagNoDefaults), File: str(flagDefaultsFile),
		ExtraFile: str(flagDefaultsExtra), GroupSuffix: str(flagGroupSuffix)}
	if !fl.Changed(flagDefaultsFile) {
		d.File = "" // a command's own --defaults-file default is not a selection
	}
	opts, err := d.Load()
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("bad configuration: %w", err)}
	}
	fc, err := resolveOptionFiles(cmd, opts, d.GroupSuffix)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("bad configuration: %w", err)}
	}
	if bl(flagPrintDefaults) {
		printDefaults(g.Out, fc.printed)
		return errDefaultsPrinted
	}
	g.origins = map[string]string{}
	for _, s := range fc.apply {
		where := fmt.Sprintf("%s:%d: [%s] %s", s.File, s.Line, s.Group, s.Name)
		if err := fl.Set(s.Name, s.Value); err != nil {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("bad configuration: %s: %w", where, err)}
		}
		g.origins[s.Name] = where // the later line wins, as for the value
	}
	g.password, g.passwordFile = fc.password, fc.passwordFile
	g.configWarnings = fc.warnings
	return nil
}

// resolveOptionFiles checks every setting of the galera-backup and client
// groups against the flags of the whole command tree and works out what
// applies to cmd.
func resolveOptionFiles(cmd *cobra.Command, opts *mariadb.Options, suffix string) (*fileConfig, error) {
	fc := &fileConfig{}
	perFlag, order, err := collectSettings(cmd, opts, suffix, fc)
	if err != nil {
		return nil, err
	}
	fc.apply = pickSettings(cmd.Flags(), perFlag, order)
	return fc, nil
}

// fileEntry is a setting for a flag of the command, and whether it is from
// the galera-backup groups (else a client group).
type fileEntry struct {
	s     mariadb.Setting
	isApp bool
}

// collectSettings checks every setting and returns, for each flag of cmd
// set in the files, its settings in file order, and the flags in the order
// first set. The password, the settings to print and the warnings go
// into fc.
func collectSettings(cmd *cobra.Command, opts *mariadb.Options, suffix string, fc *fileConfig) (map[string][]fileEntry, []string, error) {
	app := mariadb.GroupsWithSuffix(suffix, appGroup)
	client := mariadb.GroupsWithSuffix(suffix, mariadb.ClientGroups()...)
	all := flagsByName()
	fl := cmd.Flags()
	var errs []error
	perFlag := map[string][]fileEntry{} // flag of cmd → settings in file order
	var order []string
	for _, s := range opts.Settings(append(client, app...)...) {
		isApp := slices.Contains(app, s.Group)
		if !isApp && !slices.Contains(connKeys, s.Name) {
			continue // [client] options of other tools
		}
		where := fmt.Sprintf("%s:%d: [%s] %s", s.File, s.Line, s.Group, displayName(s))
		if slices.Contains(controlKeys, s.Name) {
			errs = append(errs, fmt.Errorf("%s: --%s is a command-line option only; it cannot be set in an option file", where, s.Name))
			continue
		}
		if s.Name == "password" {
			if s.Value != "" {
				fc.password, fc.passwordFile = s.Value, s.File
			}
			s.Value = "*****"
			fc.printed = append(fc.printed, s)
			continue
		}
		orig := s
		name, val, err := boolForm(s, all)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		instances := all[name]
		if len(instances) == 0 {
			if s.Loose {
				fc.warnings = append(fc.warnings, where+": unknown option ignored (loose- prefix)")
				continue
			}
			errs = append(errs, fmt.Errorf("%s: unknown option: no galera-backup command has --%s (prefix it with loose- to ignore it)", where, name))
			continue
		}
		if err := checkValue(instances, s, name, val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		has := fl.Lookup(name) != nil
		if !has && cmd.HasParent() {
			continue // a flag of other commands only
		}
		fc.printed = append(fc.printed, orig)
		if !has {
			continue // the root command: printed, nothing to apply
		}
		s.Name, s.Value = name, val
		if _, ok := perFlag[name]; !ok {
			order = append(order, name)
		}
		perFlag[name] = append(perFlag[name], fileEntry{s, isApp})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return perFlag, order, nil
}

// pickSettings returns the settings to apply to the flags fl: none for a
// flag set on the command line, and the server address from one place.
func pickSettings(fl *pflag.FlagSet, perFlag map[string][]fileEntry, order []string) []mariadb.Setting {
	var apply []mariadb.Setting
	addrOnCLI := slices.ContainsFunc(addrKeys, func(k string) bool { return fl.Lookup(k) != nil && fl.Changed(k) })
	addrInApp := false
	for _, k := range addrKeys {
		for _, e := range perFlag[k] {
			addrInApp = addrInApp || e.isApp
		}
	}
	// The client groups name one server the way the client tools do: a
	// host other than localhost means TCP and socket= is unused; host
	// localhost means the socket.
	clientLast := func(k string) (mariadb.Setting, bool) {
		var last mariadb.Setting
		ok := false
		for _, e := range perFlag[k] {
			if !e.isApp {
				last, ok = e.s, true
			}
		}
		return last, ok
	}
	ch, hasHost := clientLast("host")
	_, hasSocket := clientLast("socket")
	tcp := hasHost && ch.Value != "localhost"
	for _, name := range order {
		if fl.Changed(name) {
			continue // the command line wins
		}
		isAddr := slices.Contains(addrKeys, name)
		if isAddr && addrOnCLI {
			continue
		}
		if name == "user" && fl.Lookup("node") != nil && fl.Changed("node") {
			continue // the DSN names the user
		}
		var pick []mariadb.Setting
		for _, e := range perFlag[name] {
			if !e.isApp && isAddr && (addrInApp || (name == "socket" && tcp) || (name == "host" && !tcp && hasSocket)) {
				continue
			}
			pick = append(pick, e.s)
		}
		if len(pick) == 0 {
			continue
		}
		if !isList(fl.Lookup(name)) {
			pick = pick[len(pick)-1:] // the later setting wins
		} else if slices.ContainsFunc(perFlag[name], func(e fileEntry) bool { return e.isApp }) {
			// a repeatable flag takes every [galera-backup] line
		} else {
			pick = pick[len(pick)-1:] // and one server from [client]
		}
		apply = append(apply, pick...)
	}
	return apply
}

// checkValue sets val on every command's instance of the flag (from the
// scratch tree), so a value that one command would refuse is refused
// whichever command runs.
func checkValue(instances []*pflag.Flag, s mariadb.Setting, name, val string) error {
	for _, f := range instances {
		if !s.HasValue && f.Value.Type() != "bool" {
			return fmt.Errorf("--%s needs a value (%s=...)", name, s.Name)
		}
		if err := f.Value.Set(val); err != nil {
			return fmt.Errorf("bad value %q for --%s: %w", s.Value, name, err)
		}
	}
	return nil
}

// boolForm resolves MariaDB's boolean forms: a bare "name" means true, and
// skip-/disable-/enable- prefixes on a boolean flag; on/off/yes/no are
// accepted as values.
func boolForm(s mariadb.Setting, all map[string][]*pflag.Flag) (string, string, error) {
	isBool := func(n string) bool { fs := all[n]; return len(fs) > 0 && fs[0].Value.Type() == "bool" }
	name, val := s.Name, s.Value
	if len(all[name]) == 0 {
		for _, p := range []string{"skip-", "disable-", "enable-"} {
			if rest, ok := strings.CutPrefix(name, p); ok && isBool(rest) {
				if s.HasValue {
					return "", "", fmt.Errorf("%s takes no value", name)
				}
				if p == "enable-" {
					return rest, "true", nil
				}
				return rest, "false", nil
			}
		}
	}
	if !isBool(name) {
		return name, val, nil
	}
	if !s.HasValue {
		return name, "true", nil
	}
	switch strings.ToLower(val) {
	case "on", "yes":
		return name, "true", nil
	case "off", "no":
		return name, "false", nil
	}
	return name, val, nil
}

func isList(f *pflag.Flag) bool {
	t := f.Value.Type()
	return strings.HasSuffix(t, "Array") || strings.HasSuffix(t, "Slice")
}

// flagsByName builds a scratch command tree and returns every flag of
// every command by name, so a value can be checked against each command
// that has the flag (one [galera-backup] group serves them all) without
// touching the running command.
func flagsByName() map[string][]*pflag.Flag {
	out := map[string][]*pflag.Flag{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) {
			if !slices.Contains(controlKeys, f.Name) {
				out[f.Name] = append(out[f.Name], f)
			}
		}
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newCommandTree(&Globals{Out: io.Discard, Err: io.Discard}))
	return out
}

// printDefaults writes the settings as the client tools' --print-defaults
// does: one --name=value per line, in the order read.
func printDefaults(w io.Writer, settings []mariadb.Setting) {
	for _, s := range settings {
		if !s.HasValue {
			fmt.Fprintf(w, "--%s\n", s.Name)
			continue
		}
		fmt.Fprintf(w, "--%s=%s\n", s.Name, s.Value)
	}
}

// withPassword adds the password an option file gave to t.
func (g *Globals) withPassword(t mariadb.Target) mariadb.Target {
	if t.Password == "" {
		t.Password, t.PasswordFile = g.password, g.passwordFile
	}
	return t
}

// displayName is the option name as written (with its loose- prefix).
func displayName(s mariadb.Setting) string {
	if s.Loose {
		return "loose-" + s.Name
	}
	return s.Name
}

// optionSource names where the value of the flag name came from, for a
// message about it: "FILE:LINE: [GROUP] KEY" when an option file set it
// (for a repeatable flag, its last line), else "--name".
func (g *Globals) optionSource(name string) string {
	if w, ok := g.origins[name]; ok {
		return w
	}
	return "--" + name
}

// optionError is the one way a command refuses the value of one or more
// flags after parsing: err prefixed with where each value came from (see
// optionSource). err's own exit status is kept; code applies when err
// carries none.
func (g *Globals) optionError(code int, err error, names ...string) error {
	var ee *ExitError
	if e, ok := err.(*ExitError); ok {
		code, err = e.Code, e.Err
	} else if errors.As(err, &ee) {
		code = ee.Code
	}
	if len(names) == 0 {
		return &ExitError{Code: code, Err: err}
	}
	srcs := make([]string, len(names))
	for i, n := range names {
		srcs[i] = g.optionSource(n)
	}
	return &ExitError{Code: code, Err: fmt.Errorf("%s: %w", strings.Join(srcs, ", "), err)}
}
