package sst

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gosst/gosst/internal/ctxio"
	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/mariabackup"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/sst/resume"
	"github.com/gosst/gosst/sst/wsrep"
	"github.com/gosst/gosst/stream/codec"
	"github.com/gosst/gosst/stream/ratelimit"
	"github.com/gosst/gosst/stream/wire"
	"github.com/klauspost/readahead"
	"golang.org/x/sync/errgroup"
)

// Donor sends a state transfer to a joiner.
type Donor struct {
	Args    *wsrep.Args
	Config  Config
	log     *logger
	out     *output
	getenv  func(string) string
	environ []string
	ic      *idleConn
	total   int64 // estimated backup size, measured before connecting
	// stages measures where the stream's time goes (bottleneck.go).
	stages *donorStages
	// resumable: the stream goes through a resume session, not d.ic.
	resumable bool
}

// Run does the whole donor side. It prints "done <uuid:seqno>" only after
// the joiner confirmed receipt.
func (d *Donor) Run(parent context.Context) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	hostport, pin, err := ParseDonorTarget(d.Args.Address)
	if err != nil {
		if errors.Is(err, ErrProtoVersion) {
			return exitf(wsrep.ExitProtoNoSupport, "%w", err)
		}
		return exitf(wsrep.ExitInvalid, "--address: %w", err)
	}
	if d.Args.GTID == "" {
		return exitf(wsrep.ExitInvalid, "--gtid is required on the donor")
	}
	pos, err := ist.ParseGaleraInfo(d.Args.GTID)
	if err != nil {
		return exitf(wsrep.ExitInvalid, "--gtid: %w", err)
	}
	pos = pos.WithDomain(d.Args.GTIDDomainID)
	var secret []byte
	if ra := d.getenv("WSREP_SST_OPT_REMOTE_AUTH"); ra != "" {
		_, sec, ok := strings.Cut(ra, ":")
		if !ok {
			sec = ra
		}
		secret = []byte(sec)
	}
	host, _, _ := net.SplitHostPort(hostport)
	tlsCfg, err := d.tlsFor(host, hostport, pin)
	if err != nil {
		return err
	}
	if !d.Args.Bypass {
		// Measured before connecting: the joiner gives a connection only
		// hello-timeout to send its header, and a walk of a large datadir
		// can take longer.
		d.total = dataSize(strings.TrimRight(d.Args.DataDir, "/"))
	}
	d.stages = newDonorStages(nil)
	first := func(ctx context.Context) (net.Conn, error) {
		return dial(ctx, hostport, d.Config.ConnectTimeout, d.log.Warnf)
	}
	conn, ic, token, err := d.connect(ctx, hostport, tlsCfg, pin, secret, first, d.stages.rawConn, "nothing sent")
	if err != nil {
		return err
	}
	d.ic = ic
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	br := bufio.NewReader(conn)

	if d.Args.Bypass {
		d.log.Infof("IST bypass: joiner %s gets the missing write-sets from Galera; sending only position %s (no data)", hostport, pos.Line())
		if err := sendMessage(conn, token, Control{Proto: ProtoVersion, Kind: KindIST, Position: pos.UUIDSeqno(), Domain: pos.DomainID()}); err != nil {
			return exitf(wsrep.ExitPipe, "send IST marker: %w", err)
		}
		if err := d.awaitReply(br); err != nil {
			return err
		}
		return d.out.line("done " + pos.UUIDSeqno())
	}
	return d.full(ctx, conn, br, token, pos, hostport, d.resumeConfig(hostport, tlsCfg, pin, secret))
}

