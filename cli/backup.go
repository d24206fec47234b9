package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/internal/text"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/pitr"
	"github.com/gosst/gosst/storage"
	"github.com/gosst/gosst/stream"
	"github.com/gosst/gosst/stream/crypt"
	"github.com/gosst/gosst/verify"
)

// defaultStorage is used when neither --storage nor GOSST_STORAGE is set.
const defaultStorage = "file:///var/backups/galera"

type storageOptions struct {
	URL string
	g   *Globals // for the logger, set once the command runs
}

func (s *storageOptions) addFlags(cmd *cobra.Command, g *Globals) {
	s.g = g
	def := os.Getenv("GOSST_STORAGE")
	if def == "" {
		def = defaultStorage
	}
	cmd.Flags().StringVar(&s.URL, "storage", def,
		"where backups live: a directory path or file:///dir, s3://bucket/prefix, minio://host:port/bucket/prefix (env GOSST_STORAGE); only backup and binlog archive create a missing directory, never a bucket")
}

// catalog opens the storage for a command that only reads (list, show,
// verify, restore): it never creates anything.
func (s *storageOptions) catalog(ctx context.Context) (*backup.Catalog, func(), error) {
	return s.openCatalog(ctx, false)
}

// writableCatalog opens the storage for backup, creating a missing local
// directory (never a bucket).
func (s *storageOptions) writableCatalog(ctx context.Context) (*backup.Catalog, func(), error) {
	return s.openCatalog(ctx, true)
}

func (s *storageOptions) openCatalog(ctx context.Context, create bool) (*backup.Catalog, func(), error) {
	be, err := s.open(ctx, create)
	if err != nil {
		return nil, nil, err
	}
	return &backup.Catalog{Store: be}, func() { be.Close() }, nil
}

func (s *storageOptions) open(ctx context.Context, create bool) (storage.Backend, error) {
	var log *slog.Logger
	if s.g != nil {
		log = s.g.Logger
	}
	return openStorage(ctx, log, s.URL, create)
}

type backupOptions struct {
	storageOptions
	keyOptions
	Node, Socket, DefaultsFile, User string
	Host                             string
	Port                             int
	Incremental, Force, Desync       bool
	LeftoverGrace                    time.Duration
	Codec                            string
	Level, Parallel                  int
	RateLimit                        string
	JSON                             bool
}

