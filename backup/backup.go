package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/go-sql-driver/mysql"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/gosst/gosst/internal/version"
	"github.com/gosst/gosst/mariabackup"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/stream"
	"github.com/gosst/gosst/stream/meter"
	"github.com/gosst/gosst/stream/ratelimit"
)

// Options configures one backup run.
type Options struct {
	// Node is the local server to back up. mariabackup runs on this host
	// and reads the datadir, so the node must be local.
	Node mariadb.Target
	// DefaultsFile, when set, is passed to mariabackup as --defaults-file
	// (the server's option file, for datadir and InnoDB settings).
	DefaultsFile string
	// Incremental builds on the latest complete backup of this node and
	// datadir lineage (see incrementalBase); it refuses, with the reason,
	// when there is none.
	Incremental bool
	// Force backs up a node that is not Synced.
	Force bool
	// Desync sets wsrep_desync=ON for the backup so the node's apply lag
	// does not throttle the cluster; it is always switched off afterwards.
	Desync bool
	// Codec compresses the stream (default zstd level 1).
	Codec stream.Codec
	// Recipients, when not empty, encrypt the stream with age.
	Recipients []age.Recipient
	// KeyFingerprints are recorded in the manifest (see crypt.Fingerprint).
	KeyFingerprints []string
	// Parallel is mariabackup's --parallel (default 2).
	Parallel int
	// RateLimit caps the bytes per second read from mariabackup (0: none),
	// to bound the I/O a backup takes from a busy node.
	RateLimit int64
	// Mariabackup is the binary (default "mariabackup").
	Mariabackup string
	// TmpDir is mariabackup's --target-dir scratch (default os.TempDir()).
	TmpDir string
	Logger *slog.Logger
	// Progress, when set, is called every few seconds with the bytes read
	// from mariabackup so far.
	Progress func(meter.Snapshot)
	// LeftoverGrace: objects of interrupted backups whose owner cannot be
	// proven gone are removed only after this long without a heartbeat
	// (default DefaultLeftoverGrace). See LeftoverPolicy.
	LeftoverGrace time.Duration
	// BeforeManifest, when set, is called after the data is stored and
	// before the manifest is written (tests use it to hold a backup "in
	// progress" deterministically). An error fails the backup.
	BeforeManifest func(ctx context.Context, m *Manifest) error
}