// connect dials the joiner with dialFn and runs the TLS handshake; it
// returns the connection, the idle-timeout layer under it and the token
// that proves the one-time secret on it. wrap, if not nil, wraps the raw
// connection under TLS (the stage meters); what is what a failed
// handshake means for the transfer, for its error.
func (d *Donor) connect(ctx context.Context, hostport string, tlsCfg *tls.Config, pin, secret []byte, dialFn func(context.Context) (net.Conn, error), wrap func(net.Conn) net.Conn, what string) (net.Conn, *idleConn, []byte, error) {
	raw, err := dialFn(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	ic := newIdleConn(raw, d.Config.IdleTimeout)
	token := secret
	if tlsCfg == nil {
		return ic, ic, token, nil
	}
	var under net.Conn = ic
	if wrap != nil {
		under = wrap(ic)
	}
	tc := tls.Client(under, tlsCfg)
	hctx, hcancel := context.WithTimeout(ctx, 60*time.Second)
	err = tc.HandshakeContext(hctx)
	hcancel()
	if err != nil {
		raw.Close()
		return nil, nil, nil, exitf(ExitAccess, "TLS handshake with joiner %s failed, %s: %w", hostport, what, err)
	}
	if pin != nil {
		// Prove the secret without sending it (see secretProof).
		if token, err = secretProof(tc.ConnectionState(), secret); err != nil {
			raw.Close()
			return nil, nil, nil, exitf(ExitAccess, "TLS session with joiner %s: %w", hostport, err)
		}
	}
	return tc, ic, token, nil
}

// resumeConfig is the resume session of a full SST, or nil when this
// donor or the joiner does not resume (docs/sst.md, "Resuming after a
// network blip"). A reconnect dials the same address, with the same TLS
// trust and a fresh proof of the secret, and names the session.
func (d *Donor) resumeConfig(hostport string, tlsCfg *tls.Config, pin, secret []byte) *resume.Config {
	if d.Config.ResumeWindow <= 0 || !OffersResume(d.Args.Address) {
		return nil
	}
	var id resume.ID
	_, _ = rand.Read(id[:])
	rc := &resume.Config{
		ID:          id,
		Window:      d.Config.ResumeWindow,
		Spool:       d.Config.ResumeSpool,
		SpoolMemory: d.Config.ResumeSpoolMemory,
		SpoolDir:    d.Config.TmpDir,
		Logf:        d.log.Warnf,
	}
	if rc.SpoolMemory == 0 {
		rc.SpoolMemory = -1 // resume-spool-memory=0: everything in the file
	}
	rc.Reconnect = func(rctx context.Context) (io.ReadWriteCloser, error) {
		for {
			conn, err := d.reconnect(rctx, hostport, tlsCfg, pin, secret, id)
			if err == nil {
				return d.stages.sessionConn(conn), nil
			}
			if rctx.Err() != nil || !brokenLink(err) {
				return nil, err
			}
			// The link failed again while the new connection was being
			// set up (a flapping link): the joiner is most likely still
			// waiting, so this is no reason to give up the window.
			d.log.Warnf("reconnect to joiner %s broke before the session resumed: %v; trying again", hostport, err)
			select {
			case <-rctx.Done():
				return nil, err
			case <-time.After(time.Second):
			}
		}
	}
	return rc
}

// reconnect makes one new connection of the resume session: dial (which
// retries until the joiner's host answers), handshake, resume header.
func (d *Donor) reconnect(rctx context.Context, hostport string, tlsCfg *tls.Config, pin, secret []byte, id resume.ID) (net.Conn, error) {
	dial := func(ctx context.Context) (net.Conn, error) { return redial(ctx, hostport) }
	conn, ic, token, err := d.connect(rctx, hostport, tlsCfg, pin, secret, dial, d.stages.rawConn, "reconnect")
	if err != nil {
		return nil, err
	}
	// The session reads all the time; the joiner may be silent (it
	// acknowledges every 1 MiB). The deadline the handshake's last read
	// set must go too, or this connection breaks idle-timeout after it
	// was made, however well it carries the stream.
	ic.untimedReads()
	ctl := Control{Proto: ProtoVersion, Kind: KindResume, Session: hex.EncodeToString(id[:])}
	if err := sendMessage(conn, token, ctl); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send resume header: %w", err)
	}
	return conn, nil
}

// brokenLink reports whether err is the connection failing (reset, end of
// file, a timeout) rather than the joiner refusing it (a certificate, the
// pin, the secret, the protocol).
func brokenLink(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ETIMEDOUT) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, ErrTimeout) || errors.As(err, &ne) && ne.Timeout()
}

