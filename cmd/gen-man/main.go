// Command gen-man writes one gzipped man page (section 1) per command of
// the galera-backup command tree, plus a page for wsrep_sst_gosst, into a
// directory. `make deb` runs it; the pages are generated from the same
// cobra commands the binary runs, so they cannot drift from --help.
//
//	go run ./cmd/gen-man -out DIR [-date 2006-01-02] [-version V]
//
// The output is reproducible: the date comes from -date (default: the
// SOURCE_DATE_EPOCH environment variable, else today), and the gzip
// headers carry no name and no time.
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/gosst/gosst/cli"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "gen-man: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("gen-man", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write the NAME.1.gz pages into (created if missing)")
	date := fs.String("date", "", "date printed in the pages, YYYY-MM-DD (default: SOURCE_DATE_EPOCH, else today)")
	version := fs.String("version", "", "version printed in the pages' footer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return errors.New("usage: gen-man -out DIR [-date YYYY-MM-DD] [-version V]")
	}
	d, err := pageDate(*date)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	source := "gosst"
	if *version != "" {
		source = "gosst " + *version
	}
	root := cli.NewRootCommand(io.Discard, io.Discard)
	n, err := writeTree(root, *out, d, source)
	if err != nil {
		return err
	}
	if err := writeGz(filepath.Join(*out, "wsrep_sst_gosst.1.gz"), sstPage(d, source)); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "gen-man: wrote %d pages into %s\n", n+1, *out)
	return nil
}

func pageDate(s string) (time.Time, error) {
	if s != "" {
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("-date %q: want YYYY-MM-DD", s)
		}
		return t, nil
	}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		sec, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", e, err)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Now().UTC(), nil
}

// writeTree writes a page for cmd and every available subcommand (help
// and hidden commands have none), named like git's: galera-backup-binlog-archive.1.gz.
func writeTree(cmd *cobra.Command, dir string, d time.Time, source string) (int, error) {
	n := 0
	for _, c := range cmd.Commands() {
		if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
			continue
		}
		k, err := writeTree(c, dir, d, source)
		if err != nil {
			return n, err
		}
		n += k
	}
	cmd.DisableAutoGenTag = true
	hdr := &doc.GenManHeader{Section: "1", Date: &d, Source: source, Manual: "gosst manual"}
	var buf bytes.Buffer
	if err := doc.GenMan(cmd, hdr, &buf); err != nil {
		return n, fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	name := strings.ReplaceAll(cmd.CommandPath(), " ", "-") + ".1.gz"
	if err := writeGz(filepath.Join(dir, name), buf.Bytes()); err != nil {
		return n, err
	}
	return n + 1, nil
}

// writeGz writes b gzipped at the best level, without name or time in the
// header (as dh_compress does), through a temporary file and a rename.
func writeGz(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gen-man-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	zw, err := gzip.NewWriterLevel(tmp, gzip.BestCompression)
	if err != nil {
		tmp.Close()
		return err
	}
	if _, err := zw.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := errors.Join(zw.Close(), tmp.Chmod(0o644), tmp.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

// sstPage is the page of wsrep_sst_gosst, which is not a cobra command:
// mysqld runs it with the SST-script arguments.
func sstPage(d time.Time, source string) []byte {
	return fmt.Appendf(nil, `.TH "WSREP_SST_GOSST" "1" "%s" "%s" "gosst manual"
.SH NAME
wsrep_sst_gosst \- state snapshot transfer method gosst for MariaDB Galera Cluster
.SH SYNOPSIS
.B wsrep_sst_gosst
.RB [ \-\-version ]
.SH DESCRIPTION
mysqld runs this program itself, on the joiner and on the donor, when a
node of the cluster is configured with
.B wsrep_sst_method=gosst
in its [mysqld] or [galera] group. It is not meant to be run by hand.
It streams a mariabackup snapshot from the donor to the joiner, compressed
and over TLS when configured, verifies and prepares it on the joiner, and
swaps it into the data directory only once it is complete.
.PP
It must be installed on every node, in mysqld's basedir/bin
(/usr/bin on Debian), because the donor runs the method the joiner asked for.
Options are read from the [sst] group of the server's option files.
Log lines go to stderr, which mysqld copies into its error log.
.SH OPTIONS
.TP
.B \-\-version
print the version and exit.
.SH SEE ALSO
.BR galera-backup (1),
.BR mariadb-backup (1),
/usr/share/doc/gosst/README.md
`, d.Format(time.DateOnly), source)
}
