package sst

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gosst/gosst/stream/stall"
)

// Stage names in summaries and the SST history (docs/sst.md, "Which stage
// limited the transfer").
const (
	StageDonorRead     = "donor read"    // mariabackup producing the backup
	StageRateLimit     = "rate limit"    // the configured rate-limit
	StageCompression   = "compression"   // codec and frame CPU on the donor
	StageEncryption    = "encryption"    // TLS encryption on the donor
	StageNetwork       = "network"       // the donor's socket writes
	StageFromDonor     = "donor/network" // the joiner waiting for bytes to arrive
	StageDecompression = "decompression" // codec and frame checks on the joiner
	StageJoinerWrite   = "joiner write"  // xbstream extract into staging (disk)
	StagePrepare       = "prepare"       // mariabackup --prepare, after the transfer
)

// donorStages measures the donor's pipeline: mariabackup's output (source)
// → rate limit → copier → codec and frames → TLS (conn) → socket (raw).
//
// The copier is one goroutine, so its elapsed time is the time it spent
// reading (source and rate limit) plus the time it spent handing data to
// the codec. Of the latter, the time spent in writes to the connection is
// the network's (with TLS, the part spent below TLS is the network's and
// the rest is encryption), and what remains is compression. A parallel
// codec writes to the connection from its own goroutines; differences are
// then approximate, and a negative one counts as 0.
//
// With a resume session the copier's writes only fill the session's spool,
// and the session's own goroutine encrypts and sends: the copier's time in
// writes is then the time it waited for that goroutine, which is split
// between encryption and the network as that goroutine's own time was
// (sess: its writes to the connection, TLS included; raw: the socket
// writes below TLS).
type donorStages struct {
	now      func() time.Time
	source   *stall.Meter // in Read of mariabackup's output
	limited  *stall.Meter // in Read of the rate-limited source (includes source)
	conn     *stall.Meter // in Write to the connection (TLS, if any, included)
	raw      *stall.Meter // in Write to the socket below TLS; nil without TLS
	sess     *stall.Meter // in the resume session's writes to its connection; nil without a session
	rateLim  bool
	start    time.Time
	rawBase  time.Duration // raw's count at begin (the TLS handshake)
	sessBase time.Duration // sess's count at begin (the session's hello)
	final    *stall.Report // set by end
}

func newDonorStages(now func() time.Time) *donorStages {
	if now == nil {
		now = time.Now
	}
	return &donorStages{now: now, source: stall.New(now), limited: stall.New(now), conn: stall.New(now)}
}

// rawConn returns c with its writes measured, to go below TLS. Every
// connection of one transfer (a resume session's reconnects too) adds to
// the same meter.
func (s *donorStages) rawConn(c net.Conn) net.Conn {
	if s.raw == nil {
		s.raw = stall.New(s.now)
	}
	return timed(s.raw, c)
}

// sessionConn returns c, a connection the resume session writes to, with
// those writes measured.
func (s *donorStages) sessionConn(c net.Conn) net.Conn {
	if s.sess == nil {
		s.sess = stall.New(s.now)
	}
	return timed(s.sess, c)
}

// timed returns c with the time spent in its writes counted in m.
func timed(m *stall.Meter, c net.Conn) net.Conn { return &timedConn{Conn: c, w: m.Writer(c)} }

type timedConn struct {
	net.Conn
	w io.Writer
}