// tlsFor is the TLS configuration towards the joiner: pinned to the
// joiner's ephemeral key if its address announced one, else from this
// donor's certificates. Without either it is nil (cleartext) only if this
// donor has encrypt=off: the joiner's address alone never turns
// encryption off, since whoever can alter it in transit could strip the
// pin.
func (d *Donor) tlsFor(host, hostport string, pin []byte) (*tls.Config, error) {
	c := d.Config
	if pin != nil {
		if c.CA != "" || c.CAPath != "" {
			return nil, exitf(ExitAccess, "joiner %s announced an ephemeral key (it has no certificate configured for the SST), but this donor verifies the joiner against its CA (ssl-mode=%s, %s): configure the joiner's certificate too, nothing sent", hostport, c.SSLMode, c.TLSSource)
		}
		d.log.Infof("joiner %s uses an ephemeral key for this SST: TLS 1.3, its key pinned to the fingerprint in its address", hostport)
		return pinnedClientConfig(pin), nil
	}
	tlsCfg, err := tlsConfig(c, false, host)
	if err != nil || tlsCfg != nil {
		return tlsCfg, err
	}
	if !c.EncryptOff {
		return nil, exitf(wsrep.ExitProtoNoSupport, "joiner %s offers no encryption (it runs an older gosst, or has encrypt=off) and this donor has no certificate for the SST: refusing to send in cleartext, nothing sent; update the joiner, configure certificates on both nodes, or set encrypt=off in [gosst] on this donor too", hostport)
	}
	d.log.Warnf("encrypt=off and no certificate: sending to joiner %s in cleartext", hostport)
	return nil, nil
}

func (d *Donor) awaitReply(br *bufio.Reader) error {
	var r Reply
	if err := readMessage(br, nil, &r); err != nil {
		return exitf(codeOr(err, wsrep.ExitPipe), "no confirmation from the joiner: %w", err)
	}
	if !r.OK {
		return exitf(wsrep.ExitPipe, "joiner refused the transfer: %s", r.Error)
	}
	return nil
}

// codec returns the stream codec of the configured compression and how
// the log describes it.
func (d *Donor) codec() (codec.Codec, string, error) {
	c := d.Config
	switch c.Codec {
	case codec.NameZstd:
		// A 1 MiB window makes the parallel encoder emit every 4 MiB of
		// input (the default 8 MiB window buffers 32 MiB jobs), so a slow
		// or rate-limited backup still keeps the connection busy and a
		// dead joiner is noticed at the next write.
		cd, err := codec.NewZstd(codec.ZstdOptions{Level: c.CodecLevel, Concurrency: c.CodecConcurrency, Window: 1 << 20})
		return cd, fmt.Sprintf("zstd level %d, %d threads", c.CodecLevel, c.CodecConcurrency), err
	case codec.NameS2:
		cd, err := codec.NewS2(codec.S2Options{Concurrency: c.CodecConcurrency})
		return cd, fmt.Sprintf("s2, %d threads", c.CodecConcurrency), err
	case CodecAuto:
		// Compression happens frame by frame in the wire layer.
		return codec.None(), "auto: S2 (or zstd, if the joiner decodes it) frame by frame, only while that moves the data faster", nil
	}
	cd, err := codec.Lookup(c.Codec)
	return cd, c.Codec, err
}

// backupArgs is mariabackup's command line (no secrets: the password goes
// through MYSQL_PWD).
func (d *Donor) backupArgs(target, user string) []string {
	a := d.Args
	var args []string
	if a.DefaultsFile != "" {
		args = append(args, "--defaults-file="+a.DefaultsFile)
	}
	if a.DefaultsExtraFile != "" {
		args = append(args, "--defaults-extra-file="+a.DefaultsExtraFile)
	}
	if a.DefaultsGroupSuffix != "" {
		args = append(args, "--defaults-group-suffix="+a.DefaultsGroupSuffix)
	}
	args = append(args, "--backup", "--galera-info", "--stream=xbstream", "--no-version-check",
		"--target-dir="+target, "--datadir="+strings.TrimRight(a.DataDir, "/"), "--databases-exclude=lost+found")
	if a.Socket != "" {
		args = append(args, "--socket="+a.Socket)
	}
	if user != "" {
		args = append(args, "--user="+user)
	}
	if d.Config.BackupThreads > 0 {
		args = append(args, "--parallel="+strconv.Itoa(d.Config.BackupThreads))
	}
	// Path options given to mysqld on its command line only; mariabackup
	// understands these (and must not get server-only options).
	for _, m := range a.MysqldArgs {
		name, _, ok := strings.Cut(m, "=")
		if !ok {
			continue
		}
		switch mariadb.NormalizeOptionName(name) {
		case "innodb-data-home-dir", "innodb-log-group-home-dir", "innodb-undo-directory",
			"innodb-data-file-path", "innodb-page-size", "innodb-undo-tablespaces", "aria-log-dir-path":
			args = append(args, m)
		}
	}
	return args
}