func (o *Options) defaults() error {
	if o.Codec == nil {
		c, err := stream.DefaultCodec()
		if err != nil {
			return err
		}
		o.Codec = c
	}
	if o.Parallel <= 0 {
		o.Parallel = 2
	}
	if o.Mariabackup == "" {
		o.Mariabackup = "mariabackup"
	}
	if o.TmpDir == "" {
		o.TmpDir = os.TempDir()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LeftoverGrace <= 0 {
		o.LeftoverGrace = DefaultLeftoverGrace
	}
	return nil
}

// ErrNoBase means --incremental found no backup it may build on.
var ErrNoBase = errors.New("no base for an incremental backup")

// Run takes one backup of the node into the catalog's storage and returns
// its manifest. The data object is uploaded first and the manifest last,
// so an interrupted run leaves no backup that list or restore would see.
func Run(ctx context.Context, cat *Catalog, o Options) (_ *Manifest, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	log := o.Logger
	db, err := mariadb.Open(ctx, o.Node)
	if err != nil {
		return nil, fmt.Errorf("connect to the node to back up: %w", err)
	}
	defer db.Close()
	st, galera, err := o.checkNode(ctx, db)
	if err != nil {
		return nil, err
	}

	m, parent, err := o.newManifest(ctx, cat, db, st, galera)
	if err != nil {
		return nil, err
	}

	// Make sure the storage answers before mariabackup starts.
	if _, err := cat.Leftovers(ctx); err != nil {
		return nil, fmt.Errorf("storage is not usable, no backup started: %w", err)
	}
	// The lease marks this run as alive before its first data byte; its
	// heartbeat keeps other runs from taking it for abandoned.
	me := thisProcess()
	lease := RunLease{ID: m.ID, Node: m.Node, Host: me.host, BootID: me.bootID, PID: me.pid, PIDStart: me.start, Started: m.StartTime, Heartbeat: time.Now().UTC()}
	if err := cat.writeLease(ctx, lease); err != nil {
		return nil, fmt.Errorf("storage is not usable (write %s), no backup started: %w", leaseObjectKey(m.ID), err)
	}
	var dataKeyWritten string
	manifestTried := false
	defer func() {
		// After a failed manifest write the manifest may still have landed
		// (an ambiguous storage error): then nothing may go. The lease
		// stays, and a later run removes the objects if they are
		// manifest-less and abandoned.
		if err != nil && !manifestTried {
			removeFailed(ctx, cat, log, dataKeyWritten, leaseObjectKey(m.ID))
		}
	}()
	stopHeartbeat := startHeartbeat(ctx, cat, lease, o.LeftoverGrace, log)
	defer stopHeartbeat()
	o.removeLeftovers(ctx, cat, m.ID, me)

	if o.Desync && galera {
		if err := desync(ctx, db, log); err != nil {
			return nil, err
		}
		defer resync(db, log)
	}

	obj, scan, err := o.stream(ctx, cat, m, parent, me, &dataKeyWritten)
	if err != nil {
		return nil, err
	}
	if err := o.writeManifest(ctx, cat, m, parent, obj, scan, &manifestTried); err != nil {
		return nil, err
	}
	stopHeartbeat()
	if err := cat.Store.Delete(ctx, leaseObjectKey(m.ID)); err != nil {
		log.Warn("backup complete, but its lease object could not be removed", "key", leaseObjectKey(m.ID), "err", err)
	}
	return m, nil
}

// startHeartbeat runs heartbeat for lease in a goroutine; the returned
// stop ends it and waits until it has returned (safe to call twice).
func startHeartbeat(ctx context.Context, cat *Catalog, lease RunLease, grace time.Duration, log *slog.Logger) (stop func()) {
	hbCtx, cancel := context.WithCancel(ctx)
	var hb errgroup.Group
	hb.Go(func() error {
		heartbeat(hbCtx, cat, lease, grace, log)
		return nil
	})
	return func() {
		cancel()
		_ = hb.Wait()
	}
}

// removeLeftovers cleans up after earlier runs, only what is provably
// abandoned: their storage objects (never those of the run keep) and the
// scratch directories of dead processes. A failure is only logged.
func (o Options) removeLeftovers(ctx context.Context, cat *Catalog, keep string, me self) {
	log := o.Logger
	if n, err := cat.DeleteLeftovers(ctx, LeftoverPolicy{Grace: o.LeftoverGrace, Keep: keep, Logger: log, me: me}); err != nil {
		log.Warn("could not remove leftovers of interrupted backups", "err", err)
	} else if n > 0 {
		log.Info("removed objects of abandoned backups", "objects", n)
	}
	removeDeadScratch(o.TmpDir, me, processGone, log)
}

// checkNode reads the node's state: a Galera node must be Synced (unless
// forced); a server with wsrep off is backed up as a standalone one.
func (o Options) checkNode(ctx context.Context, db *sql.DB) (st mariadb.NodeStatus, galera bool, err error) {
	st, err = mariadb.ReadStatus(ctx, db)
	if err != nil {
		return st, false, fmt.Errorf("read node state: %w", err)
	}
	galera = st.LocalState != ""
	switch {
	case !galera:
		o.Logger.Warn("wsrep is off on this server: backing it up as a standalone MariaDB")
	case st.LocalState != "Synced" && !o.Force:
		return st, galera, fmt.Errorf("node is %s, not Synced: a backup now would copy a node that is behind; wait, or use --force", st.LocalState)
	}
	return st, galera, nil
}

// newManifest starts the manifest of a backup of the node db (status st):
// its id, node, lineage, codecs and, for an incremental, its parent, which
// it returns.
func (o Options) newManifest(ctx context.Context, cat *Catalog, db *sql.DB, st mariadb.NodeStatus, galera bool) (m, parent *Manifest, err error) {
	log := o.Logger
	m = &Manifest{Format: ManifestFormat, Type: TypeFull, StartTime: time.Now().UTC(), Node: st.NodeName, ToolVersion: version.String()}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	m.ID = NewID(m.StartTime, binary.LittleEndian.Uint32(rnd[:]))
	if m.Node == "" {
		m.Node, _ = os.Hostname()
	}
	if m.Lineage, err = datadirLineage(ctx, db); err != nil {
		if o.Incremental {
			return nil, nil, fmt.Errorf("%w: %v", ErrNoBase, err)
		}
		log.Warn("datadir lineage unknown: later incrementals cannot build on this backup", "err", err)
	}
	if o.Incremental {
		parent, err = incrementalBase(ctx, cat, m, galera, st.ClusterStateUUID, func() (int64, bool) { return currentLSN(ctx, db) }, log)
		if err != nil {
			return nil, nil, err
		}
		m.Type, m.Parent = TypeIncremental, parent.ID
		m.ID = idAfter(parent.ID, m.ID)
	}
	m.Codecs = []string{"xbstream", o.Codec.Name()}
	if len(o.Recipients) > 0 {
		m.Codecs = append(m.Codecs, "age")
		m.KeyFingerprint = o.KeyFingerprints
	}
	return m, parent, nil
}

// removeFailed removes what a failed run stored (the lease last), on a
// context of its own: ctx may be what failed. Empty keys are skipped.
func removeFailed(ctx context.Context, cat *Catalog, log *slog.Logger, keys ...string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	for _, k := range keys {
		if k == "" {
			continue
		}
		if derr := cat.Store.Delete(cctx, k); derr != nil {
			log.Warn("could not remove an object of the failed backup (the next backup removes it)", "key", k, "err", derr)
		}
	}
}

// writeManifest completes m with the stored object obj and what scan
// found, checks the object is still there and writes the manifest.
// *tried is set once the write is attempted: after that, a failure may
// still have stored it.
func (o Options) writeManifest(ctx context.Context, cat *Catalog, m, parent *Manifest, obj Object, scan *Scan, tried *bool) error {
	if err := scan.Fill(m); err != nil {
		return err
	}
	if parent != nil && m.LSN.From != parent.LSN.To {
		return fmt.Errorf("incremental starts at LSN %d, parent %s ends at %d", m.LSN.From, parent.ID, parent.LSN.To)
	}
	m.Objects = []Object{obj}
	if o.BeforeManifest != nil {
		if err := o.BeforeManifest(ctx, m); err != nil {
			return err
		}
	}
	// The manifest promises the data object: check it is still there (a
	// run elsewhere that wrongly judged this one abandoned would have
	// removed it).
	if oi, err := cat.Store.Stat(ctx, obj.Key); err != nil || oi.Size != obj.Size {
		return fmt.Errorf("the stored data object %s is gone or changed before the manifest was written (size %d, want %d): %v; no backup was recorded", obj.Key, oi.Size, obj.Size, err)
	}
	m.EndTime = time.Now().UTC()
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	*tried = true
	if err := cat.Store.Put(ctx, manifestKey(m.ID), bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("write manifest (the data is stored but the backup is not complete): %w", err)
	}
	return nil
}

// heartbeat rewrites the run's lease until ctx ends, often enough that a
// run elsewhere never sees it older than the grace period.
func heartbeat(ctx context.Context, cat *Catalog, l RunLease, grace time.Duration, log *slog.Logger) {
	every := grace / 4
	if every > 5*time.Minute {
		every = 5 * time.Minute
	}
	if every < 100*time.Millisecond {
		every = 100 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.Heartbeat = time.Now().UTC()
		if err := cat.writeLease(ctx, l); err != nil && ctx.Err() == nil {
			log.Warn("could not refresh the backup's lease; other runs may take it for abandoned after the grace period", "err", err)
		}
	}
}

// datadirLineage identifies the server's datadir: the first InnoDB system
// tablespace file's device, inode and birth time. The file lives as long
// as the datadir; a restore, an SST or a rebuild creates a new one, and
// with it a new InnoDB LSN history that an incremental must not build on.
// The backup runs on the node's host (mariabackup reads the datadir), so
// the file can be examined here.
func datadirLineage(ctx context.Context, db *sql.DB) (string, error) {
	var datadir, home, files sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT @@datadir, @@innodb_data_home_dir, @@innodb_data_file_path").Scan(&datadir, &home, &files); err != nil {
		return "", fmt.Errorf("read the datadir location: %w", err)
	}
	first, _, _ := strings.Cut(files.String, ";")
	name, _, _ := strings.Cut(first, ":")
	if name == "" {
		return "", fmt.Errorf("innodb_data_file_path %q names no file", files.String)
	}
	p := name
	if !filepath.IsAbs(p) {
		dir := home.String
		if dir == "" {
			dir = datadir.String
		} else if !filepath.IsAbs(dir) {
			dir = filepath.Join(datadir.String, dir)
		}
		p = filepath.Join(dir, name)
	}
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, 0, unix.STATX_INO|unix.STATX_BTIME, &stx); err != nil {
		return "", fmt.Errorf("examine the InnoDB system tablespace %s (run the backup on the node's host, as a user that can read the datadir): %w", p, err)
	}
	id := fmt.Sprintf("%s dev=%d:%d ino=%d", filepath.Base(p), stx.Dev_major, stx.Dev_minor, stx.Ino)
	if stx.Mask&unix.STATX_BTIME != 0 {
		id += fmt.Sprintf(" born=%d.%09d", stx.Btime.Sec, stx.Btime.Nsec)
	}
	return id, nil
}