func newBackupCommand(g *Globals) *cobra.Command {
	o := &backupOptions{}
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Take a full or incremental mariabackup backup of the local node into storage",
		Long: `backup runs mariabackup --backup --galera-info --stream=xbstream against the
node on this host, compresses (zstd) and optionally encrypts (age) the stream,
and uploads it with bounded memory. A manifest is written last: a backup whose
manifest is missing (an interrupted run) does not exist for list or restore.
Its objects are removed by a later backup once the run is provably abandoned:
at once when its process on this host is gone, otherwise after
--leftover-grace without a heartbeat (a backup running on another node is
never touched).

--incremental builds on the latest backup of this node (same wsrep_node_name
and the same datadir: not restored or rebuilt by SST since), never on another
node's; without one it refuses and says why.

The node must be Synced (use --force otherwise). --desync sets
wsrep_desync=ON for the duration so the donor's apply lag does not throttle
the cluster, and always switches it off afterwards, also on failure.

Credentials: --defaults-file ([client] user/password, mode 0600) or
MYSQL_PWD; the user needs RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR.
Only the public age recipient is needed here; keep the identity elsewhere.`,
		Example: `  galera-backup backup --storage /var/backups/galera --defaults-file /etc/mysql/backup.cnf \
      --recipients-file /etc/gosst/backup.pub
  galera-backup backup --incremental --storage s3://my-bucket/galera --socket /run/mysqld/mysqld.sock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBackup(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	o.storageOptions.addFlags(cmd, g)
	o.addNodeFlags(cmd, "node DSN instead of a socket, e.g. 'backup@tcp(127.0.0.1:3306)/' (the node must still be on this host)",
		"read only this option file ([client] connection, [galera-backup]); also passed to mariabackup; mode 0600 if it holds a password")
	f.BoolVar(&o.Incremental, "incremental", false, "back up only what changed since this node's latest backup in this storage")
	f.DurationVar(&o.LeftoverGrace, "leftover-grace", backup.DefaultLeftoverGrace, "remove objects of interrupted backups whose owner cannot be proven gone only after this long without a heartbeat")
	f.BoolVar(&o.Force, "force", false, "back up a node that is not Synced")
	f.BoolVar(&o.Desync, "desync", false, "set wsrep_desync=ON during the backup (switched off afterwards, always)")
	f.StringVar(&o.Codec, "codec", stream.CodecZstd, "compression: zstd, s2 or none")
	f.IntVar(&o.Level, "level", stream.DefaultLevel, "compression level (zstd 1..19)")
	f.IntVar(&o.Parallel, "parallel", 2, "mariabackup --parallel copy threads")
	f.StringVar(&o.RateLimit, "rate-limit", "", "read at most this many bytes per second from mariabackup (e.g. 100M); empty = unlimited")
	o.addEncryptFlags(cmd, "encrypt with the passphrase in this file (mode 0600)")
	f.BoolVar(&o.JSON, "json", false, "print the manifest as JSON when done")
	return cmd
}

// addNodeFlags adds the ways to name the local node: --socket, --node,
// --defaults-file, --user, --host and --port. nodeHelp and defaultsHelp
// say what the command needs of --node and --defaults-file.
func (o *backupOptions) addNodeFlags(cmd *cobra.Command, nodeHelp, defaultsHelp string) {
	f := cmd.Flags()
	f.StringVar(&o.Socket, "socket", "", "unix socket of the local node (default: from --defaults-file, else /run/mysqld/mysqld.sock)")
	f.StringVar(&o.Node, "node", "", nodeHelp)
	f.StringVar(&o.DefaultsFile, "defaults-file", "", defaultsHelp)
	f.StringVar(&o.User, "user", "", "user name")
	o.addHostFlags(cmd)
}

// addHostFlags adds --host/--port, the client tools' way to name a node.
func (o *backupOptions) addHostFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Host, "host", "", "node host name or address (TCP, like the mariadb client; localhost means the socket)")
	cmd.Flags().IntVar(&o.Port, "port", 3306, "TCP port with --host")
}

func (o *backupOptions) target() mariadb.Target {
	t := mariadb.Target{DSN: o.Node, Socket: o.Socket, DefaultsFile: o.DefaultsFile, User: o.User, Host: o.Host, Port: o.Port}
	if t.DSN == "" && t.Socket == "" && t.Host == "" {
		if _, err := t.Config(); errors.Is(err, mariadb.ErrNoAddress) {
			t.Socket = defaultSocket
		}
	}
	return t
}

func runBackup(ctx context.Context, g *Globals, o *backupOptions) error {
	c, err := makeCodec(o.Codec, o.Level, 2)
	if err != nil {
		return err
	}
	var rateLimit int64
	if o.RateLimit != "" {
		if rateLimit, err = text.ParseSize(o.RateLimit); err != nil || rateLimit <= 0 {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--rate-limit %q: want a byte rate such as 100M", o.RateLimit)}
		}
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
	cat, done, err := o.writableCatalog(ctx)
	if err != nil {
		return err
	}
	defer done()
	start := time.Now()
	prog := newProgress(g, "backup")
	m, err := backup.Run(ctx, cat, backup.Options{
		Node:            g.withPassword(o.target()),
		DefaultsFile:    o.DefaultsFile,
		Incremental:     o.Incremental,
		Force:           o.Force,
		Desync:          o.Desync,
		Codec:           c,
		Recipients:      rs,
		KeyFingerprints: fps,
		Parallel:        o.Parallel,
		RateLimit:       rateLimit,
		Logger:          g.Logger,
		Progress:        prog.Update,
		LeftoverGrace:   o.LeftoverGrace,
	})
	prog.Done()
	if err != nil {
		return fmt.Errorf("backup failed: %w", err)
	}
	if o.JSON {
		return writeJSON(g, m)
	}
	obj := m.Objects[0]
	fmt.Fprintf(g.Out, "backup %s (%s) complete in %s: %s read, %s stored, galera %s:%d, binlog %s:%d, gtid %s\n",
		m.ID, m.Type, time.Since(start).Round(time.Second), text.Bytes(obj.PlainSize), text.Bytes(obj.Size),
		m.Galera.UUID, m.Galera.Seqno, m.Binlog.File, m.Binlog.Position, m.Binlog.GTID)
	return nil
}

func writeJSON(g *Globals, v any) error {
	enc := json.NewEncoder(g.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type listOptions struct {
	storageOptions
	JSON bool
	PITR bool
}

func newListCommand(g *Globals) *cobra.Command {
	o := &listOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the complete backups in storage",
		Long: `list shows every backup whose manifest is present, oldest first, with its
type, parent, Galera position, binlog GTID and sizes. Interrupted backups (objects
without a manifest) and unreadable manifests are reported on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cat, done, err := o.catalog(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if o.PITR {
				return runListPITR(cmd.Context(), g, cat, o.JSON)
			}
			list, bad, err := cat.List(cmd.Context())
			if err != nil {
				return err
			}
			for id, err := range bad {
				g.Logger.Warn("unreadable manifest", "backup", id, "err", err)
			}
			if left, err := cat.Leftovers(cmd.Context()); err == nil && len(left) > 0 {
				g.Logger.Info("backups without a manifest: running, or interrupted (removed by a later backup once abandoned)", "count", len(left))
			}
			if o.JSON {
				if list == nil {
					list = []*backup.Manifest{}
				}
				return writeJSON(g, list)
			}
			tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tPARENT\tFINISHED\tGALERA_SEQNO\tGTID\tSTORED\tPLAIN\tENCRYPTED")
			for _, m := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%v\n", m.ID, m.Type, dash(m.Parent),
					m.EndTime.Format(time.RFC3339), m.Galera.Seqno, dash(m.Binlog.GTID),
					text.Bytes(m.Objects[0].Size), text.Bytes(m.Objects[0].PlainSize), m.Encrypted())
			}
			return tw.Flush()
		},
	}
	o.storageOptions.addFlags(cmd, g)
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the manifests as a JSON array")
	cmd.Flags().BoolVar(&o.PITR, "pitr", false, "show the point-in-time restorable windows (earliest backup → last archived commit) and gaps")
	return cmd
}

