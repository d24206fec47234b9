package mariadb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Defaults selects the option files to read, as the MariaDB client tools'
// --no-defaults, --defaults-file, --defaults-extra-file and
// --defaults-group-suffix do.
type Defaults struct {
	// NoDefaults reads no option file at all.
	NoDefaults bool
	// File, when set, is the only file read (ExtraFile is then ignored,
	// as the client tools ignore it). It must exist.
	File string
	// ExtraFile is read after the system files and before ~/.my.cnf. It
	// must exist.
	ExtraFile string
	// GroupSuffix adds group+suffix after each group read (see
	// GroupsWithSuffix).
	GroupSuffix string

	// SystemFiles replaces the system files (/etc/my.cnf,
	// /etc/mysql/my.cnf, $MARIADB_HOME/my.cnf or $MYSQL_HOME/my.cnf);
	// nil means those. For tests.
	SystemFiles []string
	// Home replaces the home directory holding .my.cnf; empty means the
	// user's. For tests.
	Home string
}

// Files lists the files Load reads, in order; the bool says whether the
// file must exist (the explicitly named ones) or is skipped when missing.
func (d Defaults) Files() []DefaultsFile {
	if d.NoDefaults {
		return nil
	}
	if d.File != "" {
		return []DefaultsFile{{Path: d.File, Required: true}}
	}
	sys := d.SystemFiles
	if sys == nil {
		sys = []string{"/etc/my.cnf", "/etc/mysql/my.cnf"}
		if h := os.Getenv("MARIADB_HOME"); h != "" {
			sys = append(sys, filepath.Join(h, "my.cnf"))
		} else if h := os.Getenv("MYSQL_HOME"); h != "" {
			sys = append(sys, filepath.Join(h, "my.cnf"))
		}
	}
	var out []DefaultsFile
	for _, f := range sys {
		out = append(out, DefaultsFile{Path: f})
	}
	if d.ExtraFile != "" {
		out = append(out, DefaultsFile{Path: d.ExtraFile, Required: true})
	}
	home := d.Home
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	if home != "" {
		out = append(out, DefaultsFile{Path: filepath.Join(home, ".my.cnf")})
	}
	return out
}

// DefaultsFile is one file of the option-file search.
type DefaultsFile struct {
	Path     string
	Required bool
}

// Load reads the selected option files in order and merges them: a later
// setting wins over an earlier one. Missing system and home files are
// skipped; a missing --defaults-file or --defaults-extra-file is an error,
// as are syntax errors and missing !include targets.
func (d Defaults) Load() (*Options, error) {
	all := &Options{groups: map[string][]Setting{}}
	for _, f := range d.Files() {
		o, err := ReadOptionFile(f.Path)
		if err != nil {
			if !f.Required && errors.Is(err, fs.ErrNotExist) && !fileExists(f.Path) {
				continue
			}
			if errors.Is(err, ErrOptionFile) {
				return nil, err // names file and line already
			}
			return nil, fmt.Errorf("%w %s: %w", ErrOptionFile, f.Path, err)
		}
		all.Merge(o)
	}
	return all, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