// currentLSN returns the server's Innodb_lsn_current, when it has one.
func currentLSN(ctx context.Context, db *sql.DB) (int64, bool) {
	v, err := mariadb.GlobalStatus(ctx, db, "innodb_lsn_current")
	if err != nil {
		return 0, false
	}
	cur, err := strconv.ParseInt(v["innodb_lsn_current"], 10, 64)
	return cur, err == nil
}

// incrementalBase returns the backup an incremental of this node builds
// on: the latest complete backup taken from the same node and datadir
// lineage (m.Node, m.Lineage), in the same cluster history, whose chain is
// restorable and whose LSN the server has not gone behind. Backups of
// other nodes never qualify: their LSNs are another datadir's. It refuses
// with the reason otherwise.
func incrementalBase(ctx context.Context, cat *Catalog, m *Manifest, galera bool, clusterUUID string, lsn func() (int64, bool), log *slog.Logger) (*Manifest, error) {
	list, _, err := cat.List(ctx)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%w: the storage holds no complete backup; take a full backup of this node first", ErrNoBase)
	}
	latest := list[len(list)-1]
	var base *Manifest
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Node == m.Node {
			base = list[i]
			break
		}
	}
	if base == nil {
		return nil, fmt.Errorf("%w: no backup of node %s in this storage (the latest backup, %s, was taken by node %s); an incremental only builds on its own node's backups: take a full backup of this node first",
			ErrNoBase, m.Node, latest.ID, latest.Node)
	}
	switch {
	case base.Lineage == "":
		return nil, fmt.Errorf("%w: this node's latest backup %s records no datadir lineage (taken by an older gosst, or the datadir could not be examined): take a full backup of this node first", ErrNoBase, base.ID)
	case base.Lineage != m.Lineage:
		return nil, fmt.Errorf("%w: node %s's datadir is not the one its latest backup %s was read from (now %q, then %q: restored or rebuilt by SST since); its changes cannot be found by LSN: take a full backup of this node first",
			ErrNoBase, m.Node, base.ID, m.Lineage, base.Lineage)
	case galera && base.Galera.UUID != "" && base.Galera.UUID != clusterUUID:
		return nil, fmt.Errorf("%w: this node's latest backup %s belongs to cluster history %s, this node is in %s: take a full backup", ErrNoBase, base.ID, base.Galera.UUID, clusterUUID)
	}
	if cur, ok := lsn(); ok && cur < base.LSN.To {
		return nil, fmt.Errorf("%w: the server's LSN %d is behind the end %d of this node's latest backup %s: the datadir is not the one the backup was read from; take a full backup", ErrNoBase, cur, base.LSN.To, base.ID)
	}
	if _, err := cat.Chain(ctx, base); err != nil {
		return nil, fmt.Errorf("%w: this node's latest backup %s is not restorable: %v; take a full backup", ErrNoBase, base.ID, err)
	}
	if base.ID != latest.ID {
		log.Info("incremental builds on this node's latest backup, not the storage's latest", "base", base.ID, "latest", latest.ID, "latest_node", latest.Node)
	}
	return base, nil
}