func (c *timedConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// begin starts the clock of the stream.
func (s *donorStages) begin() {
	s.start = s.now()
	if s.raw != nil {
		s.rawBase = s.raw.Blocked()
	}
	if s.sess != nil {
		s.sessBase = s.sess.Blocked()
	}
}

// end attributes the stream, once it is complete.
func (s *donorStages) end() { r := s.report(); s.final = &r }

// report attributes the time since begin.
func (s *donorStages) report() stall.Report {
	elapsed := s.now().Sub(s.start)
	src, lim, conn := s.source.Blocked(), s.limited.Blocked(), s.conn.Blocked()
	stages := []stall.Stage{{Name: StageDonorRead, Busy: src}}
	if s.rateLim {
		stages = append(stages, stall.Stage{Name: StageRateLimit, Busy: lim - src})
	}
	stages = append(stages, stall.Stage{Name: StageCompression, Busy: elapsed - lim - conn})
	if s.raw != nil {
		raw := s.raw.Blocked() - s.rawBase
		enc, netw := conn-raw, raw
		if s.sess != nil {
			enc, netw = splitSession(conn, s.sess.Blocked()-s.sessBase, raw)
		}
		stages = append(stages, stall.Stage{Name: StageEncryption, Busy: enc}, stall.Stage{Name: StageNetwork, Busy: netw})
	} else {
		stages = append(stages, stall.Stage{Name: StageNetwork, Busy: conn})
	}
	return stall.Attribute(elapsed, stages)
}

// splitSession divides wait, the copier's time waiting for a resume
// session, between encryption and the network as the session's goroutine
// spent its own time: sent in writes to the connection, raw of it in the
// socket writes below TLS. Without a measured send it is all network.
func splitSession(wait, sent, raw time.Duration) (enc, netw time.Duration) {
	if sent <= 0 {
		return 0, wait
	}
	f := min(1, max(0, float64(raw)/float64(sent)))
	netw = time.Duration(f * float64(wait))
	return wait - netw, netw
}

// joinerStages measures the joiner's receive: the connection (net) →
// frames and codec → extractor (dec is the time the extractor spent
// waiting for decoded bytes). The joiner cannot tell a slow network from
// a slow donor: both are time waiting for bytes (the donor's summary says
// which). The extractor's own time, parsing and writing files into
// staging, is "joiner write".
type joinerStages struct {
	now   func() time.Time
	net   *stall.Meter
	dec   *stall.Meter
	start time.Time
}

func newJoinerStages(now func() time.Time) *joinerStages {
	if now == nil {
		now = time.Now
	}
	return &joinerStages{now: now, net: stall.New(now), dec: stall.New(now)}
}

func (s *joinerStages) begin() { s.start = s.now() }

func (s *joinerStages) report() stall.Report {
	elapsed := s.now().Sub(s.start)
	n, d := s.net.Blocked(), s.dec.Blocked()
	return stall.Attribute(elapsed, []stall.Stage{
		{Name: StageFromDonor, Busy: n},
		{Name: StageDecompression, Busy: d - n},
		{Name: StageJoinerWrite, Busy: elapsed - d},
	})
}

// limiterLine is the log line naming what limited a stream of r.
func limiterLine(r stall.Report, what string) string {
	return fmt.Sprintf("limited by %s (share of the %.1f s %s spent waiting on each stage: %s); to go faster: %s",
		r.Limiter, r.Elapsed.Seconds(), what, r, limiterAdvice(r.Limiter))
}

// sstLimiter names what limited a whole SST on the joiner: prepare when
// it took longer than receiving, else the receive's limiter.
func sstLimiter(recv stall.Report, prepare time.Duration) string {
	if prepare > recv.Elapsed {
		return StagePrepare
	}
	return recv.Limiter
}

// limiterAdvice is what to upgrade when stage limits the transfer.
func limiterAdvice(stage string) string {
	switch stage {
	case StageDonorRead:
		return "faster storage on the donor, or more backup-threads"
	case StageRateLimit:
		return "raise or remove rlimit"
	case StageCompression:
		return "donor CPU, or a lower compression-level, compression=s2, more compression-threads"
	case StageEncryption:
		return "donor CPU (TLS encryption)"
	case StageNetwork:
		return "the network between donor and joiner, or compress more to send fewer bytes"
	case StageFromDonor:
		return "the network or the donor: the donor's summary says which"
	case StageDecompression:
		return "joiner CPU"
	case StageJoinerWrite:
		return "faster storage on the joiner"
	case StagePrepare:
		return "joiner storage and CPU, or a larger use-memory for mariabackup --prepare"
	}
	return "nothing measured"
}