func newShowCommand(g *Globals) *cobra.Command {
	o := &storageOptions{}
	cmd := &cobra.Command{
		Use:   "show ID|latest",
		Short: "Print one backup's manifest (JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cat, done, err := o.catalog(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			m, err := cat.Resolve(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeJSON(g, m)
		},
	}
	o.addFlags(cmd, g)
	return cmd
}

type restoreOptions struct {
	storageOptions
	keyOptions
	TargetDir string
	Force     bool
	Galera    bool
	UseMemory string
	PITR      string
	PITRGTID  string
	Replay    string
	Threads   int
	Mode      string
	Continue  string
}

func newRestoreCommand(g *Globals) *cobra.Command {
	o := &restoreOptions{}
	cmd := &cobra.Command{
		Use:   "restore ID|latest --target-dir DIR",
		Short: "Restore a backup (full + incrementals) into a datadir mariadbd starts on",
		Long: `restore downloads the backup and, for an incremental, every backup it builds
on; verifies every layer (stored SHA-256, age, end marker, xbstream CRCs);
extracts with the strict extractor; runs mariabackup --prepare on the chain in a
staging directory next to the target; and only then swaps the prepared, fsynced
datadir with --target-dir in one atomic step (renameat2 RENAME_EXCHANGE). The key
is checked on the backup's encryption header before any download. A damaged or
missing object, a wrong key, a full disk or a kill at any moment leaves the
target (also with --force) as it was; the next restore removes what a killed one
left next to it. A mount point with data is refused: see docs/backup.md.

--galera writes grastate.dat with the backup's uuid:seqno, so a node started on
the restored datadir rejoins its cluster by IST when a donor's gcache still
holds the writes since the backup (otherwise it takes a full SST). Do not use
--galera to bootstrap a new cluster from a backup: start that node with
--wsrep-new-cluster and no grastate.dat so it gets a new history UUID.

Fix ownership afterwards (chown -R mysql:mysql DIR) when run as root.`,
		Example: `  galera-backup restore latest --target-dir /var/lib/mysql --force --galera --identity /root/backup.key
  galera-backup restore --pitr '2026-11-26 14:03:27' --target-dir /srv/pitr --identity /root/backup.key
  galera-backup restore --pitr-gtid 7-11-4711 --target-dir /srv/pitr
  galera-backup restore --pitr-gtid 7-11-4790 --continue /srv/pitr`,
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pitr := o.PITR != "" || o.PITRGTID != ""
			if o.Continue != "" {
				switch {
				case !pitr:
					return &ExitError{Code: ExitUsage, Err: errors.New("--continue DIR needs the new target: --pitr TIME or --pitr-gtid D-S-N")}
				case o.TargetDir != "" || o.Force || o.Galera:
					return &ExitError{Code: ExitUsage, Err: errors.New("--continue DIR replays into DIR itself: give no --target-dir, --force or --galera")}
				}
			}
			if pitr && len(args) > 0 {
				return &ExitError{Code: ExitUsage, Err: errors.New("--pitr/--pitr-gtid pick the backup themselves: give no backup id")}
			}
			if !pitr && len(args) != 1 {
				return &ExitError{Code: ExitUsage, Err: errors.New("give a backup id or latest (or --pitr TIME / --pitr-gtid D-S-N)")}
			}
			ids, err := o.identities()
			if err != nil {
				return err
			}
			if o.Continue != "" {
				cat, done, err := o.catalog(cmd.Context())
				if err != nil {
					return err
				}
				defer done()
				return runPITRContinue(cmd.Context(), g, o, cat, ids)
			}
			if o.TargetDir == "" {
				return &ExitError{Code: ExitUsage, Err: errors.New("--target-dir is required")}
			}
			cat, done, err := o.catalog(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if pitr {
				if o.Galera {
					return &ExitError{Code: ExitUsage, Err: errors.New("--galera does not apply to --pitr: bootstrap a new cluster from the result (see docs/pitr.md)")}
				}
				return runPITR(cmd.Context(), g, o, cat, backup.RestoreOptions{TargetDir: o.TargetDir, Force: o.Force, Identities: ids, UseMemory: o.UseMemory, Logger: g.Logger})
			}
			start := time.Now()
			prog := newProgress(g, "restore download")
			m, err := backup.Restore(cmd.Context(), cat, args[0], backup.RestoreOptions{
				TargetDir: o.TargetDir, Force: o.Force, Galera: o.Galera, Identities: ids,
				UseMemory: o.UseMemory, Logger: g.Logger, Progress: prog.Update,
			})
			prog.Done()
			if err != nil {
				return fmt.Errorf("restore failed (the target was not changed unless it says otherwise): %w", err)
			}
			fmt.Fprintf(g.Out, "restored %s (%s) into %s in %s; galera position %s:%d; binlog %s:%d gtid %s\n",
				m.ID, m.Type, o.TargetDir, time.Since(start).Round(time.Second), m.Galera.UUID, m.Galera.Seqno,
				m.Binlog.File, m.Binlog.Position, m.Binlog.GTID)
			return nil
		},
	}
	o.storageOptions.addFlags(cmd, g)
	o.addDecryptFlags(cmd)
	cmd.Flags().StringVar(&o.TargetDir, "target-dir", "", "datadir to restore into (must be empty or missing unless --force)")
	cmd.Flags().BoolVar(&o.Force, "force", false, "replace the contents of a non-empty --target-dir")
	cmd.Flags().BoolVar(&o.Galera, "galera", false, "write grastate.dat with the backup's position (rejoin by IST)")
	cmd.Flags().StringVar(&o.UseMemory, "use-memory", "256M", "mariabackup --prepare buffer pool size")
	cmd.Flags().StringVar(&o.PITR, "pitr", "", "point-in-time restore: the newest backup before TIME plus archived binlogs up to TIME (RFC 3339, or 'YYYY-MM-DD HH:MM:SS' local time); transactions committed before TIME (1 s resolution)")
	cmd.Flags().StringVar(&o.PITRGTID, "pitr-gtid", "", "point-in-time restore up to, not including, transaction D-S-N")
	cmd.Flags().StringVar(&o.Replay, "replay", pitr.ReplayApplier, "how --pitr replays binlogs: applier (the server's parallel replication applier) or client (mariadb-binlog | mariadb)")
	cmd.Flags().IntVar(&o.Threads, "applier-threads", pitr.DefaultApplierThreads, "slave_parallel_threads of --replay=applier")
	cmd.Flags().StringVar(&o.Mode, "applier-mode", pitr.DefaultApplierMode, "slave_parallel_mode of --replay=applier: "+strings.Join(pitr.ApplierModes, ", "))
	cmd.Flags().StringVar(&o.Continue, "continue", "", "with --pitr/--pitr-gtid: extend DIR, the unchanged result of an earlier --pitr restore, to the later target, replaying only the transactions in between (see docs/pitr.md)")
	return cmd
}