// stream runs mariabackup and uploads its sealed stream. *written is set
// to the data object's key before the upload starts.
func (o *Options) stream(ctx context.Context, cat *Catalog, m *Manifest, parent *Manifest, me self, written *string) (Object, *Scan, error) {
	cfg, err := o.Node.Config()
	if err != nil {
		return Object{}, nil, err
	}
	// Named after this process, so that the next run removes it when a
	// kill left it behind (removeDeadScratch).
	scratch, err := os.MkdirTemp(o.TmpDir, scratchPattern(me))
	if err != nil {
		return Object{}, nil, fmt.Errorf("mariabackup scratch dir: %w", err)
	}
	defer os.RemoveAll(scratch)

	args := mariabackupArgs(o.DefaultsFile, cfg, scratch, parent, o.Parallel)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := o.Logger
	log.Info("starting mariabackup", "type", m.Type, "id", m.ID, "args", strings.Join(args, " "))
	mb, err := mariabackup.Start(ctx, mariabackup.Spec{
		Path: o.Mariabackup, Args: args,
		Password: cfg.Passwd, PasswordSet: true, // never on argv
		TailLines: 40,
		OnLine:    func(l string) { log.Debug("mariabackup", "line", l) },
	})
	if err != nil {
		return Object{}, nil, fmt.Errorf("%w (is mariadb-backup installed?)", err)
	}
	ext := "." + o.Codec.Name()
	if len(o.Recipients) > 0 {
		ext += ".age"
	}
	key := dataKey(m.ID, ext)
	*written = key
	obj, scan, err := o.storeStream(ctx, cancel, cat, key, mb)
	if err != nil {
		_ = mb.Wait()
		return Object{}, nil, err
	}
	log.Info("backup stream stored", "key", key, "plain_bytes", obj.PlainSize, "stored_bytes", obj.Size)
	return obj, scan, nil
}

