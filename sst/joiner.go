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
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gosst/gosst/internal/failpoint"
	"github.com/gosst/gosst/internal/fsutil"
	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/mariabackup"
	"github.com/gosst/gosst/sst/resume"
	"github.com/gosst/gosst/sst/wsrep"
	"github.com/gosst/gosst/stream/codec"
	"github.com/gosst/gosst/stream/stall"
	"github.com/gosst/gosst/stream/wire"
	"github.com/gosst/gosst/stream/xbstream"
	"golang.org/x/sync/errgroup"
)

// Joiner receives a state transfer into its datadir.
type Joiner struct {
	Args   *wsrep.Args
	Config Config
	log    *logger
	out    *output

	datadir string
	// touched is set once old data has been deleted: from then on a
	// failure must leave sst_in_progress behind.
	touched bool
	// staleSwap: an earlier run left sst_in_progress saying it had begun
	// to replace the datadir, so the data here cannot be trusted.
	staleSwap bool
	ic        *idleConn // the donor connection, below TLS
	// pinned: TLS with an ephemeral key; the donor proves the secret
	// with secretProof instead of sending it.
	pinned bool
	// reportFailure logs the run's failure line (once); nil in tests.
	reportFailure func(error) int
	// receivedBytes of a full SST, for the history plan's ETA reads.
	receivedBytes int64
	// recv attributes the receive's time to its stages, and prepareTime is
	// how long prepare took (bottleneck.go); both go into the history.
	recv        *stall.Report
	prepareTime time.Duration
	// resumer accepts the donor's reconnects and sess is the resume
	// session, during a resumable full SST; nil otherwise.
	resumer *resumeAcceptor
	sess    *resume.Session
}

// Run does the whole joiner side. It prints the final position line only
// on success.
func (j *Joiner) Run(parent context.Context) (err error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	if j.Args.Parent > 0 {
		var pg errgroup.Group
		pg.Go(func() error { watchParent(ctx, cancel, j.Args.Parent); return nil })
		defer func() { cancel(nil); _ = pg.Wait() }()
	}
	j.datadir = filepath.Clean(strings.TrimRight(j.Args.DataDir, "/"))
	if fi, err := os.Stat(j.datadir); err != nil || !fi.IsDir() {
		return exitf(wsrep.ExitNoEnt, "datadir %s: not a directory (%v)", j.datadir, err)
	}
	release, err := acquireLock(ctx, j.datadir, 30*time.Second)
	if err != nil {
		return err
	}
	defer release()
	marker := filepath.Join(j.datadir, InProgressFile)
	if err := j.markInProgress(marker); err != nil {
		return err
	}
	defer func() {
		if err == nil || !j.touched {
			_ = os.Remove(marker)
		}
	}()

	l, tlsCfg, secret, err := j.listenReady(ctx)
	if err != nil {
		return err
	}
	defer l.Close()
	offer := j.Config.ResumeWindow > 0
	conn, br, ctl, err := j.accept(ctx, l, tlsCfg, []byte(secret), offer)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if offer && ctl.Kind == KindSST && ctl.Session != "" {
		// Keep listening for the donor's reconnects until the transfer
		// ends.
		j.resumer = newResumeAcceptor(j, l, tlsCfg, []byte(secret), ctl.Session)
		actx, acancel := context.WithCancel(ctx)
		var ag errgroup.Group
		ag.Go(func() error { j.resumer.run(actx); return nil })
		defer func() { acancel(); _ = ag.Wait() }()
	} else {
		l.Close()
	}
	return j.transfer(ctx, conn, br, ctl)
}

// markInProgress notes an earlier unfinished SST and, unless its swap had
// begun (whose marker only a full SST may remove), writes marker.
func (j *Joiner) markInProgress(marker string) error {
	if b, err := os.ReadFile(marker); err == nil {
		j.staleSwap = swapBegun(b)
		if j.staleSwap {
			// Keep the marker as it is: only a full SST may remove it.
			j.touched = true
			j.log.Warnf("%s exists: an earlier SST into this datadir was interrupted while replacing the data; this node accepts only a full SST now", marker)
		} else {
			j.log.Warnf("%s exists: an earlier SST into this datadir did not finish (it had not touched the old data)", marker)
		}
	}
	if !j.staleSwap {
		if err := fsutil.WriteFileDurable(marker, []byte(markerReceive), 0o640); err != nil {
			return exitf(wsrep.ExitInvalid, "write %s: %w", marker, err)
		}
	}
	return nil
}