func (d *Donor) auth() (user, password string) {
	auth := d.getenv("WSREP_SST_OPT_AUTH")
	if auth == "" {
		auth = d.Config.Auth
	}
	user, password, _ = strings.Cut(auth, ":")
	return user, password
}

// full streams mariabackup's backup to the joiner; through a resume
// session if rc is not nil.
func (d *Donor) full(ctx context.Context, conn net.Conn, br *bufio.Reader, token []byte, pos ist.Position, hostport string, rc *resume.Config) error {
	total := d.total
	cd, how, err := d.codec()
	if err != nil {
		return exitf(wsrep.ExitInvalid, "compression: %w", err)
	}
	ctl := Control{Proto: ProtoVersion, Kind: KindSST, Position: pos.UUIDSeqno(), Domain: pos.DomainID(), Total: total, Codec: cd.Name()}
	if rc != nil {
		ctl.Session = hex.EncodeToString(rc.ID[:])
	}
	if err := sendMessage(conn, token, ctl); err != nil {
		return exitf(wsrep.ExitPipe, "send header to joiner %s: %w", hostport, err)
	}
	// The stream and the reply go through the session if there is one:
	// out is where the data goes, kill ends the transfer so that the
	// joiner cannot take what it got for complete, and unblock ends a
	// read of the reply.
	var out io.Writer = conn
	kill := func() { conn.Close() }
	unblock := func() { _ = d.ic.Conn.SetReadDeadline(time.Now()) }
	var sess *resume.Session
	if rc != nil {
		// The joiner answers the header with its resume hello, or
		// refuses the transfer with a reply.
		if head, err := br.Peek(len(wire.Magic)); err == nil && string(head) == wire.Magic {
			if err := d.awaitReply(br); err != nil {
				return err
			}
			return exitf(wsrep.ExitProto, "joiner %s confirmed a transfer that has not begun instead of starting the resumable session", hostport)
		}
		if sess, err = resume.Open(ctx, bufConn{br, d.stages.sessionConn(conn)}, *rc); err != nil {
			return exitf(codeOr(err, wsrep.ExitPipe), "start resumable session with joiner %s: %w", hostport, err)
		}
		defer sess.Abort()
		d.resumable = true
		d.log.Infof("resumable transfer: after a broken connection this donor redials for up to %s, keeping up to %s not yet confirmed by the joiner (resume-window, resume-spool)", rc.Window, human(rc.Spool))
		out, kill, unblock, br = sess, sess.Abort, sess.Abort, bufio.NewReader(sess)
	}
	tmp, err := os.MkdirTemp(d.Config.TmpDir, "gosst-donor-")
	if err != nil {
		return exitf(wsrep.ExitInvalid, "temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	mb, closeLog, err := d.startBackup(bctx, tmp, hostport, how)
	if err != nil {
		return err
	}
	defer closeLog()
	stdout := mb.Stdout

	// Every goroutine below is joined before full returns: the progress
	// reporter before the final line, the reply reader last.
	prog := newProgress(d.log, d.out, d.Args.Progress && !d.Config.ProgressOff, "streaming", total, d.Config.ReportEvery)
	pctx, pcancel := context.WithCancel(ctx)
	var progG errgroup.Group
	progG.Go(func() error { prog.run(pctx); return nil })
	stopProg := func() { pcancel(); _ = progG.Wait() }
	defer stopProg()

	replyCh, joinReply := d.watchReply(br, bcancel, unblock)
	defer joinReply()
	// mariabackup reads a chunk, then writes it into the pipe, which
	// holds 1 MiB; without a reader draining the pipe at once its next
	// read waits for each network send. Read ahead of the sender, into
	// up to 16 MiB: 25 % off a 2 GiB SST (docs/benchmarks.md).
	ra, err := readahead.NewReaderSize(ctxio.NewReader(bctx, stdout), 16, 1<<20)
	if err != nil {
		return err
	}
	// Close waits for the read-ahead goroutine, which ends when its read
	// of the pipe returns: the pipe is closed first.
	defer func() { _ = stdout.Close(); _ = ra.Close() }()
	ka := &keepaliveWriter{w: prog.wire.Writer(d.stages.conn.Writer(out))}
	streamStart := time.Now()
	auto, sendErr := d.send(ctx, bctx, bcancel, kill, cd, ka, ra, prog, mb)
	if kerr := ka.err(); kerr != nil && sendErr != nil {
		sendErr = kerr // the keepalive saw the broken link first
	}
	stopProg()
	if sendErr != nil {
		return d.sendFailed(ctx, bcancel, mb, replyCh, hostport, sendErr)
	}
	d.log.Infof("backup sent; waiting for the joiner to verify it")
	var res replyResult
	if sess == nil {
		d.ic.noReadDeadline.Store(false)
		if idle := time.Duration(d.ic.idle.Load()); idle > 0 {
			_ = d.ic.Conn.SetReadDeadline(time.Now().Add(idle))
		}
		res = <-replyCh
	} else {
		// The session may be on another connection by now: the joiner
		// gets idle-timeout in all to confirm, as without a session.
		res = d.awaitSessionReply(ctx, replyCh, sess)
	}
	if res.err != nil {
		return exitf(codeOr(res.err, wsrep.ExitPipe), "no confirmation from the joiner: %w", res.err)
	}
	if !res.r.OK {
		return exitf(wsrep.ExitPipe, "joiner refused the transfer: %s", res.r.Error)
	}
	if sess != nil {
		// Tell the joiner that its reply arrived, and wait for its end.
		cctx, ccancel := context.WithTimeout(ctx, max(d.Config.IdleTimeout, 5*time.Second))
		if err := sess.Close(cctx); err != nil {
			d.log.Warnf("closing the resumable session after the joiner's confirmation: %v", err)
		}
		ccancel()
		if st := sess.Stats(); st.Breaks > 0 {
			d.log.Infof("the connection was lost %d time%s and resumed each time (%s sent again, %s through the spool file)", st.Breaks, plural(st.Breaks), human(st.Replayed), human(st.Spilled))
		}
	}
	prog.summary("sent")
	d.logLimiter()
	if auto != nil {
		st := auto()
		share := 100 * st.Wait.Seconds() / max(time.Since(streamStart).Seconds(), 1e-9)
		d.log.Infof("compression=auto sent %d of %d frames compressed (plain %d, S2 %d, zstd %d%s); sending to the joiner took %.0f%% of the time (it tries compressing only while the connection is the limit, over half the time, and keeps it only while that moves the data faster; compression=s2 or zstd always compress, e.g. to save bandwidth)",
			st.S2+st.Zstd, st.S2+st.Zstd+st.Plain, st.Plain, st.S2, st.Zstd, zstdNote(d.Args.Address), share)
	}
	return d.out.line("done " + pos.UUIDSeqno())
}

// autoOptions are compression=auto's settings for a joiner at address:
// zstd blocks only for a joiner that says it decodes them (an older one
// would refuse the stream's hello), and compression-threads compressors,
// as for compression=zstd or s2.
func autoOptions(c Config, address string) *wire.AdaptiveOptions {
	return &wire.AdaptiveOptions{Zstd: OffersZstdBlocks(address), EpochBytes: autoEpochBytes, Workers: c.CodecConcurrency}
}

// autoEpochBytes is compression=auto's measurement epoch in data bytes; 0
// means the wire default. Tests shorten it to fit their small streams.
var autoEpochBytes int64

// zstdNote says, for the auto summary, when zstd blocks were not an
// option.
func zstdNote(addr string) string {
	if OffersZstdBlocks(addr) {
		return ""
	}
	return "; the joiner does not offer zstd blocks"
}

// startBackup starts mariabackup --backup into a pipe; bctx ends it. The
// returned func closes its log file.
func (d *Donor) startBackup(bctx context.Context, tmp, hostport, how string) (*mariabackup.Process, func(), error) {
	user, password := d.auth()
	args := d.backupArgs(tmp, user)
	d.log.Infof("streaming to joiner %s: %s %s (compression %s)", hostport, d.Config.Mariabackup, strings.Join(args, " "), how)
	// Like the stock script, mariabackup's log also goes to
	// <datadir>/mariabackup.backup.log (the previous one archived).
	logFile := openPhaseLog(strings.TrimRight(d.Args.DataDir, "/"), "backup", d.Config, d.log, time.Now())
	closeLog := func() {
		if logFile != nil {
			logFile.Close()
		}
	}
	// A backup that is no longer wanted is killed outright: its locks go
	// with its connections, and the sooner this script exits, the sooner
	// mysqld learns that the transfer failed.
	spec := mbSpec(d.log, d.Config.Mariabackup, args, "mariabackup: ", logFile, syscall.SIGKILL)
	spec.Env, spec.Password, spec.Dir = d.environ, password, tmp
	mb, err := mariabackup.Start(bctx, spec)
	if err != nil {
		closeLog()
		return nil, nil, exitf(wsrep.ExitNoEnt, "%w", err)
	}
	return mb, closeLog, nil
}

// watchReply listens for the joiner while streaming: its failure report,
// or the end of the connection when it dies, stops the backup at once (a
// donor script that outlives its joiner can have its late failure report
// attributed by mysqld to the next state transfer). The reply arrives on
// the returned channel; join waits for the reader, first ending a read
// still blocked on a silent joiner.
func (d *Donor) watchReply(br *bufio.Reader, bcancel context.CancelFunc, unblock func()) (<-chan replyResult, func()) {
	d.ic.untimedReads()
	replyCh := make(chan replyResult, 1)
	done := make(chan struct{})
	var g errgroup.Group
	g.Go(func() error {
		defer close(done)
		var r Reply
		err := readMessage(br, nil, &r)
		replyCh <- replyResult{r, err}
		if err != nil || !r.OK {
			bcancel()
		}
		return nil
	})
	join := func() {
		select {
		case <-done:
		default:
			unblock()
		}
		_ = g.Wait()
	}
	return replyCh, join
}

// send copies the backup from ra to the joiner through the codec and the
// frame writer, with keepalive frames while the backup is silent. It ends
// with an end frame only for a backup mariabackup reports as complete.
// auto, if not nil, reports compression=auto's frame counts.
func (d *Donor) send(ctx, bctx context.Context, bcancel context.CancelFunc, kill func(), cd codec.Codec, ka *keepaliveWriter, ra io.Reader, prog *progress, mb *mariabackup.Process) (auto func() wire.AdaptiveStats, err error) {
	wo := wire.WriterOptions{Codec: cd.Name(), FrameSize: wire.DefaultFrameSize, CRC32C: true}
	if d.Config.Codec == CodecAuto {
		wo.Adaptive = autoOptions(d.Config, d.Args.Address)
	}
	fw, err := wire.NewFrameWriter(ka, wo)
	if err != nil {
		return nil, err
	}
	// Stops compression=auto's compressors on the failure paths; after
	// Close it does nothing.
	defer fw.Abort()
	if wo.Adaptive != nil {
		auto = fw.AdaptiveStats
	}
	// Highly compressible data (empty InnoDB pages) or a backup stuck
	// on a lock can keep the wire silent for long; keepalive frames
	// keep the joiner's idle timer quiet and show a dead joiner here.
	kctx, kstop := context.WithCancel(ctx)
	var kg errgroup.Group
	kg.Go(func() error { ka.run(kctx, keepaliveEvery(d.Config.IdleTimeout), bcancel); return nil })
	defer func() { kstop(); _ = kg.Wait() }()
	defer ka.stop()
	// No end marker with the plaintext's SHA-256 here (backups have
	// one): mariabackup's CRC-32 on every xbstream chunk, checked by
	// the joiner's extractor, already covers the plaintext end to end,
	// the codec checks its own frames (s2 block CRCs, zstd content
	// checksums), and the wire's end frame covers length and bytes.
	cw, err := cd.NewWriter(fw)
	if err != nil {
		return auto, err
	}
	st := d.stages
	var src io.Reader = st.source.Reader(ra)
	if d.Config.RateLimit > 0 {
		src = ratelimit.NewReader(bctx, src, ratelimit.NewLimiter(d.Config.RateLimit, 0))
		st.rateLim = true
	}
	st.begin()
	_, err = io.CopyBuffer(cw, prog.raw.Reader(st.limited.Reader(src)), make([]byte, 1<<20))
	if err != nil {
		cw.Close()
		return auto, err
	}
	// Only a backup mariabackup reports as complete gets an end frame.
	if werr := st.source.Time(mb.Wait); werr != nil {
		kill() // never let a failed backup look complete
		cw.Close()
		return auto, &ExitError{Code: wsrep.ExitInvalid, Err: fmt.Errorf("mariabackup --backup failed: %w", werr)}
	}
	if err := cw.Close(); err != nil {
		return auto, err
	}
	if err := ka.stop(); err != nil {
		return auto, err
	}
	err = fw.Close()
	st.end()
	return auto, err
}

// logLimiter logs which stage limited the stream (docs/sst.md, "Which
// stage limited the transfer").
func (d *Donor) logLimiter() {
	if d.stages.final == nil {
		return
	}
	r := *d.stages.final
	if r.Limiter == "" {
		return
	}
	d.log.Infof("%s", limiterLine(r, "stream"))
}

// sendFailed stops the backup after a failed send and returns the error
// to report: the joiner's own reason if it said why it hung up.
func (d *Donor) sendFailed(ctx context.Context, bcancel context.CancelFunc, mb *mariabackup.Process, replyCh <-chan replyResult, hostport string, sendErr error) error {
	bcancel()
	_ = mb.Stdout.Close() // a writer still holding the pipe gets EPIPE
	select {
	case <-mb.Drained():
	case <-time.After(15 * time.Second):
		d.log.Warnf("mariabackup's stderr still open 15 s after it was told to stop")
	}
	_ = mb.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	// The joiner may have said why it hung up. (A resume session's
	// reader ends with the session, see watchReply.)
	if !d.resumable {
		_ = d.ic.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	}
	select {
	case res := <-replyCh:
		if res.err == nil && res.r.Error != "" {
			return exitf(wsrep.ExitPipe, "joiner aborted the transfer: %s (local error: %v)", res.r.Error, sendErr)
		}
		if res.err != nil && !errors.Is(res.err, os.ErrDeadlineExceeded) && !errors.Is(res.err, ErrTimeout) {
			return exitf(wsrep.ExitPipe, "joiner %s went away (%v); backup stopped", hostport, res.err)
		}
	case <-time.After(3 * time.Second):
	}
	return exitf(codeOr(sendErr, wsrep.ExitPipe), "stream to joiner %s: %w", hostport, sendErr)
}

// keepaliveFrame is an empty wire extension frame (type 0x80): readers
// skip it, and it is not part of the data or its SHA-256.
var keepaliveFrame = []byte{0x80, 0, 0, 0, 0}

func keepaliveEvery(idle time.Duration) time.Duration {
	if idle <= 0 {
		return 5 * time.Second
	}
	return max(time.Second, min(5*time.Second, idle/3))
}

// keepaliveWriter serialises the frame writer's writes (each frame is one
// Write) with keepalive frames sent when nothing was written for a while.
type keepaliveWriter struct {
	mu      sync.Mutex
	w       io.Writer
	now     func() time.Time // the clock; nil means time.Now (tests inject one)
	last    time.Time
	stopped bool
	failed  error
}

func (k *keepaliveWriter) clock() time.Time {
	if k.now != nil {
		return k.now()
	}
	return time.Now()
}

func (k *keepaliveWriter) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n, err := k.w.Write(p)
	k.last = k.clock()
	return n, err
}

// run sends keepalives until ctx ends or stop is called; on a write error
// it records the error and calls onFail (which stops the backup).
func (k *keepaliveWriter) run(ctx context.Context, every time.Duration, onFail func()) {
	t := time.NewTicker(every / 2)
	defer t.Stop()
	k.loop(ctx, t.C, every, onFail)
}

// loop is run with the ticker's channel given, so tests can drive it;
// the time a tick carries is the loop's clock.
func (k *keepaliveWriter) loop(ctx context.Context, tick <-chan time.Time, every time.Duration, onFail func()) {
	var now time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now = <-tick:
		}
		k.mu.Lock()
		if k.stopped {
			k.mu.Unlock()
			return
		}
		if now.Sub(k.last) >= every {
			if _, err := k.w.Write(keepaliveFrame); err != nil {
				k.failed = fmt.Errorf("keepalive: %w", err)
				k.stopped = true
				k.mu.Unlock()
				onFail()
				return
			}
			k.last = now
		}
		k.mu.Unlock()
	}
}

