// Package mariadb holds the small pieces of MariaDB knowledge that every
// gosst command needs: reading option files the way the server and its
// clients do, building connections without putting secrets on argv, and
// reading a node's wsrep status.
package mariadb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Options is the result of reading option files: group name (lower case)
// to the ordered list of settings in that group. Option names are
// normalised: lower case, '_' replaced by '-', and a leading "loose-"
// removed, so "innodb_data_home_dir" and "loose-innodb-data-home-dir" are
// the same key. Later settings win, as they do for the server.
type Options struct {
	groups map[string][]Setting
	all    []Setting // every setting of every group, in the order read
	n      int       // settings read so far, for Setting.Seq
}

// Setting is one "name[=value]" line of an option file.
type Setting struct {
	Name     string // normalised name
	Value    string // unquoted value; empty for a bare flag
	HasValue bool   // the line had '=' (a bare "flag" line has not)
	Loose    bool   // the name had a "loose-" prefix: unknown names are only warned about
	Group    string // the [group] it is in, lower case
	File     string // the file it came from
	Line     int
	// Seq is the setting's position among all settings read, across
	// groups and files: a later setting has a higher Seq.
	Seq int
}

// ErrOptionFile marks syntax errors in an option file.
var ErrOptionFile = errors.New("option file")

const maxIncludeDepth = 10

// ReadOptionFile reads an option file, following !include and !includedir
// as the server does (files in an included directory are read in name
// order, only those ending in .cnf: on Linux the MariaDB tools skip .ini).
func ReadOptionFile(path string) (*Options, error) {
	o := &Options{groups: map[string][]Setting{}}
	if err := o.readFile(path, 0); err != nil {
		return nil, err
	}
	return o, nil
}

// ParseOptions parses option-file text from r; name is used in errors only.
// !include directives are resolved relative to the current directory.
func ParseOptions(r io.Reader, name string) (*Options, error) {
	o := &Options{groups: map[string][]Setting{}}
	if err := o.parse(r, name, 0); err != nil {
		return nil, err
	}
	return o, nil
}

// Merge adds the settings of other after those of o (other wins).
func (o *Options) Merge(other *Options) {
	if other == nil {
		return
	}
	for g, s := range other.groups {
		for _, st := range s {
			st.Seq += o.n
			o.groups[g] = append(o.groups[g], st)
		}
	}
	for _, st := range other.all {
		st.Seq += o.n
		o.all = append(o.all, st)
	}
	o.n += other.n
}

// Settings returns the settings of any of the given groups in the order
// they were read (file order, includes in place). This is how the MariaDB
// tools see option files: the group a line is in only decides whether it
// is read; among the lines read, the later one wins.
func (o *Options) Settings(groups ...string) []Setting {
	want := make(map[string]bool, len(groups))
	for _, g := range groups {
		want[strings.ToLower(g)] = true
	}
	var out []Setting
	for _, s := range o.all {
		if want[s.Group] {
			out = append(out, s)
		}
	}
	return out
}

func (o *Options) readFile(path string, depth int) error {
	if depth > maxIncludeDepth {
		return fmt.Errorf("%w %s: includes nested more than %d deep", ErrOptionFile, path, maxIncludeDepth)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read option file: %w", err) // *PathError: names the file
	}
	defer f.Close()
	return o.parse(f, path, depth)
}

func (o *Options) parse(r io.Reader, name string, depth int) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	group := ""
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "!") {
			if err := o.directive(line, name, lineNo, depth); err != nil {
				return err
			}
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return fmt.Errorf("%w %s:%d: group header without ']'", ErrOptionFile, name, lineNo)
			}
			group = strings.ToLower(strings.TrimSpace(line[1:end]))
			if group == "" {
				return fmt.Errorf("%w %s:%d: empty group name", ErrOptionFile, name, lineNo)
			}
			continue
		}
		if group == "" {
			return fmt.Errorf("%w %s:%d: option %q outside of any [group]", ErrOptionFile, name, lineNo, line)
		}
		key, val, hasVal := strings.Cut(line, "=")
		raw := strings.ToLower(strings.ReplaceAll(strings.TrimLeft(strings.TrimSpace(key), "-"), "_", "-"))
		loose := strings.HasPrefix(raw, "loose-")
		key = NormalizeOptionName(raw)
		if key == "" {
			return fmt.Errorf("%w %s:%d: empty option name", ErrOptionFile, name, lineNo)
		}
		if hasVal {
			v, err := unquoteValue(strings.TrimSpace(val))
			if err != nil {
				return fmt.Errorf("%w %s:%d: %v", ErrOptionFile, name, lineNo, err)
			}
			val = v
		}
		o.n++
		st := Setting{Name: key, Value: val, HasValue: hasVal, Loose: loose, Group: group, File: name, Line: lineNo, Seq: o.n}
		o.groups[group] = append(o.groups[group], st)
		o.all = append(o.all, st)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w %s: %v", ErrOptionFile, name, err)
	}
	return nil
}