// listenReady listens for the donor and prints the ready line with the
// address (and secret) the donor is to use.
func (j *Joiner) listenReady(ctx context.Context) (net.Listener, *tls.Config, string, error) {
	host, port, err := ParseListenAddress(j.Args.Address)
	if err != nil {
		return nil, nil, "", exitf(wsrep.ExitInvalid, "--address: %w", err)
	}
	tlsCfg, err := tlsConfig(j.Config, true, "")
	if err != nil {
		return nil, nil, "", err
	}
	var pin []byte
	if tlsCfg == nil && !j.Config.EncryptOff {
		cert, p, err := newEphemeralCert(time.Now())
		if err != nil {
			return nil, nil, "", exitf(wsrep.ExitInvalid, "%w", err)
		}
		tlsCfg, pin, j.pinned = ephemeralServerConfig(cert), p, true
	}
	lhost, lport := host, port
	if a := j.Config.ListenAddress; a != "" {
		if strings.HasPrefix(a, ":") {
			lhost = ""
			lport, err = parsePort(a[1:])
		} else {
			lhost, lport, err = ParseListenAddress(a)
		}
		if err != nil {
			return nil, nil, "", exitf(wsrep.ExitInvalid, "listen-address: %w", err)
		}
	}
	l, err := listen(ctx, lhost, lport)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, "", exitf(wsrep.ExitBusy, "listen on port %d: %w", lport, err)
		}
		return nil, nil, "", exitf(wsrep.ExitInvalid, "listen: %w", err)
	}
	secret := ""
	if j.Config.Secret {
		var b [16]byte
		_, _ = rand.Read(b[:])
		secret = hex.EncodeToString(b[:])
	}
	addr, err := ReadyAddress(host, port, secret, pin)
	if err != nil {
		l.Close()
		return nil, nil, "", exitf(wsrep.ExitInvalid, "%w", err)
	}
	if j.Config.ResumeWindow > 0 {
		addr += "/" + ResumeCap // a donor that can resume will (older ones ignore it)
	}
	addr += "/" + ZstdBlocksCap // compression=auto may send zstd blocks (older donors ignore it)
	if err := j.out.line("ready " + addr); err != nil {
		l.Close()
		return nil, nil, "", fmt.Errorf("write ready line: %w", err)
	}
	mode := "cleartext"
	switch {
	case j.pinned:
		mode = "TLS 1.3 with an ephemeral key for this SST"
	case tlsCfg != nil:
		mode = "TLS 1.3"
		if tlsCfg.ClientCAs != nil {
			mode += " with mutual certificate verification"
		}
	default:
		j.log.Warnf("encrypt=off and no certificate: the data and the one-time secret cross the network in cleartext")
	}
	j.log.Infof("listening on %s (%s, protocol %s/%d); waiting up to %s for the donor", l.Addr(), mode, ProtoName, ProtoVersion, durStr(j.Config.InitialTimeout))
	return l, tlsCfg, secret, nil
}

