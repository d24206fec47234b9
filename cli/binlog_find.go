package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gosst/gosst/binlog"
	"github.com/gosst/gosst/pitr"
)

type binlogFindOptions struct {
	storageOptions
	keyOptions
	BinlogDir string
	Tables    []string
	Kinds     []string
	Since     string
	Until     string
	JSON      bool
}

func newBinlogFindCommand(g *Globals) *cobra.Command {
	o := &binlogFindOptions{}
	cmd := &cobra.Command{
		Use:   "find",
		Short: "Find transactions (the bad DROP or DELETE) in the binlog archive or a node's binlogs",
		Long: `find lists the transactions of the archived binary logs (or, with
--binlog-dir, of a live node's binlog files) with their GTID, commit time,
server id, kind, tables and row counts, oldest first, so that "restore to just
before the DROP" is one search and one restore:

  galera-backup binlog find --table shop.orders --kind DDL --since '2026-12-05 09:00:00'
  galera-backup restore --pitr-gtid <the GTID it printed> --target-dir /srv/pitr

restore --pitr-gtid G restores everything before transaction G and not G
itself, so the GTID of the bad transaction is the one to give: find prints
the ready command under each transaction.

Kinds: DDL (the statement is printed; account statements without their
credentials), INSERT, UPDATE, DELETE; a transaction that mixes them shows
e.g. INSERT+DELETE and matches each of its kinds. ROWS is the exact number of
rows its row events write, change or delete (binlog_format=ROW, the Galera
default; DDL counts 0); "?" when some change is not countable (statement-
based DML, compressed row events). --table takes db.table, table (any
database) or db.*; a DROP DATABASE matches every table of its database.
--since (inclusive) and --until (exclusive) take RFC 3339 or
'YYYY-MM-DD HH:MM:SS' in the local time zone; commit times have 1 s
resolution. Repeat --table and --kind to match any of them.

From the archive, each segment is downloaded to a scratch directory in
$TMPDIR, verified (size, SHA-256, decryption) exactly as a restore does, read
and deleted; segments whose index shows no commit in --since/--until are not
downloaded. Encrypted archives need --identity or --passphrase-file.
--binlog-dir reads a node's binlog files in place, read-only (the active
file up to its last complete event); it needs no server connection.

--json prints one JSON object per line per transaction: gtid, time,
server_id, kind (a string, or a list when mixed), tables, rows (null when not
countable), table_rows, statement (DDL and statement-based DML; the original
SQL of row events when the server logs it), node, file, offset and
restore_before (the --pitr-gtid value; absent for a node-local GTID that the
archive does not replay).`,
		Example: `  galera-backup binlog find --table shop.orders --kind DDL --kind DELETE
  galera-backup binlog find --table shop.orders --since '2026-12-05 09:00:00' --until '2026-12-05 10:00:00' --json
  galera-backup binlog find --binlog-dir /var/lib/mysql --table orders --kind DELETE`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBinlogFind(cmd, g, o)
		},
	}
	o.storageOptions.addFlags(cmd, g)
	o.addDecryptFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.BinlogDir, "binlog-dir", "", "read this directory's binlog files (a live node's datadir) instead of the archive")
	f.StringArrayVar(&o.Tables, "table", nil, "only transactions touching db.table, table (any database) or db.* (repeatable)")
	f.StringArrayVar(&o.Kinds, "kind", nil, "only transactions with a statement of this kind: DDL, INSERT, UPDATE, DELETE (repeatable)")
	f.StringVar(&o.Since, "since", "", "only transactions committed at or after this time")
	f.StringVar(&o.Until, "until", "", "only transactions committed before this time")
	f.BoolVar(&o.JSON, "json", false, "print one JSON object per transaction and line")
	return cmd
}

// parseFindTime reads --since/--until: RFC 3339, or a date and time in the
// local time zone.
func parseFindTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, ok := parseTime(s, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04", "2006-01-02"); ok {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: want RFC 3339 (2026-11-26T14:03:27Z) or 'YYYY-MM-DD HH:MM:SS' in the local time zone (TZ)", flag, s)
}

func (o *binlogFindOptions) filter() (binlog.Filter, error) {
	f := binlog.Filter{Tables: o.Tables}
	for _, k := range o.Kinds {
		for _, k := range strings.Split(k, ",") {
			if !binlog.ValidKind(k) {
				return f, fmt.Errorf("--kind %q: want DDL, INSERT, UPDATE or DELETE", k)
			}
			f.Kinds = append(f.Kinds, strings.ToUpper(k))
		}
	}
	for _, t := range o.Tables {
		db, tab, _ := strings.Cut(t, ".")
		if t == "" || db == "" || strings.Contains(tab, ".") || strings.HasSuffix(t, ".") {
			return f, fmt.Errorf("--table %q: want db.table, table or db.*", t)
		}
	}
	var err error
	if f.Since, err = parseFindTime("since", o.Since); err != nil {
		return f, err
	}
	if f.Until, err = parseFindTime("until", o.Until); err != nil {
		return f, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return f, errors.New("--since must be before --until")
	}
	return f, nil
}