// mariabackupArgs is mariabackup's command line for a streamed backup of
// the server cfg into scratch; an incremental (parent set) starts at the
// parent's end LSN. The password is never on it.
func mariabackupArgs(defaultsFile string, cfg *mysql.Config, scratch string, parent *Manifest, parallel int) []string {
	var args []string
	if defaultsFile != "" {
		args = append(args, "--defaults-file="+defaultsFile)
	}
	args = append(args, "--backup", "--galera-info", "--stream=xbstream", "--target-dir="+scratch,
		"--parallel="+strconv.Itoa(parallel), "--user="+cfg.User)
	if cfg.Net == "unix" {
		args = append(args, "--socket="+cfg.Addr)
	} else {
		host, port, _ := strings.Cut(cfg.Addr, ":")
		args = append(args, "--host="+host, "--port="+port)
	}
	if parent != nil {
		args = append(args, "--incremental-lsn="+strconv.FormatInt(parent.LSN.To, 10))
	}
	return args
}

// storeStream uploads mariabackup's stream, sealed, under key while a tee
// of it is scanned for the backup's metadata. Three goroutines (scan,
// upload, mariabackup → seal) run under one errgroup and are joined on
// every path; cancel stops mariabackup when the stream fails.
func (o *Options) storeStream(ctx context.Context, cancel context.CancelFunc, cat *Catalog, key string, mb *mariabackup.Process) (Object, *Scan, error) {
	scan := NewScan()
	mtr := meter.New(meter.Options{})
	upR, upW := io.Pipe()
	scanR, scanW := io.Pipe()
	stored := stream.NewAsyncSHA256()
	defer stored.Sum() // stops its goroutine on every path
	var plain stream.Sum

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { // metadata and table list, from a tee of the stream
		err := scan.Run(scanR)
		if err != nil {
			scanR.CloseWithError(err)
			return fmt.Errorf("mariabackup's stream is malformed: %w", err)
		}
		_, _ = io.Copy(io.Discard, scanR)
		return nil
	})
	g.Go(func() error { // upload
		err := cat.Store.Put(gctx, key, upR, -1)
		if err != nil {
			upR.CloseWithError(err)
			return fmt.Errorf("upload %s: %w", key, err)
		}
		return nil
	})
	g.Go(func() error { // mariabackup → tee → codec → age → upload
		var err error
		plain, err = o.seal(gctx, mb, io.MultiWriter(upW, stored), scanW, mtr)
		scanW.CloseWithError(err)
		if err != nil {
			upW.CloseWithError(err)
			cancel() // stops mariabackup if it is still running
			return err
		}
		return upW.Close()
	})
	defer reportProgress(ctx, mtr, o.Progress)()
	if err := g.Wait(); err != nil {
		return Object{}, nil, err
	}
	storedSum := stored.Sum()
	return Object{
		Key:         key,
		Size:        stored.Size(),
		SHA256:      hex.EncodeToString(storedSum[:]),
		PlainSize:   plain.Size,
		PlainSHA256: hex.EncodeToString(plain.SHA256[:]),
	}, scan, nil
}