// transfer does what the donor's header asks: an IST marker or a full SST.
func (j *Joiner) transfer(ctx context.Context, conn net.Conn, br *bufio.Reader, ctl Control) error {
	pos, err := ist.ParseGaleraInfo(ctl.Position)
	if err != nil {
		return exitf(wsrep.ExitProto, "donor sent a bad position: %w", err)
	}
	if !pos.HasDomain {
		pos = pos.WithDomain(ctl.Domain)
	}
	switch ctl.Kind {
	case KindIST:
		if j.staleSwap {
			return j.refuseIST(conn, pos)
		}
		j.log.Infof("donor reports IST (--bypass): Galera will send the missing write-sets; datadir left untouched, position %s", pos.Line())
		if err := sendMessage(conn, nil, Reply{OK: true}); err != nil {
			j.log.Warnf("could not acknowledge the IST marker: %v", err)
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return j.out.line(pos.Line())
	case KindSST:
		if r := fullSSTReason(j.datadir, j.Args.MysqldArgs, pos); r != "" {
			j.log.Infof("%s", r)
		}
		start := time.Now()
		var w io.WriteCloser = conn
		if j.resumer != nil {
			id, err := parseSessionID(ctl.Session)
			if err != nil {
				_ = sendMessage(conn, nil, Reply{Error: err.Error()})
				return exitf(wsrep.ExitProto, "donor sent a bad header: %w", err)
			}
			sess, err := resume.Open(ctx, conn, resume.Config{
				ID: id, Reconnect: j.resumer.next, Window: j.Config.ResumeWindow,
				// The joiner sends only its reply: a small spool in memory.
				Spool: 1 << 20, SpoolMemory: 1 << 20, Logf: j.log.Warnf,
			})
			if err != nil {
				return exitf(codeOr(err, wsrep.ExitPipe), "start resumable session with the donor: %w", err)
			}
			defer sess.Abort()
			j.sess = sess
			j.resumer.sess.Store(sess)
			j.log.Infof("resumable transfer: after a broken connection this joiner waits up to %s for the donor to reconnect (resume-window)", j.Config.ResumeWindow)
			// The handshake read nothing past the header, so br holds
			// nothing yet: the stream now comes through the session.
			w, br = sessionWriter{s: sess, wait: 10 * time.Second, log: j.log}, bufio.NewReaderSize(sess, 1<<20)
		}
		err := j.full(ctx, w, br, ctl, pos)
		if err == nil {
			j.recordSST(start, pos)
		}
		if err != nil && ctx.Err() == nil {
			if j.reportFailure != nil {
				j.reportFailure(err)
			}
			j.awaitDonorExit(ctx, br)
		}
		return err
	default:
		_ = sendMessage(conn, nil, Reply{Error: "unknown transfer kind " + ctl.Kind})
		return exitf(wsrep.ExitProto, "donor asked for unknown transfer kind %q", ctl.Kind)
	}
}

// refuseIST answers an IST offer into a datadir whose last swap was
// interrupted: the data is a mix of old and new files, so the write-sets
// Galera would send cannot make it right. It makes the position
// unusable for the next start (grastate.dat without a position, the
// system tablespace, redo, undo and Aria logs removed, so that
// --wsrep-recover finds nothing either) and fails, so that mysqld aborts
// and the next start takes a full SST.
func (j *Joiner) refuseIST(conn net.Conn, pos ist.Position) error {
	msg := fmt.Sprintf("refusing IST to %s: an earlier SST into %s was interrupted while replacing the data (%s is present), so the data cannot be trusted", pos.UUIDSeqno(), j.datadir, InProgressFile)
	// The position goes first: the donor's failure makes mysqld abort at
	// once, and a service manager may then kill this script too.
	err := invalidatePosition(j.datadir)
	if err == nil {
		var removed []string
		removed, err = removeSystem(j.datadir, j.Config.Layout)
		if len(removed) > 0 {
			j.log.Warnf("removed the interrupted swap's system files %v so that no position can be recovered from them", removed)
		}
	}
	_ = sendMessage(conn, nil, Reply{Error: msg})
	if err != nil {
		return exitf(wsrep.ExitInvalid, "%s; making the position unusable also failed: %w (remove grastate.dat and ibdata* by hand before the next start)", msg, err)
	}
	return exitf(wsrep.ExitInvalid, "%s; its position is now unusable and the next start of this node takes a full SST", msg)
}

// swapStep logs a finished swap step. In a test build (tag
// gosstfailpoint) whose GOSST_FAILPOINT names the step (SwapSteps), the
// joiner then SIGKILLs itself, as a crash would stop it; release builds
// have no such hook.
func (j *Joiner) swapStep(step string) {
	j.log.Infof("swap step done: %s", step)
	if failpoint.Enabled && failpoint.Armed(step) {
		j.log.Warnf("test failpoint %s=%s: killing this process", failpoint.Env, step)
		failpoint.Hit(step)
	}
}

// Bounds of awaitDonorExit.
var (
	donorExitWait  = 5 * time.Second // for the donor to hang up
	donorExitGrace = time.Second     // after it hung up
)

// awaitDonorExit delays the exit of a failed joiner until the donor's
// script has hung up, and a little longer. When this script exits, mysqld
// aborts and leaves the group at once; if the donor's failure report
// reaches the group during that membership change, galera-4 (26.4.23)
// ignores it ("JOIN message from member … in non-primary configuration.
// Ignored.") and the donor node stays Joined for good or aborts ("FSM: no
// such a transition JOINED -> JOINED"). Waiting here lets the donor report
// first, while this node is still a member. The donor learns of the
// failure from the joiner's reply or the closed connection and exits at
// once, so a restarted joiner never meets its late report either.
func (j *Joiner) awaitDonorExit(ctx context.Context, br *bufio.Reader) {
	if j.ic == nil {
		return
	}
	if j.sess != nil {
		// The donor ends the session when it stops; its end confirms it.
		j.log.Infof("waiting for the donor to stop before exiting, so that Galera gets its failure report before this node leaves the group")
		cctx, ccancel := context.WithTimeout(ctx, donorExitWait)
		_ = j.sess.Close(cctx)
		ccancel()
		select {
		case <-ctx.Done():
		case <-time.After(donorExitGrace):
		}
		return
	}
	j.log.Infof("waiting for the donor to stop before exiting, so that Galera gets its failure report before this node leaves the group")
	j.ic.setIdle(donorExitWait)
	deadline := time.Now().Add(donorExitWait)
	buf := make([]byte, 64<<10)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := br.Read(buf); err != nil {
			break
		}
	}
	select {
	case <-ctx.Done():
	case <-time.After(donorExitGrace):
	}
}