type verifyOptions struct {
	storageOptions
	keyOptions
	RestoreTest bool
	All         bool
	JSON        bool
}

// VerifyResult is one backup's verdict.
type VerifyResult struct {
	ID     string               `json:"id"`
	OK     bool                 `json:"ok"`
	Error  string               `json:"error,omitempty"`
	Tables []verify.TableResult `json:"tables,omitempty"`
}

func newVerifyCommand(g *Globals) *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify [ID|latest]... | --all",
		Short: "Prove backups restore: re-read every object, optionally restore and CHECK every table",
		Long: `verify re-reads every object of each backup and compares its size and SHA-256
with the manifest. With --restore-test it also restores the backup (and its
chain) into a scratch directory, starts a throwaway mariadbd on it (wsrep off,
no network), runs CHECK TABLE on every table the manifest lists, and removes it.

Prints one verdict line per backup; exits 1 if any backup failed.`,
		Example: `  galera-backup verify latest --restore-test --identity /root/backup.key
  galera-backup verify --all --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd.Context(), g, o, args)
		},
	}
	o.storageOptions.addFlags(cmd, g)
	o.addDecryptFlags(cmd)
	cmd.Flags().BoolVar(&o.RestoreTest, "restore-test", false, "also restore into a scratch dir, start mariadbd and CHECK every table")
	cmd.Flags().BoolVar(&o.All, "all", false, "verify every backup in storage")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print results as JSON")
	return cmd
}

func runVerify(ctx context.Context, g *Globals, o *verifyOptions, args []string) error {
	if len(args) == 0 && !o.All {
		args = []string{"latest"}
	}
	ids, err := o.identities()
	if err != nil {
		return err
	}
	cat, done, err := o.catalog(ctx)
	if err != nil {
		return err
	}
	defer done()
	var targets []*backup.Manifest
	var results []VerifyResult
	if o.All {
		list, bad, err := cat.List(ctx)
		if err != nil {
			return err
		}
		targets = list
		for id, err := range bad {
			results = append(results, VerifyResult{ID: id, Error: err.Error()})
		}
	}
	for _, ref := range args {
		m, err := cat.Resolve(ctx, ref)
		if err != nil {
			results = append(results, VerifyResult{ID: ref, Error: err.Error()})
			continue
		}
		targets = append(targets, m)
	}
	for _, m := range targets {
		r := VerifyResult{ID: m.ID}
		err := verify.Objects(ctx, cat, m)
		if err == nil && o.RestoreTest {
			r.Tables, err = verify.RestoreTest(ctx, cat, m, verify.RestoreTestOptions{
				RestoreOptions: backup.RestoreOptions{Identities: ids, Logger: g.Logger},
			})
		}
		if err != nil {
			r.Error = err.Error()
		} else {
			r.OK = true
		}
		results = append(results, r)
	}
	failed := 0
	for _, r := range results {
		if !r.OK {
			failed++
		}
	}
	if o.JSON {
		if err := writeJSON(g, results); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			if r.OK {
				extra := ""
				if o.RestoreTest {
					extra = fmt.Sprintf(", restored and %d tables checked", len(r.Tables))
				}
				fmt.Fprintf(g.Out, "%s OK (objects verified%s)\n", r.ID, extra)
			} else {
				fmt.Fprintf(g.Out, "%s FAILED: %s\n", r.ID, oneLine(r.Error))
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d backups failed verification", failed, len(results))
	}
	if len(results) == 0 {
		return errors.New("no backups to verify")
	}
	return nil
}

// openStorage opens the backend a URL names, with retries (each logged at
// warn) and debug logging of every operation. Only create (backup, binlog
// archive) makes a missing local directory; a missing one is otherwise a
// clear error. A URL that looks mistyped is a usage error.
func openStorage(ctx context.Context, log *slog.Logger, url string, create bool) (storage.Backend, error) {
	if _, err := storage.ParseURL(url); err != nil {
		return nil, &ExitError{Code: ExitUsage, Err: fmt.Errorf("--storage: %w", err)}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	be, err := storage.Open(ctx, url, storage.Options{Logger: log, Create: create})
	switch {
	case errors.Is(err, storage.ErrNoStorage) && create:
		return nil, fmt.Errorf("cannot create backup storage at %s: check --storage (or GOSST_STORAGE): %w", url, err)
	case errors.Is(err, storage.ErrNoStorage):
		return nil, fmt.Errorf("no backup storage at %s: check --storage (or GOSST_STORAGE); only backup and binlog archive create a missing directory: %w", url, err)
	case err != nil:
		return nil, fmt.Errorf("open storage %s: %w", url, err)
	}
	return be, nil
}