// stop ends the keepalives (before the end frame: nothing may follow it).
func (k *keepaliveWriter) stop() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopped = true
	return k.failed
}

func (k *keepaliveWriter) err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.failed
}

// errJoinerGone: the joiner's host refuses connections on its SST port.
var errJoinerGone = errors.New("the joiner refuses connections (its SST script has ended), so the transfer cannot be resumed")

// redial connects to the joiner again after a break, trying every second
// until rctx (the resume window) ends. It fails at once with
// errJoinerGone when the joiner's host refuses the connection: the host is
// up but nothing listens, so the joiner's script has ended and waiting
// would only delay the failure. A link that is down drops or times out
// the attempts instead.
func redial(rctx context.Context, hostport string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, KeepAliveConfig: keepAlive}
	for {
		c, err := d.DialContext(rctx, "tcp", hostport)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w: %v", errJoinerGone, err)
		}
		select {
		case <-rctx.Done():
			return nil, fmt.Errorf("%w: %v", context.Cause(rctx), err)
		case <-time.After(time.Second):
		}
	}
}

// bufConn reads through the buffered reader that already peeked at the
// connection.
type bufConn struct {
	r *bufio.Reader
	c net.Conn
}

func (b bufConn) Read(p []byte) (int, error)  { return b.r.Read(p) }
func (b bufConn) Write(p []byte) (int, error) { return b.c.Write(p) }
func (b bufConn) Close() error                { return b.c.Close() }