func (o *Options) directive(line, name string, lineNo, depth int) error {
	verb, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return fmt.Errorf("%w %s:%d: %s needs a path", ErrOptionFile, name, lineNo, verb)
	}
	if !filepath.IsAbs(arg) {
		arg = filepath.Join(filepath.Dir(name), arg)
	}
	switch verb {
	case "!include":
		return o.readFile(arg, depth+1)
	case "!includedir":
		entries, err := os.ReadDir(arg)
		if err != nil {
			return fmt.Errorf("%w %s:%d: %v", ErrOptionFile, name, lineNo, err)
		}
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".cnf") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			if err := o.readFile(filepath.Join(arg, n), depth+1); err != nil {
				return err
			}
		}
		return nil
	default:
		return fmt.Errorf("%w %s:%d: unknown directive %s", ErrOptionFile, name, lineNo, verb)
	}
}

// unquoteValue strips one level of quotes and an unquoted trailing
// comment, and resolves the escapes the server's parser knows.
func unquoteValue(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if q := v[0]; q == '\'' || q == '"' {
		end := strings.LastIndexByte(v, q)
		if end == 0 {
			return "", fmt.Errorf("unterminated quote in %q", v)
		}
		rest := strings.TrimSpace(v[end+1:])
		if rest != "" && rest[0] != '#' {
			return "", fmt.Errorf("text after closing quote in %q", v)
		}
		v = v[1:end]
	} else if i := strings.Index(v, " #"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	} else if i := strings.Index(v, "\t#"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	if !strings.ContainsRune(v, '\\') {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' || i+1 == len(v) {
			b.WriteByte(c)
			continue
		}
		i++
		switch v[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 's':
			b.WriteByte(' ')
		case '\\':
			b.WriteByte('\\')
		case '"', '\'':
			b.WriteByte(v[i])
		default:
			b.WriteByte('\\')
			b.WriteByte(v[i])
		}
	}
	return b.String(), nil
}

// NormalizeOptionName lower-cases name, turns '_' into '-', and drops
// leading dashes and "loose-" prefixes. It is idempotent.
func NormalizeOptionName(name string) string {
	name = strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	for {
		trimmed := strings.TrimPrefix(strings.TrimLeft(name, "-"), "loose-")
		if trimmed == name {
			return name
		}
		name = trimmed
	}
}

// Get returns the last value of option name in the given groups, searched
// in order with later groups winning (as "mysqld" then "galera" does for
// the server). The bool is false when the option is not set.
func (o *Options) Get(name string, groups ...string) (string, bool) {
	name = NormalizeOptionName(name)
	var val string
	found := false
	for _, g := range groups {
		for _, s := range o.groups[strings.ToLower(g)] {
			if s.Name == name {
				val, found = s.Value, true
			}
		}
	}
	return val, found
}

// GetLastInFile returns the value of option name that comes last in file
// order among all the given groups, as my_print_defaults prints them
// (so, unlike Get, the order of groups does not matter). The bool is
// false when the option is not set in any of them.
func (o *Options) GetLastInFile(name string, groups ...string) (string, bool) {
	name = NormalizeOptionName(name)
	var best Setting
	found := false
	for _, g := range groups {
		for _, s := range o.groups[strings.ToLower(g)] {
			if s.Name == name && (!found || s.Seq > best.Seq) {
				best, found = s, true
			}
		}
	}
	return best.Value, found
}

// Group returns the settings of one group in file order.
func (o *Options) Group(group string) []Setting {
	return o.groups[strings.ToLower(group)]
}

// GroupsWithSuffix expands base groups with a --defaults-group-suffix the
// way the server does: each base group is read, then base+suffix.
func GroupsWithSuffix(suffix string, base ...string) []string {
	out := make([]string, 0, 2*len(base))
	for _, b := range base {
		out = append(out, b)
		if suffix != "" {
			out = append(out, b+suffix)
		}
	}
	return out
}
