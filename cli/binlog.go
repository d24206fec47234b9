package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/binlog"
	"github.com/gosst/gosst/internal/text"
	"github.com/gosst/gosst/pitr"
	"github.com/gosst/gosst/stream"
	"github.com/gosst/gosst/stream/crypt"
)

func newBinlogCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "binlog",
		Short: "Archive binary logs for point-in-time restore",
		Long: `binlog archives the closed binary logs of the local node into the backup
storage, keyed by GTID range, so that restore --pitr can replay them on top of a
backup. See docs/pitr.md.`,
	}
	cmd.AddCommand(newBinlogArchiveCommand(g), newBinlogListCommand(g), newBinlogFindCommand(g))
	return cmd
}

type binlogArchiveOptions struct {
	backupOptions
	BinlogDir    string
	Follow       bool
	MaxLag       time.Duration
	StandbyAfter time.Duration
}

func newBinlogArchiveCommand(g *Globals) *cobra.Command {
	o := &binlogArchiveOptions{}
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Upload every closed binlog of the local node (once, or --follow)",
		Long: `archive reads SHOW BINARY LOGS on the local node and uploads every closed
file (all but the active one) that the archive does not cover yet, compressed
(zstd) and optionally encrypted (age), followed by an index object per file
(GTID range in the wsrep domain, commit times, sizes, SHA-256). The index is
written after the data: a file without its index is not archived and is
uploaded again by the next run, so archiving is idempotent and resumable.

Files are keyed by GTID range (binlogs/<cluster-uuid>/<domain>/<from>-<to>/),
not by file name: archiving can continue on another node, which skips what is
already archived and starts after the last archived GTID. A hole between the
archive and the node's oldest binlog is reported as a gap (exit 3); a node
that logs the cluster's transactions under other GTIDs (a crash-rejoin GTID
split) is refused.

--follow keeps running: a pass every few seconds, and FLUSH LOCAL BINARY LOGS
when the active binlog holds transactions older than --max-lag, which bounds
what a lost node can take with it. With --standby-after, run it on every node:
the holder of a lease object archives, the others stand by and take over
(continuing from the last archived GTID) when the lease is not renewed.

Credentials: --defaults-file or MYSQL_PWD; the user needs BINLOG MONITOR,
RELOAD (for --follow) and SELECT on information_schema; the archiver reads the
binlog files directly, so it runs on the node's host as a user that can read
them.`,
		Example: `  galera-backup binlog archive --storage s3://bucket/galera --socket /run/mysqld/mysqld.sock --recipients-file /etc/gosst/backup.pub
  galera-backup binlog archive --follow --max-lag 60s --storage /var/backups/galera --defaults-file /etc/mysql/backup.cnf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBinlogArchive(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	o.storageOptions.addFlags(cmd, g)
	o.addNodeFlags(cmd, "node DSN instead of a socket (the binlog files must still be on this host)",
		"read only this option file ([client] connection, [galera-backup]); mode 0600 if it holds a password")
	f.StringVar(&o.BinlogDir, "binlog-dir", "", "read binlog files from here instead of the directory of @@log_bin_basename")
	f.BoolVar(&o.Follow, "follow", false, "keep archiving until interrupted")
	f.DurationVar(&o.MaxLag, "max-lag", 60*time.Second, "with --follow: rotate the active binlog when it holds transactions older than this")
	f.DurationVar(&o.StandbyAfter, "standby-after", 0, "with --follow on several nodes: only the lease holder archives; the others take over when it has not renewed the lease for this long (e.g. 2m)")
	f.StringVar(&o.Codec, "codec", stream.CodecZstd, "compression: zstd, s2 or none")
	f.IntVar(&o.Level, "level", stream.DefaultLevel, "compression level (zstd 1..19)")
	o.addEncryptFlags(cmd, "encrypt with the passphrase in this file (mode 0600)")
	f.BoolVar(&o.JSON, "json", false, "print the report of a one-shot run as JSON")
	return cmd
}

func runBinlogArchive(ctx context.Context, g *Globals, o *binlogArchiveOptions) error {
	c, err := makeCodec(o.Codec, o.Level, 1)
	if err != nil {
		return err
	}
	rs, err := o.recipients()
	if err != nil {
		return err
	}
	var fps []string
	for _, r := range rs { // --recipient, --recipients-file and --passphrase-file alike
		if fp := crypt.RecipientFingerprint(r); fp != "" {
			fps = append(fps, fp)
		}
	}
	be, err := o.storageOptions.open(ctx, true)
	if err != nil {
		return err
	}
	defer be.Close()
	a := &pitr.Archive{Store: be}
	ao := pitr.ArchiveOptions{Node: g.withPassword(o.target()), BinlogDir: o.BinlogDir, Codec: c, Recipients: rs, KeyFingerprints: fps, Logger: g.Logger}
	if o.Follow {
		if o.MaxLag < time.Second {
			return &ExitError{Code: ExitUsage, Err: errors.New("--max-lag must be at least 1s")}
		}
		g.Logger.Info("archiving binlogs until interrupted", "node", ao.Node.Label(), "max_lag", o.MaxLag)
		err := pitr.Follow(ctx, a, pitr.FollowOptions{ArchiveOptions: ao, MaxLag: o.MaxLag, StandbyAfter: o.StandbyAfter, OnPass: func(rep *pitr.ArchiveReport, err error) {
			if rep != nil {
				for _, gap := range rep.Gaps {
					fmt.Fprintf(g.Out, "GAP in the archive: %s\n", gap)
				}
			}
		}})
		if err != nil {
			return fmt.Errorf("binlog archiving stopped: %w", err)
		}
		return nil
	}
	rep, err := pitr.ArchivePass(ctx, a, ao)
	if err != nil {
		return fmt.Errorf("binlog archiving failed: %w", err)
	}
	if o.JSON {
		if err := writeJSON(g, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.Out, "node %s: archived %d binlog files, archive ends at %d-*-%d (lineage %s)\n",
			rep.Node, len(rep.Archived), rep.Domain, rep.Last, rep.Lineage)
		for _, s := range rep.Archived {
			fmt.Fprintf(g.Out, "  %s  %d-%d-%d … %d  %s\n", s.File, s.Domain, s.Server, s.From+1, s.To, text.Bytes(s.Object.PlainSize))
		}
		for _, gap := range rep.Gaps {
			fmt.Fprintf(g.Out, "GAP: %s\n", gap)
		}
	}
	if len(rep.Gaps) > 0 {
		return &ExitError{Code: ExitPartial, Err: fmt.Errorf("the archive has %d gap(s): point-in-time restore cannot cross them", len(rep.Gaps))}
	}
	return nil
}

func newBinlogListCommand(g *Globals) *cobra.Command {
	o := &storageOptions{}
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the archived binlog segments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			be, err := o.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer be.Close()
			segs, bad, err := (&pitr.Archive{Store: be}).Segments(cmd.Context())
			if err != nil {
				return err
			}
			for k, err := range bad {
				g.Logger.Warn("unreadable binlog index", "key", k, "err", err)
			}
			if asJSON {
				if segs == nil {
					segs = []*pitr.Segment{}
				}
				return writeJSON(g, segs)
			}
			tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "GTIDS\tNODE\tFILE\tFIRST_COMMIT\tCLOSED\tSIZE\tSTORED")
			for _, s := range segs {
				fmt.Fprintf(tw, "%d-%d-%d…%d\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Domain, s.Server, s.From+1, s.To, s.Node, s.File,
					s.FirstCommit.Format(time.RFC3339), s.EndTime().Format(time.RFC3339), text.Bytes(s.Object.PlainSize), text.Bytes(s.Object.Size))
			}
			return tw.Flush()
		},
	}
	o.addFlags(cmd, g)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the segment indexes as JSON")
	return cmd
}

// runListPITR prints the restorable windows (list --pitr).
func runListPITR(ctx context.Context, g *Globals, cat *backup.Catalog, asJSON bool) error {
	cov, err := (&pitr.Archive{Store: cat.Store}).Coverage(ctx, cat)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(g, cov)
	}
	fmt.Fprintln(g.Out, cov.Describe())
	return nil
}

// parseTime reads s as RFC 3339, else in one of the local-time layouts
// (the time zone of TZ).
func parseTime(s string, localLayouts ...string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	for _, layout := range localLayouts {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// parsePITRTarget reads --pitr TIME or --pitr-gtid D-S-N.
func parsePITRTarget(at, gtid string) (time.Time, *binlog.GTID, error) {
	switch {
	case at != "" && gtid != "":
		return time.Time{}, nil, errors.New("give --pitr or --pitr-gtid, not both")
	case gtid != "":
		g, err := binlog.ParseGTID(gtid)
		if err != nil {
			return time.Time{}, nil, fmt.Errorf("--pitr-gtid: %w", err)
		}
		return time.Time{}, &g, nil
	case at == "":
		return time.Time{}, nil, errors.New("no target")
	}
	if t, ok := parseTime(at, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"); ok {
		return t, nil, nil
	}
	return time.Time{}, nil, fmt.Errorf("--pitr %q: want RFC 3339 (2026-11-26T14:03:27Z) or 'YYYY-MM-DD HH:MM:SS[.frac]' in the local time zone (TZ)", at)
}

// pitrRequest checks restore's PITR flags and returns the target; bad
// flags are usage errors.
func pitrRequest(o *restoreOptions) (time.Time, *binlog.GTID, error) {
	at, gtid, err := parsePITRTarget(o.PITR, o.PITRGTID)
	if err != nil {
		return time.Time{}, nil, &ExitError{Code: ExitUsage, Err: err}
	}
	if o.Replay != pitr.ReplayApplier && o.Replay != pitr.ReplayClient {
		return time.Time{}, nil, &ExitError{Code: ExitUsage, Err: fmt.Errorf("--replay %q: want %s or %s", o.Replay, pitr.ReplayApplier, pitr.ReplayClient)}
	}
	if o.Threads < 1 {
		return time.Time{}, nil, &ExitError{Code: ExitUsage, Err: fmt.Errorf("--applier-threads %d: want at least 1", o.Threads)}
	}
	if err := pitr.CheckApplierMode(o.Mode); err != nil {
		return time.Time{}, nil, &ExitError{Code: ExitUsage, Err: fmt.Errorf("--applier-mode %w", err)}
	}
	return at, gtid, nil
}

// targetDesc names a PITR target in the summaries.
func targetDesc(at time.Time, gtid *binlog.GTID) string {
	if gtid != nil {
		return "before GTID " + gtid.String()
	}
	return "committed before " + at.UTC().Truncate(time.Second).Format(time.RFC3339) + " (1 s resolution)"
}

// runPITRContinue runs restore --pitr / --pitr-gtid --continue DIR.
func runPITRContinue(ctx context.Context, g *Globals, o *restoreOptions, cat *backup.Catalog, ids []age.Identity) error {
	at, gtid, err := pitrRequest(o)
	if err != nil {
		return err
	}
	start := time.Now()
	prog := newProgress(g, "replay")
	res, err := pitr.Continue(ctx, &pitr.Archive{Store: cat.Store}, pitr.PITROptions{
		RestoreOptions: backup.RestoreOptions{TargetDir: o.Continue, Identities: ids, Logger: g.Logger},
		Time:           at, GTID: gtid, Replay: o.Replay, ApplierThreads: o.Threads, ApplierMode: o.Mode, Progress: prog.Replay})
	prog.Done()
	if err != nil {
		return fmt.Errorf("point-in-time restore --continue failed: %w", err)
	}
	fmt.Fprintf(g.Out, "continued %s to %s in %s: %d more transactions replayed from %d archived binlog files (%s … %s) in %s (%s)\n",
		o.Continue, targetDesc(at, gtid), time.Since(start).Round(time.Second), res.Transactions, res.Files, dash(res.First), dash(res.Last),
		res.ReplayTime.Round(time.Millisecond), replayHow(res))
	return nil
}

// runPITR runs restore --pitr / --pitr-gtid.
func runPITR(ctx context.Context, g *Globals, o *restoreOptions, cat *backup.Catalog, ro backup.RestoreOptions) error {
	at, gtid, err := pitrRequest(o)
	if err != nil {
		return err
	}
	start := time.Now()
	prog := newProgress(g, "replay")
	res, err := pitr.PITR(ctx, cat, &pitr.Archive{Store: cat.Store}, pitr.PITROptions{RestoreOptions: ro, Time: at, GTID: gtid,
		Replay: o.Replay, ApplierThreads: o.Threads, ApplierMode: o.Mode, Progress: prog.Replay})
	prog.Done()
	if err != nil {
		return fmt.Errorf("point-in-time restore failed: %w", err)
	}
	target := targetDesc(at, gtid)
	if res.Transactions == 0 {
		fmt.Fprintf(g.Out, "restored %s into %s in %s: backup %s (gtid %s) is the target state, nothing to replay\n",
			target, ro.TargetDir, time.Since(start).Round(time.Second), res.BackupID, res.Backup.Binlog.GTID)
		return nil
	}
	fmt.Fprintf(g.Out, "restored %s into %s in %s: backup %s (gtid %s) + %d transactions replayed from %d archived binlog files (%s … %s, last commit %s; started at %s) in %s (%s)\n",
		target, ro.TargetDir, time.Since(start).Round(time.Second), res.BackupID, res.Backup.Binlog.GTID, res.Transactions, res.Files,
		dash(res.First), dash(res.Last), res.LastCommit.Format(time.RFC3339), res.Start, res.ReplayTime.Round(time.Millisecond), replayHow(res))
	return nil
}