// seal copies mariabackup's output (rate-limited, metered, teed to tee)
// into a sealed stream written to dst. The stream gets its end marker only
// when mariabackup exits successfully.
func (o *Options) seal(ctx context.Context, mb *mariabackup.Process, dst, tee io.Writer, mtr *meter.Meter) (stream.Sum, error) {
	sw, err := stream.NewWriter(dst, stream.WriteOptions{Codec: o.Codec, Recipients: o.Recipients})
	if err != nil {
		return stream.Sum{}, err
	}
	ok := false
	defer func() {
		if !ok {
			sw.Abort() // a failed stream gets no end marker
		}
	}()
	var in io.Reader = mb.Stdout
	if o.RateLimit > 0 {
		in = ratelimit.NewReader(ctx, in, ratelimit.NewLimiter(o.RateLimit, 0))
	}
	// One large buffer: mariabackup's pipe holds up to 1 MiB (see
	// mariabackup.growPipe), and every read here is also a hand-over to the
	// scan goroutine and a write into the codec, so io.Copy's 32 KiB would
	// cost 32 times as many syscalls and goroutine switches per byte.
	buf := make([]byte, copyBufSize)
	if _, err := io.CopyBuffer(sw, io.TeeReader(mtr.Reader(in), tee), buf); err != nil {
		return stream.Sum{}, fmt.Errorf("stream backup: %w", err)
	}
	// The stream is complete only if mariabackup says so, and its error
	// carries all of its output's last lines: Wait reads stderr to its end
	// first.
	if err := mb.Wait(); err != nil {
		return stream.Sum{}, mariabackupFailed(err)
	}
	plain, err := sw.Close()
	if err != nil {
		return stream.Sum{}, err
	}
	ok = true
	return plain, nil
}

// copyBufSize is the buffer of the copy from mariabackup into the sealed
// stream.
const copyBufSize = 1 << 20

// mariabackupFailed is the error of a mariabackup that exited with err,
// with the last lines of its output when err carries them.
func mariabackupFailed(err error) error {
	var ee *mariabackup.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("mariabackup failed: %w\n--- mariabackup output (last lines) ---\n%s", ee.Err, ee.Tail)
	}
	return fmt.Errorf("mariabackup failed: %w", err)
}

func desync(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	if _, err := db.ExecContext(ctx, "SET GLOBAL wsrep_desync = ON"); err != nil {
		return fmt.Errorf("set wsrep_desync=ON (needs SUPER or ADMIN privilege): %w", err)
	}
	log.Info("node desynced for the backup (wsrep_desync=ON)")
	return nil
}

// resync waits (bounded) for the receive queue to drain, then switches
// wsrep_desync off. It runs even when the backup failed, on its own
// context, so the node is never left desynced by us.
func resync(db *sql.DB, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		v, err := mariadb.GlobalStatus(ctx, db, "wsrep_local_recv_queue")
		if err != nil || v["wsrep_local_recv_queue"] == "0" {
			break
		}
		time.Sleep(time.Second)
	}
	if _, err := db.ExecContext(ctx, "SET GLOBAL wsrep_desync = OFF"); err != nil {
		log.Error("could not switch wsrep_desync off: run SET GLOBAL wsrep_desync=OFF on this node", "err", err)
		return
	}
	log.Info("node resynced (wsrep_desync=OFF)")
}

// idAfter returns id, or, when id does not sort after parent (both taken
// in the same second, or a clock that went back), an id in parent's second
// that sorts after it: ids have one-second resolution, and an incremental
// must sort after its parent, for "latest" and for manifest validation.
// The new suffix is drawn from id's random one, so two runs that both
// fall back for the same parent still get different ids.
func idAfter(parent, id string) string {
	if id > parent {
		return id
	}
	t, err := time.Parse("20060102T150405Z", parent[:16])
	if err != nil {
		return id
	}
	suffix, err1 := strconv.ParseUint(parent[17:], 16, 32)
	rnd, err2 := strconv.ParseUint(id[17:], 16, 32)
	if err1 != nil || err2 != nil {
		return id
	}
	if suffix >= 0xffffff {
		return NewID(t.Add(time.Second), uint32(rnd))
	}
	return NewID(t, uint32(suffix+1+rnd%(0xffffff-suffix)))
}