func durStr(d time.Duration) string {
	if d <= 0 {
		return "forever"
	}
	return d.String()
}

// full receives, verifies, prepares and installs a full SST.
func (j *Joiner) full(ctx context.Context, conn io.WriteCloser, br *bufio.Reader, ctl Control, donorPos ist.Position) error {
	staging := filepath.Join(j.datadir, StagingDir)
	if err := os.RemoveAll(staging); err != nil {
		return exitf(wsrep.ExitInvalid, "remove stale %s: %w", staging, err)
	}
	if err := os.Mkdir(staging, 0o750); err != nil {
		return exitf(wsrep.ExitInvalid, "create %s: %w", staging, err)
	}
	keepStaging := false
	defer func() {
		if !keepStaging {
			_ = os.RemoveAll(staging)
		}
	}()
	fail := func(err error) error {
		// Best effort, and never blocking long on a hung donor (a
		// session's writes only fill its spool).
		if j.sess == nil {
			j.ic.setIdle(5 * time.Second)
		}
		_ = sendMessage(conn, nil, Reply{Error: err.Error()})
		return err
	}
	if ctl.Total > 0 {
		if free, err := fsutil.FreeBytes(j.datadir); err == nil && free < ctl.Total {
			return fail(exitf(ExitNoSpace, "not enough space in %s: donor estimates %s, %s free (the old data is kept until the new data is verified, so both must fit)", j.datadir, human(ctl.Total), human(free)))
		}
	}
	pos, err := j.receiveFull(ctx, conn, br, ctl, donorPos, staging, fail)
	if err != nil {
		return err
	}

	// Prepare.
	pstart := time.Now()
	if err := j.prepare(ctx, staging); err != nil {
		return err
	}
	j.prepareTime = time.Since(pstart)
	if j.recv != nil && j.recv.Limiter != "" {
		lim := sstLimiter(*j.recv, j.prepareTime)
		j.log.Infof("this SST was limited by %s: receiving took %.1f s (limited by %s), prepare %.1f s; to go faster: %s",
			lim, j.recv.Elapsed.Seconds(), j.recv.Limiter, j.prepareTime.Seconds(), limiterAdvice(lim))
	}
	if err := CheckBackup(staging, "log-applied", "full-prepared"); err != nil {
		return exitf(wsrep.ExitInvalid, "after prepare: %w", err)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return j.installFull(ctx, staging, pos, &keepStaging)
}

// receivedStream is what receiveStream read: its frames, codec and files.
type receivedStream struct {
	fr    *wire.FrameReader
	cd    codec.Codec
	stats xbstream.Stats
}

// receiveFull receives the stream into staging, checks the backup and the
// state it is of, and acknowledges receipt; fail reports an error to the
// donor. It returns the backup's position.
func (j *Joiner) receiveFull(ctx context.Context, conn io.WriteCloser, br *bufio.Reader, ctl Control, donorPos ist.Position, staging string, fail func(error) error) (ist.Position, error) {
	// Receive. The wire meter sits beneath the frame reader, which
	// decodes block frames (compression=auto).
	prog := newProgress(j.log, j.out, j.Args.Progress && !j.Config.ProgressOff, "receiving", ctl.Total, j.Config.ReportEvery)
	rs, err := j.receiveStream(ctx, br, ctl, staging, prog, fail)
	if err != nil {
		return ist.Position{}, err
	}
	if err := CheckBackup(staging, "full-backuped"); err != nil {
		return ist.Position{}, fail(exitf(wsrep.ExitPipe, "received backup: %w", err))
	}
	pos, err := BackupPosition(staging)
	if err != nil {
		return ist.Position{}, fail(exitf(wsrep.ExitPipe, "received backup: %w", err))
	}
	if pos.UUID != donorPos.UUID {
		return ist.Position{}, fail(exitf(ExitRemChg, "backup is of state %s but the donor is at %s", pos.UUIDSeqno(), donorPos.UUIDSeqno()))
	}
	if err := sendMessage(conn, nil, Reply{OK: true, Bytes: prog.raw.Bytes()}); err != nil {
		return ist.Position{}, exitf(wsrep.ExitPipe, "acknowledge receipt: %w", err)
	}
	conn.Close()
	checks := "SHA-256 of the stream"
	if rs.fr.Hello().Flags&wire.FlagCRC32C != 0 {
		checks = "CRC-32C of the stream"
	}
	if rs.cd.Name() != codec.NameNone {
		checks += ", " + rs.cd.Name() + " frame checksums"
	}
	j.receivedBytes = prog.raw.Bytes()
	prog.summary(fmt.Sprintf("received and verified %d files (%s, CRC-32 of every chunk),", rs.stats.Files, checks))
	if j.recv != nil && j.recv.Limiter != "" {
		j.log.Infof("%s", limiterLine(*j.recv, "receive"))
	}
	if j.Config.DirectIO {
		j.log.Infof("direct-io: %s of %s written with O_DIRECT", human(rs.stats.DirectBytes), human(rs.stats.Bytes))
	}
	j.log.Infof("backup position %s (donor was at %s when the SST began)", pos.Line(), donorPos.UUIDSeqno())
	if !pos.HasDomain {
		pos = pos.WithDomain(donorPos.DomainID())
	}
	return pos, nil
}

// receiveStream decodes the donor's stream and extracts it into staging,
// reading up to and verifying the end frame. The progress reporter runs
// only while it receives, and is joined before it returns.
func (j *Joiner) receiveStream(ctx context.Context, br *bufio.Reader, ctl Control, staging string, prog *progress, fail func(error) error) (receivedStream, error) {
	st := newJoinerStages(nil)
	st.begin()
	fr, err := wire.NewFrameReader(prog.wire.Reader(st.net.Reader(br)), wire.ReaderOptions{AsyncHash: true})
	if err != nil {
		return receivedStream{}, fail(exitf(ExitCode(err), "data stream: %w", err))
	}
	cd, err := codec.Lookup(fr.Hello().Codec)
	if err != nil {
		return receivedStream{}, fail(exitf(wsrep.ExitProtoNoSupport, "data stream: %w", err))
	}
	how := cd.Name() + "-compressed"
	switch {
	case fr.Hello().Flags&wire.FlagZstdBlocks != 0:
		how = "compression=auto (S2 or zstd frame by frame where the donor found it faster)"
	case fr.Hello().Flags&wire.FlagBlocks != 0:
		how = "compression=auto (S2 frame by frame where the donor found it faster)"
	case cd.Name() == codec.NameNone:
		how = "uncompressed"
	}
	j.log.Infof("receiving xbstream, %s, into %s (donor estimates %s)", how, staging, human(ctl.Total))
	// The plaintext is checked by the extractor (mariabackup's CRC-32 on
	// every chunk) and the decoder (its frame checksums); an end marker
	// from an older donor is a block the decoder skips.
	dec, err := cd.NewReader(fr)
	if err != nil {
		return receivedStream{}, fail(exitf(wsrep.ExitPipe, "data stream: %w", err))
	}
	pctx, pcancel := context.WithCancel(ctx)
	var pg errgroup.Group
	pg.Go(func() error { prog.run(pctx); return nil })
	stats, err := xbstream.Extract(ctx, prog.raw.Reader(st.dec.Reader(dec)), staging, xbstream.ExtractOptions{Workers: 4, DirectIO: j.Config.DirectIO})
	recv := st.report()
	j.recv = &recv
	if err == nil {
		// The decoder may stop at the end of its frame; the end frame
		// must still be read and verified.
		var n int64
		n, err = io.Copy(io.Discard, fr)
		if err == nil && n > 0 {
			err = fmt.Errorf("%d bytes after the end of the compressed stream", n)
		}
	}
	dec.Close()
	pcancel()
	_ = pg.Wait()
	if err != nil {
		if ctx.Err() != nil {
			return receivedStream{}, context.Cause(ctx)
		}
		return receivedStream{}, fail(exitf(codeOr(err, wsrep.ExitPipe), "receive: %w", err))
	}
	return receivedStream{fr: fr, cd: cd, stats: stats}, nil
}

// installFull swaps the prepared backup in staging into the datadir: only
// now is the old data deleted. A failed swap keeps staging
// (*keepStaging).
func (j *Joiner) installFull(ctx context.Context, staging string, pos ist.Position, keepStaging *bool) error {
	plan, err := PlanInstall(staging, j.datadir, j.Config.Layout)
	if err != nil {
		return exitf(wsrep.ExitInvalid, "plan install: %w", err)
	}
	j.touched = true
	removed, err := Swap(j.datadir, j.Config.Layout, plan, j.swapStep)
	if err != nil {
		*keepStaging = true
		return exitf(wsrep.ExitInvalid, "swap in the new data (%s stays, this node needs a full SST): %w", InProgressFile, err)
	}
	j.log.Infof("deleted %d old entries (galera state, logs and certificates kept; old binlogs removed)", removed)
	if err := os.RemoveAll(staging); err != nil {
		j.log.Warnf("remove %s: %v", staging, err)
	}
	if err := fsutil.SyncDir(j.datadir); err != nil {
		return exitf(wsrep.ExitInvalid, "%w", err)
	}
	var skipped []string
	for _, r := range plan.Remove {
		skipped = append(skipped, filepath.Base(r))
	}
	j.log.Infof("installed %d entries; not installed: %v (the donor's binary log: the server starts a fresh one)", len(plan.Moves), skipped)
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err := os.Remove(filepath.Join(j.datadir, InProgressFile)); err != nil {
		return exitf(wsrep.ExitInvalid, "remove %s: %w", InProgressFile, err)
	}
	if err := fsutil.SyncDir(j.datadir); err != nil {
		return exitf(wsrep.ExitInvalid, "%w", err)
	}
	return j.out.line(pos.Line())
}

func codeOr(err error, def int) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if errors.Is(err, ErrTimeout) || errors.Is(err, resume.ErrWindow) {
		return ExitTimedOut
	}
	if errors.Is(err, resume.ErrProtocol) || errors.Is(err, resume.ErrOffset) || errors.Is(err, resume.ErrMalformed) {
		return wsrep.ExitProto
	}
	if errors.Is(err, syscall.ENOSPC) {
		return ExitNoSpace
	}
	return def
}

