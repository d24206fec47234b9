package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"golang.org/x/sync/errgroup"

	"github.com/gosst/gosst/internal/version"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/stream/codec"
	"github.com/gosst/gosst/stream/integrity"
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
	// Incremental builds on the latest backup in the catalog.
	Incremental bool
	// Force backs up a node that is not Synced.
	Force bool
	// Desync sets wsrep_desync=ON for the backup so the node's apply lag
	// does not throttle the cluster; it is always switched off afterwards.
	Desync bool
	// Codec compresses the stream (default zstd level 1).
	Codec codec.Codec
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
}

func (o *Options) defaults() error {
	if o.Codec == nil {
		c, err := codec.NewZstd(codec.ZstdOptions{Level: 1})
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
	return nil
}

// Run takes one backup of the node into the catalog's storage and returns
// its manifest. The data object is uploaded first and the manifest last,
// so an interrupted run leaves no backup that list or restore would see.
func Run(ctx context.Context, cat *Catalog, o Options) (*Manifest, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	log := o.Logger
	db, err := mariadb.Open(ctx, o.Node)
	if err != nil {
		return nil, fmt.Errorf("connect to the node to back up: %w", err)
	}
	defer db.Close()
	st, err := mariadb.ReadStatus(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("read node state: %w", err)
	}
	galera := st.LocalState != ""
	switch {
	case !galera:
		log.Warn("wsrep is off on this server: backing it up as a standalone MariaDB")
	case st.LocalState != "Synced" && !o.Force:
		return nil, fmt.Errorf("node is %s, not Synced: a backup now would copy a node that is behind; wait, or use --force", st.LocalState)
	}

	m := &Manifest{Format: ManifestFormat, Type: TypeFull, StartTime: time.Now().UTC(), Node: st.NodeName, ToolVersion: version.String()}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	m.ID = NewID(m.StartTime, binary.LittleEndian.Uint32(rnd[:]))
	var parent *Manifest
	if o.Incremental {
		parent, err = cat.Resolve(ctx, "latest")
		if err != nil {
			return nil, fmt.Errorf("--incremental needs an earlier backup in this storage: %w", err)
		}
		if galera && parent.Galera.UUID != "" && parent.Galera.UUID != st.ClusterStateUUID {
			return nil, fmt.Errorf("latest backup %s belongs to cluster history %s, this node is in %s: take a full backup", parent.ID, parent.Galera.UUID, st.ClusterStateUUID)
		}
		m.Type, m.Parent = TypeIncremental, parent.ID
	}
	m.Codecs = []string{"xbstream", o.Codec.Name()}
	if len(o.Recipients) > 0 {
		m.Codecs = append(m.Codecs, "age")
		m.KeyFingerprint = o.KeyFingerprints
	}

	// Make sure the storage answers before mariabackup starts, and clean
	// up objects of earlier interrupted runs (older ids only).
	if _, err := cat.Leftovers(ctx); err != nil {
		return nil, fmt.Errorf("storage is not usable, no backup started: %w", err)
	}
	if n, err := cat.DeleteLeftovers(ctx, m.ID); err != nil {
		log.Warn("could not remove leftovers of interrupted backups", "err", err)
	} else if n > 0 {
		log.Info("removed objects of interrupted backups", "objects", n)
	}

	if o.Desync && galera {
		if err := desync(ctx, db, log); err != nil {
			return nil, err
		}
		defer resync(db, log)
	}

	obj, scan, err := o.stream(ctx, cat, m, parent)
	if err != nil {
		return nil, err
	}
	if err := scan.Fill(m); err != nil {
		return nil, err
	}
	if parent != nil && m.LSN.From != parent.LSN.To {
		return nil, fmt.Errorf("incremental starts at LSN %d, parent %s ends at %d", m.LSN.From, parent.ID, parent.LSN.To)
	}
	m.Objects = []Object{obj}
	m.EndTime = time.Now().UTC()
	data, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	if err := cat.Store.Put(ctx, manifestKey(m.ID), bytes.NewReader(data), int64(len(data))); err != nil {
		return nil, fmt.Errorf("write manifest (the data is stored but the backup is not complete): %w", err)
	}
	return m, nil
}

// stream runs mariabackup and uploads its sealed stream.
func (o *Options) stream(ctx context.Context, cat *Catalog, m *Manifest, parent *Manifest) (Object, *Scan, error) {
	log := o.Logger
	cfg, err := o.Node.Config()
	if err != nil {
		return Object{}, nil, err
	}
	scratch, err := os.MkdirTemp(o.TmpDir, "gosst-mariabackup-")
	if err != nil {
		return Object{}, nil, fmt.Errorf("mariabackup scratch dir: %w", err)
	}
	defer os.RemoveAll(scratch)

	var args []string
	if o.DefaultsFile != "" {
		args = append(args, "--defaults-file="+o.DefaultsFile)
	}
	args = append(args, "--backup", "--galera-info", "--stream=xbstream", "--target-dir="+scratch,
		"--parallel="+strconv.Itoa(o.Parallel), "--user="+cfg.User)
	if cfg.Net == "unix" {
		args = append(args, "--socket="+cfg.Addr)
	} else {
		host, port, _ := strings.Cut(cfg.Addr, ":")
		args = append(args, "--host="+host, "--port="+port)
	}
	if parent != nil {
		args = append(args, "--incremental-lsn="+strconv.FormatInt(parent.LSN.To, 10))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.Mariabackup, args...)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+cfg.Passwd) // never on argv
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Object{}, nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return Object{}, nil, err
	}
	log.Info("starting mariabackup", "type", m.Type, "id", m.ID, "args", strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return Object{}, nil, fmt.Errorf("start %s: %w (is mariadb-backup installed?)", o.Mariabackup, err)
	}

	ext := "." + o.Codec.Name()
	if len(o.Recipients) > 0 {
		ext += ".age"
	}
	key := dataKey(m.ID, ext)
	scan := NewScan()
	tail := &lineTail{max: 40}
	mtr := meter.New(meter.Options{})
	upR, upW := io.Pipe()
	scanR, scanW := io.Pipe()
	stored := integrity.NewAsyncSHA256()
	defer stored.Sum() // stops its goroutine on every path
	var plain integrity.Sum

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { // mariabackup's stderr: keep a tail, log at debug
		return tail.drain(stderr, log)
	})
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
		err := func() error {
			sw, err := newSealer(io.MultiWriter(upW, stored), o.Codec, o.Recipients)
			if err != nil {
				return err
			}
			ok := false
			defer func() {
				if !ok {
					sw.Abort() // a failed stream gets no end marker
				}
			}()
			var in io.Reader = stdout
			if o.RateLimit > 0 {
				in = ratelimit.NewReader(gctx, in, ratelimit.NewLimiter(o.RateLimit, 0))
			}
			src := io.TeeReader(mtr.Reader(in), scanW)
			if _, err := io.Copy(sw, src); err != nil {
				return fmt.Errorf("stream backup: %w", err)
			}
			// The stream is complete only if mariabackup says so.
			if err := cmd.Wait(); err != nil {
				return fmt.Errorf("mariabackup failed: %w\n%s", err, tail.String())
			}
			if plain, err = sw.Close(); err != nil {
				return err
			}
			ok = true
			return nil
		}()
		scanW.CloseWithError(err)
		if err != nil {
			upW.CloseWithError(err)
			cancel() // stops mariabackup if it is still running
			return err
		}
		return upW.Close()
	})
	if o.Progress != nil {
		pctx, pcancel := context.WithCancel(ctx)
		defer pcancel()
		go mtr.Report(pctx, time.Second, o.Progress)
	}
	if err := g.Wait(); err != nil {
		_ = cmd.Wait()
		return Object{}, nil, err
	}
	storedSum := stored.Sum()
	obj := Object{
		Key:         key,
		Size:        stored.Size(),
		SHA256:      hex.EncodeToString(storedSum[:]),
		PlainSize:   plain.Size,
		PlainSHA256: hex.EncodeToString(plain.SHA256[:]),
	}
	log.Info("backup stream stored", "key", key, "plain_bytes", obj.PlainSize, "stored_bytes", obj.Size)
	return obj, scan, nil
}

// hashCounter hashes and counts what is written to it.
type hashCounter struct {
	h hash.Hash
	n int64
}

func (h *hashCounter) Write(p []byte) (int, error) {
	h.h.Write(p)
	h.n += int64(len(p))
	return len(p), nil
}

// lineTail keeps the last lines of a child's stderr.
type lineTail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *lineTail) drain(r io.Reader, log *slog.Logger) error {
	buf := make([]byte, 32<<10)
	var partial string
	for {
		n, err := r.Read(buf)
		if n > 0 {
			text := partial + string(buf[:n])
			parts := strings.Split(text, "\n")
			partial = parts[len(parts)-1]
			for _, l := range parts[:len(parts)-1] {
				t.add(l)
				log.Debug("mariabackup", "line", l)
			}
		}
		if err != nil {
			if partial != "" {
				t.add(partial)
			}
			return nil
		}
	}
}

func (t *lineTail) add(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, l)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

func (t *lineTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return "--- mariabackup output (last lines) ---\n" + strings.Join(t.lines, "\n")
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