// awaitSessionReply waits for the joiner's reply through a resume
// session. The joiner has idle-timeout to confirm, counted as everywhere
// else from the last sign of life: the timer starts again while it still
// acknowledges the stream, and while the session has not yet sent all of
// it (after an outage much of the stream can still be in the spool, and
// on a slow link in the kernel's socket buffers; breaks meanwhile are the
// resume window's business, as during the stream).
func (d *Donor) awaitSessionReply(ctx context.Context, replyCh <-chan replyResult, sess *resume.Session) replyResult {
	idle := d.Config.IdleTimeout
	var expired <-chan time.Time // never, without an idle timeout
	var t *time.Timer
	if idle > 0 {
		t = time.NewTimer(idle)
		defer t.Stop()
		expired = t.C
	}
	acked := sess.Acked()
	for {
		select {
		case res := <-replyCh:
			return res
		case <-ctx.Done():
			sess.Abort()
			return <-replyCh
		case <-expired:
		}
		a := sess.Acked()
		unsent, err := sess.Unsent()
		if err != nil {
			// The session is over, which is no sign of life: the reply
			// reader ends at once, with the reply if it came, else why not.
			return <-replyCh
		}
		if a != acked || unsent != 0 {
			acked = a
			t.Reset(idle)
			continue
		}
		sess.Abort()
		<-replyCh
		return replyResult{err: fmt.Errorf("%w: the joiner did not confirm within %s (peer dead or hung?)", ErrTimeout, idle)}
	}
}

type replyResult struct {
	r   Reply
	err error
}