// prepare runs mariabackup --prepare on the staging directory with a
// private option file: the backup's backup-my.cnf plus the settings of
// this node that prepare needs (prepare.go). Its output goes to the error
// log and to <datadir>/mariabackup.prepare.log.
func (j *Joiner) prepare(ctx context.Context, staging string) error {
	cnf, err := writePrepareCnf(staging, j.Config, j.log)
	if err != nil {
		return err
	}
	defer os.Remove(cnf)
	args := prepareArgs(cnf, staging, j.Config)
	if j.Config.UseMemory != "" {
		j.log.Infof("prepare buffer pool: --use-memory=%s (from %s)", j.Config.UseMemory, j.Config.UseMemoryFrom)
	}
	j.log.Infof("running %s %s", j.Config.Mariabackup, strings.Join(args, " "))
	start := time.Now()
	logFile := openPhaseLog(j.datadir, "prepare", j.Config, j.log, start)
	if logFile != nil {
		defer logFile.Close()
	}
	spec := mbSpec(j.log, j.Config.Mariabackup, args, "mariabackup --prepare: ", logFile, syscall.SIGTERM)
	spec.Dir = staging
	spec.CombinedOutput = true
	if err := mariabackup.Run(ctx, spec); err != nil {
		var ee *mariabackup.ExitError
		if !errors.As(err, &ee) {
			return exitf(wsrep.ExitNoEnt, "%w", err)
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		where := ""
		if logFile != nil {
			where = " (all of it in " + logFile.Name() + ")"
		}
		return exitf(wsrep.ExitInvalid, "mariabackup --prepare failed: %v; last output%s:\n%s", ee.Err, where, ee.Tail)
	}
	j.log.Infof("prepare done in %.1f s", time.Since(start).Seconds())
	return nil
}