// foundJSON is the --json form of one transaction.
type foundJSON struct {
	GTID          string           `json:"gtid"`
	Time          time.Time        `json:"time"`
	ServerID      uint32           `json:"server_id"`
	Kind          any              `json:"kind"`
	Tables        []string         `json:"tables"`
	Rows          *int64           `json:"rows"`
	TableRows     map[string]int64 `json:"table_rows,omitempty"`
	Statement     string           `json:"statement,omitempty"`
	Node          string           `json:"node"`
	File          string           `json:"file"`
	Offset        int64            `json:"offset"`
	Lineage       string           `json:"lineage,omitempty"`
	RestoreBefore string           `json:"restore_before,omitempty"`
}

func toJSON(fd *pitr.Found) foundJSON {
	j := foundJSON{GTID: fd.GTID.String(), Time: fd.Time, ServerID: fd.ServerID, Tables: fd.Tables, TableRows: fd.TableRows,
		Statement: fd.Statement, Node: fd.Node, File: fd.File, Offset: fd.Offset, Lineage: fd.Lineage, RestoreBefore: fd.RestoreBefore}
	switch len(fd.Kinds) {
	case 0:
		j.Kind = ""
	case 1:
		j.Kind = fd.Kinds[0]
	default:
		j.Kind = fd.Kinds
	}
	if fd.RowsKnown {
		n := fd.Rows
		j.Rows = &n
	}
	return j
}

func runBinlogFind(cmd *cobra.Command, g *Globals, o *binlogFindOptions) error {
	ctx := cmd.Context()
	flt, err := o.filter()
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	enc := json.NewEncoder(g.Out)
	n := 0
	print := func(fd *pitr.Found) error {
		n++
		if o.JSON {
			return enc.Encode(toJSON(fd))
		}
		rows := "?"
		if fd.RowsKnown {
			rows = fmt.Sprint(fd.Rows)
		}
		tables := strings.Join(fd.Tables, ",")
		if tables == "" {
			tables = "-"
		}
		line := fmt.Sprintf("%s  %s  server_id=%d  %s  %s  rows=%s", fd.Time.Local().Format("2006-01-02 15:04:05 MST"), fd.GTID, fd.ServerID, fd.Kind(), tables, rows)
		if fd.Statement != "" {
			line += "  " + shortLine(fd.Statement, 100)
		}
		fmt.Fprintf(g.Out, "%s\n    (%s %s@%d)", line, fd.Node, fd.File, fd.Offset)
		if fd.RestoreBefore != "" {
			fmt.Fprintf(g.Out, " restore to just before this: galera-backup restore --pitr-gtid %s --target-dir DIR", fd.RestoreBefore)
		} else {
			fmt.Fprintf(g.Out, " GTID outside the archived domain %d: not a --pitr-gtid target", fd.Domain)
		}
		fmt.Fprintln(g.Out)
		return nil
	}
	if o.BinlogDir != "" {
		if cmd.Flags().Changed("storage") || o.Identity != "" || o.PassphraseFile != "" {
			return &ExitError{Code: ExitUsage, Err: errors.New("--binlog-dir reads local files: --storage, --identity and --passphrase-file do not apply")}
		}
		host, _ := os.Hostname()
		files, err := pitr.FindInDir(ctx, o.BinlogDir, host, flt, print)
		if err != nil {
			return fmt.Errorf("binlog find in %s: %w", o.BinlogDir, err)
		}
		g.Logger.Info("binlog find done", "files", files, "found", n)
		if !o.JSON && n == 0 {
			fmt.Fprintf(g.Out, "no matching transaction in %d binlog files of %s\n", files, o.BinlogDir)
		}
		return nil
	}
	ids, err := o.identities()
	if err != nil {
		return err
	}
	be, err := o.storageOptions.open(ctx, false)
	if err != nil {
		return err
	}
	defer be.Close()
	rep, err := (&pitr.Archive{Store: be}).Find(ctx, pitr.FindOptions{Filter: flt, Identities: ids, Logger: g.Logger}, print)
	if err != nil {
		return fmt.Errorf("binlog find in the archive: %w", err)
	}
	g.Logger.Info("binlog find done", "segments_read", rep.Segments, "segments_skipped_by_time", rep.Skipped, "found", n)
	if !o.JSON && n == 0 {
		fmt.Fprintf(g.Out, "no matching transaction in %d archived segments (%d outside the time range)\n", rep.Segments, rep.Skipped)
	}
	if len(rep.Bad) > 0 {
		return &ExitError{Code: ExitPartial, Err: fmt.Errorf("%d segment index(es) unreadable: their transactions were not searched", len(rep.Bad))}
	}
	return nil
}

// shortLine puts a statement on one line, at most n runes.
func shortLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
