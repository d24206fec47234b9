package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/internal/text"
	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/pitr"
	"github.com/gosst/gosst/schedule"
	"github.com/gosst/gosst/storage"
	"github.com/gosst/gosst/stream"
	"github.com/gosst/gosst/stream/crypt"
	"github.com/gosst/gosst/verify"
)

type scheduleOptions struct {
	backupOptions
	FullSchedule, IncrementalSchedule, VerifySchedule string
	KeepFull, KeepDays                                int
	PITRWindow                                        string
	MetricsAddr                                       string
	ArchiveBinlogs                                    bool
	Nodes                                             []string
	LeaseTTL, RankDelay                               time.Duration
	MaxLag, StandbyAfter                              time.Duration
	BinlogDir                                         string
	CoverageEvery                                     time.Duration
	BackoffMin                                        time.Duration
}

func newScheduleCommand(g *Globals) *cobra.Command {
	o := &scheduleOptions{}
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Run backups, binlog archiving, retention and verification as a service (one writer per cluster)",
		Long: `schedule is a long-running service: it takes full and incremental backups
on cron schedules, archives binlogs continuously, applies the retention policy
after every successful backup, and restores the newest backup into a scratch
server (verify --restore-test) on its own schedule.

Run the same configuration on every node. For each scheduled run exactly one
node takes it: a Synced node in the Primary component that is not serving as
a donor, preferring the one listed first in --nodes. The choice is a lease row
in gosst.writer_lease, committed through Galera itself (see docs/schedule.md):
the user needs CREATE, SELECT, INSERT and UPDATE on gosst.*. When the holder
dies, another node takes the next run; binlog archiving uses its own standby
lease (--standby-after).

A failed run is retried with backoff until the next run is due, and never
blocks the other jobs. SIGTERM stops cleanly: a running backup is abandoned
before its manifest, so it is never listed. Each job start and end is one log
line; --metrics-addr serves Prometheus metrics on /metrics and /healthz.

Schedules have 5 cron fields ('0 3 * * *') or are @daily, @hourly,
@every 6h; @every is aligned to fixed multiples of its interval, the same on
every node. Cron fields are in local time: give every node the same TZ or
prefix CRON_TZ=UTC. An empty schedule turns the job off.`,
		Example: `  galera-backup schedule --full-schedule '0 2 * * 0' --incremental-schedule '0 2 * * 1-6' \
      --verify-schedule '0 12 * * *' --keep-full 4 --pitr-window 14d --nodes node1,node2,node3 \
      --metrics-addr 127.0.0.1:9567 --storage s3://bucket/galera --recipients-file /etc/gosst/backup.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.scheduleCapture != nil { // a reload: parse only
				g.scheduleCapture(o)
				return nil
			}
			return runSchedule(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	o.storageOptions.addFlags(cmd, g)
	o.addNodeFlags(cmd, "node DSN instead of a socket (the node must still be on this host)",
		"read only this option file ([client] connection, [galera-backup]); also passed to mariabackup; mode 0600 if it holds a password")
	f.StringVar(&o.FullSchedule, "full-schedule", "", "when to take a full backup: 5 cron fields, @daily, @every 24h (empty: never)")
	f.StringVar(&o.IncrementalSchedule, "incremental-schedule", "", "when to take an incremental backup (empty: never); a node without a base of its own takes a full one")
	f.StringVar(&o.VerifySchedule, "verify-schedule", "", "when to restore the newest backup into a scratch server and CHECK every table (empty: never)")
	f.IntVar(&o.KeepFull, "keep-full", 0, "retention after every backup: keep the N newest full backups and their incrementals (0: rule off)")
	f.IntVar(&o.KeepDays, "keep-days", 0, "retention: keep every backup finished within the last D days (0: rule off)")
	f.StringVar(&o.PITRWindow, "pitr-window", "", "retention: keep every point of the last W restorable, e.g. 7d (empty: rule off)")
	f.StringVar(&o.MetricsAddr, "metrics-addr", "", "serve Prometheus /metrics and /healthz on this address, e.g. 127.0.0.1:9567 (empty: off)")
	f.BoolVar(&o.ArchiveBinlogs, "archive-binlogs", true, "archive binlogs continuously (the lease holder archives, the other nodes stand by)")
	f.StringSliceVar(&o.Nodes, "nodes", nil, "wsrep_node_name of the nodes in order of preference for the writer role, e.g. node1,node2,node3")
	f.DurationVar(&o.LeaseTTL, "lease-ttl", 30*time.Second, "writer lease time; renewed every third of it, a holder that cannot renew for half of it stops")
	f.DurationVar(&o.RankDelay, "rank-delay", 2*time.Second, "how long each node waits per rank in --nodes before claiming a run")
	f.DurationVar(&o.BackoffMin, "retry-backoff", 10*time.Second, "first wait before retrying a failed run (doubles, at most 5m)")
	f.DurationVar(&o.MaxLag, "max-lag", 60*time.Second, "binlog archiving: rotate the active binlog when it holds transactions older than this")
	f.DurationVar(&o.StandbyAfter, "standby-after", 2*time.Minute, "binlog archiving: take over when the archiving node has not renewed its lease for this long")
	f.StringVar(&o.BinlogDir, "binlog-dir", "", "read binlog files from here instead of the directory of @@log_bin_basename")
	f.DurationVar(&o.CoverageEvery, "coverage-interval", time.Minute, "how often the restorable-window metrics are refreshed from storage")
	f.StringVar(&o.Codec, "codec", "zstd", "compression: zstd, s2 or none")
	f.IntVar(&o.Level, "level", 1, "compression level (zstd 1..19)")
	f.IntVar(&o.Parallel, "parallel", 2, "mariabackup --parallel copy threads")
	f.StringVar(&o.RateLimit, "rate-limit", "", "read at most this many bytes per second from mariabackup (e.g. 100M); empty = unlimited")
	f.BoolVar(&o.Desync, "desync", false, "set wsrep_desync=ON during backups (switched off afterwards, always)")
	f.DurationVar(&o.LeftoverGrace, "leftover-grace", backup.DefaultLeftoverGrace, "remove objects of interrupted backups whose owner cannot be proven gone only after this long without a heartbeat")
	o.addEncryptFlags(cmd, "encrypt (and for verify decrypt) with the passphrase in this file (mode 0600)")
	f.StringVar(&o.Identity, "identity", "", "age identity file, mode 0600: needed by --verify-schedule for encrypted backups")
	return cmd
}

func usageErr(format string, a ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, a...)}
}

// scheduleGen is one configuration of the service, ready to run.
type scheduleGen struct {
	cfg         schedule.Config
	log         *slog.Logger
	metrics     *schedule.Metrics
	metricsAddr string
	close       func()
}

func (gen *scheduleGen) run(ctx context.Context, drain chan struct{}) error {
	cfg := gen.cfg
	cfg.Drain = drain
	svc, err := schedule.New(cfg)
	if err != nil {
		return err
	}
	gen.log.Info("schedule started", "node", cfg.Node, "rank", cfg.Rank, "jobs", len(cfg.Jobs), "background", len(cfg.Background))
	err = svc.Run(ctx)
	gen.log.Info("schedule stopped", "node", cfg.Node)
	return err
}

// runSchedule runs the service; SIGHUP re-reads the command line and the
// option files and, when the new configuration is valid, switches to it
// once the running jobs have finished (an invalid one is logged and the
// running configuration stays).
func runSchedule(ctx context.Context, g *Globals, o *scheduleOptions) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	gen, err := prepareSchedule(ctx, g, o)
	if err != nil {
		return err
	}
	defer func() { gen.close() }()
	// One metrics server for the process; reloads swap what it serves.
	var current atomic.Pointer[http.Handler]
	setHandler := func(gen *scheduleGen) {
		h := gen.metrics.Handler(func() error { return ctx.Err() })
		current.Store(&h)
	}
	setHandler(gen)
	if gen.metricsAddr != "" {
		ln, err := net.Listen("tcp", gen.metricsAddr)
		if err != nil {
			return g.optionError(ExitUsage, err, "metrics-addr")
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*current.Load()).ServeHTTP(w, r) }),
			ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		gen.log.Info("serving metrics", "addr", ln.Addr().String())
	}
	for {
		drain := make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- gen.run(ctx, drain) }()
		var next *scheduleGen
		for next == nil {
			select {
			case err := <-done:
				return err
			case <-hup:
				n, err := reloadSchedule(ctx, g)
				if err != nil {
					gen.log.Error("configuration reload refused; the running configuration stays", "err", err)
					continue
				}
				if n.metricsAddr != gen.metricsAddr {
					gen.log.Warn("--metrics-addr changed: restart the service to serve metrics on the new address", "serving", gen.metricsAddr)
				}
				next = n
			}
		}
		gen.log.Info("configuration reloaded; switching once the running jobs have finished")
		close(drain)
		if err := <-done; err != nil {
			next.close()
			return err
		}
		gen.close()
		gen = next
		setHandler(gen)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// reloadSchedule parses the command line and the option files again.
func reloadSchedule(ctx context.Context, g *Globals) (*scheduleGen, error) {
	g2 := &Globals{Out: g.Out, Err: g.Err, args: g.args}
	var o *scheduleOptions
	g2.scheduleCapture = func(c *scheduleOptions) { o = c }
	root := newCommandTree(g2)
	root.SetArgs(g.args)
	if err := root.ExecuteContext(ctx); err != nil {
		return nil, err
	}
	if o == nil {
		return nil, errors.New("the command line no longer runs schedule")
	}
	return prepareSchedule(ctx, g2, o)
}

// scheduleSetup is one configuration of the service, checked, with its
// storage and node opened: what the jobs are built from.
type scheduleSetup struct {
	o         *scheduleOptions
	log       *slog.Logger
	specs     []scheduleSpec
	policy    *pitr.RetentionPolicy // nil: no retention rule, nothing is deleted
	codec     stream.Codec
	rateLimit int64
	rs        []age.Recipient
	fps       []string // fingerprints of rs
	ids       []age.Identity
	target    mariadb.Target
	cat       *backup.Catalog
	metrics   *schedule.Metrics
}

// scheduleSpec is one scheduled job kind.
type scheduleSpec struct {
	kind, mutex string
	sched       schedule.Schedule
}

// prepareSchedule checks the configuration, opens the storage and the
// local node, and builds the jobs. Everything that can be wrong with the
// configuration is refused here, before anything runs; a value from an
// option file is named by file and line, one from the command line by its
// flag.
func prepareSchedule(ctx context.Context, g *Globals, o *scheduleOptions) (_ *scheduleGen, err error) {
	s, err := checkSchedule(g, o)
	if err != nil {
		return nil, err
	}
	cat, done, err := openScheduleStorage(ctx, g, o)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			done()
		}
	}()
	s.cat = cat
	node, rank, err := s.localNode(ctx, g)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	leases := &schedule.SQLLeases{
		Open:  func(ctx context.Context) (*sql.DB, error) { return mariadb.Open(ctx, s.target) },
		Node:  node,
		Owner: fmt.Sprintf("%s/%s/%d/%d", node, host, os.Getpid(), time.Now().UnixNano()),
	}
	if err := leases.Init(ctx, "backup", "verify", "slot:full", "slot:incremental", "slot:verify"); err != nil {
		return nil, fmt.Errorf("writer lease: %w", err)
	}
	s.metrics = schedule.NewMetrics(node)
	s.metrics.WatchISTHorizon(func(ctx context.Context) (cur ist.StatusSample, err error) {
		err = withNode(ctx, s.target, schedule.HorizonReadTimeout, func(ctx context.Context, db *sql.DB) error {
			cur, err = ReadISTSample(ctx, db)
			return err
		})
		return cur, err
	}, s.log)
	return &scheduleGen{
		cfg: schedule.Config{Jobs: s.jobs(), Leases: leases, Node: node, Rank: rank, RankDelay: o.RankDelay,
			TTL: o.LeaseTTL, BackoffMin: o.BackoffMin, Background: s.background(), Logger: s.log, Metrics: s.metrics},
		log: s.log, metrics: s.metrics, metricsAddr: o.MetricsAddr, close: done,
	}, nil
}

// checkSchedule checks every value that needs no connection and no
// storage.
func checkSchedule(g *Globals, o *scheduleOptions) (*scheduleSetup, error) {
	s := &scheduleSetup{o: o, log: g.Logger, target: g.withPassword(o.target())}
	for _, sp := range []scheduleSpec{{kind: "full", mutex: "backup"}, {kind: "incremental", mutex: "backup"}, {kind: "verify", mutex: "verify"}} {
		expr := map[string]string{"full": o.FullSchedule, "incremental": o.IncrementalSchedule, "verify": o.VerifySchedule}[sp.kind]
		if expr == "" {
			continue
		}
		sch, err := schedule.ParseSchedule(expr)
		if err != nil {
			return nil, g.optionError(ExitUsage, err, sp.kind+"-schedule")
		}
		sp.sched = sch
		s.specs = append(s.specs, sp)
	}
	if len(s.specs) == 0 && !o.ArchiveBinlogs {
		return nil, usageErr("nothing to do: give --full-schedule, --incremental-schedule, --verify-schedule or --archive-binlogs")
	}
	var err error
	if s.policy, err = schedulePolicy(g, o); err != nil {
		return nil, err
	}
	if o.LeaseTTL < 3*time.Second {
		return nil, g.optionError(ExitUsage, fmt.Errorf("%s is too short: want at least 3s", o.LeaseTTL), "lease-ttl")
	}
	if o.ArchiveBinlogs && o.MaxLag < time.Second {
		return nil, g.optionError(ExitUsage, fmt.Errorf("%s is too short: want at least 1s", o.MaxLag), "max-lag")
	}
	if s.codec, err = makeCodec(o.Codec, o.Level, 2); err != nil {
		return nil, g.optionError(ExitFailure, err, "codec", "level")
	}
	if o.RateLimit != "" {
		if s.rateLimit, err = text.ParseSize(o.RateLimit); err != nil || s.rateLimit <= 0 {
			return nil, g.optionError(ExitUsage, fmt.Errorf("%q: want a byte rate such as 100M", o.RateLimit), "rate-limit")
		}
	}
	if err := s.loadKeys(g); err != nil {
		return nil, err
	}
	return s, nil
}

// schedulePolicy checks each retention flag on its own, so that an error
// names the one at fault, then the policy as a whole. No rule: nil.
func schedulePolicy(g *Globals, o *scheduleOptions) (*pitr.RetentionPolicy, error) {
	if o.KeepFull == 0 && o.KeepDays == 0 && o.PITRWindow == "" {
		return nil, nil
	}
	var errs []error
	for _, c := range []struct {
		name string
		eo   expireOptions
	}{
		{"keep-full", expireOptions{KeepFull: o.KeepFull}},
		{"keep-days", expireOptions{KeepDays: o.KeepDays}},
		{"pitr-window", expireOptions{PITRWindow: o.PITRWindow}},
	} {
		c.eo.Force = true // each alone may well keep nothing
		if _, err := c.eo.policy(); err != nil {
			errs = append(errs, g.optionError(ExitUsage, fmt.Errorf("retention: %w", err), c.name))
		}
	}
	if len(errs) > 0 {
		return nil, &ExitError{Code: ExitUsage, Err: errors.Join(errs...)}
	}
	eo := expireOptions{KeepFull: o.KeepFull, KeepDays: o.KeepDays, PITRWindow: o.PITRWindow}
	p, err := eo.policy()
	if errors.Is(err, pitr.ErrRetentionRefused) {
		// Only a window that parses to zero (pitr-window = 0) with no
		// other rule gets here; schedule has no --force.
		return nil, g.optionError(ExitUsage, fmt.Errorf("retention: %w: %q keeps nothing and no other rule is set, so every backup would be deleted; set a window above zero or another rule (keep-full, keep-days), or remove the retention settings to delete nothing",
			pitr.ErrRetentionRefused, o.PITRWindow), "pitr-window")
	}
	if err != nil {
		return nil, usageErr("retention: %w", err)
	}
	return &p, nil
}

// loadKeys reads the encryption recipients and the identities verify
// needs, one flag at a time so that an error names the flag at fault.
func (s *scheduleSetup) loadKeys(g *Globals) error {
	o := s.o
	for _, k := range []struct {
		name string
		ko   keyOptions
	}{
		{"recipient", keyOptions{Recipients: o.Recipients}},
		{"recipients-file", keyOptions{RecipientsFile: o.RecipientsFile}},
		{"passphrase-file", keyOptions{PassphraseFile: o.PassphraseFile}},
	} {
		rs, err := k.ko.recipients()
		if err != nil {
			return g.optionError(ExitFailure, err, k.name)
		}
		s.rs = append(s.rs, rs...)
	}
	for _, k := range []struct {
		name string
		ko   keyOptions
	}{
		{"identity", keyOptions{Identity: o.Identity}},
		{"passphrase-file", keyOptions{PassphraseFile: o.PassphraseFile}},
	} {
		ids, err := k.ko.identities()
		if err != nil {
			return g.optionError(ExitFailure, err, k.name)
		}
		s.ids = append(s.ids, ids...)
	}
	for _, r := range s.rs {
		if fp := crypt.RecipientFingerprint(r); fp != "" {
			s.fps = append(s.fps, fp)
		}
	}
	return nil
}

// openScheduleStorage opens the storage (creating a missing local
// directory, as backup does) and proves it answers, so that a storage that
// cannot be reached is refused at start, not at the first backup.
func openScheduleStorage(ctx context.Context, g *Globals, o *scheduleOptions) (*backup.Catalog, func(), error) {
	if _, err := storage.ParseURL(o.URL); err != nil {
		return nil, nil, g.optionError(ExitUsage, err, "storage")
	}
	cat, done, err := o.writableCatalog(ctx)
	if err != nil {
		return nil, nil, g.optionError(ExitFailure, err, "storage")
	}
	// Any read will do; a missing key is an answer.
	if _, err := cat.Store.Stat(ctx, "backups"); err != nil && !errors.Is(err, storage.ErrNotExist) {
		done()
		return nil, nil, g.optionError(ExitFailure, fmt.Errorf("storage %s cannot be reached: %w", o.URL, err), "storage")
	}
	return cat, done, nil
}

// localNode reads the node's wsrep_node_name, which also proves the
// connection works, and its rank in --nodes.
func (s *scheduleSetup) localNode(ctx context.Context, g *Globals) (string, int, error) {
	var node string
	if err := func() error {
		db, err := mariadb.Open(ctx, s.target)
		if err != nil {
			return err
		}
		defer db.Close()
		return db.QueryRowContext(ctx, "SELECT @@wsrep_node_name").Scan(&node)
	}(); err != nil {
		var addr []string // the flag that names the node, if one does
		for name, v := range map[string]string{"node": s.o.Node, "host": s.o.Host, "socket": s.o.Socket} {
			if v != "" {
				addr = append(addr, name)
			}
		}
		slices.Sort(addr)
		return "", 0, g.optionError(ExitFailure, fmt.Errorf("read wsrep_node_name of the local node %s: %w", s.target.Label(), err), addr...)
	}
	rank := slices.Index(s.o.Nodes, node)
	if rank < 0 {
		rank = len(s.o.Nodes)
		if len(s.o.Nodes) > 0 {
			s.log.Warn("this node is not in --nodes: it takes a run only when every listed node is unavailable", "node", node, "nodes", s.o.Nodes)
		}
	}
	return node, rank, nil
}

// jobs builds the scheduled jobs.
func (s *scheduleSetup) jobs() []schedule.Job {
	var jobs []schedule.Job
	for _, sp := range s.specs {
		j := schedule.Job{Kind: sp.kind, Mutex: sp.mutex, Schedule: sp.sched}
		switch sp.kind {
		case "full", "incremental":
			j.Run, j.After = s.backupJob(sp.kind == "incremental"), s.afterBackup
		case "verify":
			j.Run = s.verifyJob
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// refreshCoverage sets the restorable-window metrics from the storage.
func (s *scheduleSetup) refreshCoverage(ctx context.Context) {
	cov, err := (&pitr.Archive{Store: s.cat.Store}).Coverage(ctx, s.cat)
	if err != nil {
		s.log.Warn("could not read the restorable windows", "err", err)
		return
	}
	if n := len(cov.Windows); n > 0 {
		w := cov.Windows[n-1]
		s.metrics.SetWindow(w.FromTime, w.ToTime)
	} else {
		s.metrics.SetWindow(time.Time{}, time.Time{})
	}
}

// afterBackup applies the retention policy after a successful backup.
func (s *scheduleSetup) afterBackup(ctx context.Context) error {
	defer s.refreshCoverage(ctx)
	if s.policy == nil {
		return nil
	}
	plan, err := pitr.Expire(ctx, s.cat, pitr.ExpireOptions{Policy: *s.policy, Logger: s.log})
	if plan != nil {
		_, del, _, delSegs := plan.Counts()
		s.log.Info("retention applied", "policy", s.policy.String(), "deleted_backups", del, "deleted_segments", delSegs)
	}
	if errors.Is(err, pitr.ErrRetentionRefused) {
		// A plan that would delete every backup: nothing is deleted.
		return fmt.Errorf("retention refused, nothing deleted: %w", err)
	}
	return err
}

func (s *scheduleSetup) backupJob(incremental bool) schedule.JobFunc {
	o := s.o
	return func(ctx context.Context, l *schedule.Lease, fence func(context.Context) error) (schedule.Result, error) {
		bo := backup.Options{
			Node: s.target, DefaultsFile: o.DefaultsFile, Incremental: incremental, Desync: o.Desync,
			Codec: s.codec, Recipients: s.rs, KeyFingerprints: s.fps, Parallel: o.Parallel, Logger: s.log,
			LeftoverGrace: o.LeftoverGrace, RateLimit: s.rateLimit,
			// The manifest makes the backup visible: only while this
			// node still holds the writer role.
			BeforeManifest: func(ctx context.Context, m *backup.Manifest) error { return fence(ctx) },
		}
		m, err := backup.Run(ctx, s.cat, bo)
		if incremental && errors.Is(err, backup.ErrNoBase) {
			s.log.Warn("no backup of this node to build an incremental on: taking a full backup instead", "err", err)
			bo.Incremental = false
			m, err = backup.Run(ctx, s.cat, bo)
		}
		if err != nil {
			return schedule.Result{}, err
		}
		return schedule.Result{Bytes: m.Objects[0].Size, Detail: m.ID}, nil
	}
}

func (s *scheduleSetup) verifyJob(ctx context.Context, l *schedule.Lease, fence func(context.Context) error) (schedule.Result, error) {
	m, err := s.cat.Resolve(ctx, "latest")
	if err != nil {
		return schedule.Result{}, err
	}
	if err := verify.Objects(ctx, s.cat, m); err != nil {
		return schedule.Result{}, fmt.Errorf("verify %s: %w", m.ID, err)
	}
	tables, err := verify.RestoreTest(ctx, s.cat, m, verify.RestoreTestOptions{
		RestoreOptions: backup.RestoreOptions{Identities: s.ids, Logger: s.log},
	})
	if err != nil {
		return schedule.Result{}, fmt.Errorf("restore test of %s: %w", m.ID, err)
	}
	return schedule.Result{Detail: m.ID + ": " + strconv.Itoa(len(tables)) + " tables checked"}, nil
}

// background is binlog archiving (when on) and the coverage refresh.
func (s *scheduleSetup) background() []func(context.Context) error {
	o := s.o
	var bg []func(context.Context) error
	if o.ArchiveBinlogs {
		bg = append(bg, func(ctx context.Context) error {
			a := &pitr.Archive{Store: s.cat.Store}
			ao := pitr.ArchiveOptions{Node: s.target, BinlogDir: o.BinlogDir, Codec: s.codec, Recipients: s.rs, KeyFingerprints: s.fps, Logger: s.log}
			return pitr.Follow(ctx, a, pitr.FollowOptions{ArchiveOptions: ao, MaxLag: o.MaxLag, StandbyAfter: o.StandbyAfter,
				OnPass: func(rep *pitr.ArchiveReport, err error) {
					if err == nil {
						s.metrics.ArchivePassed(time.Now())
					}
					if rep != nil {
						for _, gap := range rep.Gaps {
							s.log.Error("gap in the binlog archive", "gap", gap.String())
						}
					}
				}})
		})
	}
	bg = append(bg, func(ctx context.Context) error {
		for {
			s.refreshCoverage(ctx)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(o.CoverageEvery):
			}
		}
	})
	return bg
}
