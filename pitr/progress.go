package pitr

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/gosst/gosst/stream/meter"
)

// ReplaySnapshot is the replay's progress at one instant: the bytes of
// archived binlog applied (Snapshot), and the transactions and events.
type ReplaySnapshot struct {
	meter.Snapshot
	// Transactions applied so far (client mode: fed to the client) of
	// TransactionsTotal, the count planned before the replay. Mapped from
	// the replay's byte position with a txIndex: exact at the end of each
	// file, at most one index granule (txIndexGranule bytes) behind in
	// between.
	Transactions, TransactionsTotal int64
	// TxRate is transactions per second, averaged since the replay began.
	TxRate float64
	// Events read by the replay so far: the SQL thread's
	// Executed_log_entries (applier) or the events mariadb-binlog printed
	// (client); -1 when unknown.
	Events int64
}

// txIndexGranule is the spacing of a txIndex's marks. Memory per step is
// 8 bytes per granule of replayed binlog: 32 KiB per GiB.
const txIndexGranule = 256 << 10

// txIndex maps a byte offset in one step's file to the number of the
// step's transactions whose Gtid event starts before it, i.e. the
// transactions completed when the replay has reached that offset. It keeps
// the cumulative count at every txIndexGranule bytes from the step's
// start, so its size is bounded by the step's bytes, not its transactions.
type txIndex struct {
	start, gran int64   // gran: the marks' spacing (0: txIndexGranule)
	marks       []int64 // marks[j]: transactions starting before start + j*gran
	n, last     int64   // transactions of the step; the last one's offset
}

func (x *txIndex) granule() int64 {
	if x.gran > 0 {
		return x.gran
	}
	return txIndexGranule
}

// add counts a transaction starting at off; offsets come in order, ≥ start.
func (x *txIndex) add(off int64) {
	j := (off-x.start)/x.granule() + 1 // the first mark that counts it
	for int64(len(x.marks)) < j {
		x.marks = append(x.marks, x.n)
	}
	x.n, x.last = x.n+1, off
}

// at returns the transactions started before pos: exact at every mark and
// after the last transaction, in between at most one granule's
// transactions short.
func (x *txIndex) at(pos int64) int64 {
	if x == nil || pos <= x.start {
		return 0
	}
	if x.n > 0 && pos > x.last {
		return x.n
	}
	j := (pos - x.start) / x.granule()
	if j < int64(len(x.marks)) {
		return min(x.marks[j], x.n)
	}
	return x.n
}

// total returns the step's transactions (0 for a nil index).
func (x *txIndex) total() int64 {
	if x == nil {
		return 0
	}
	return x.n
}

// atScanner passes mariadb-binlog's output through to w and calls fn
// with the offset of every "# at N" line, which mariadb-binlog prints
// before each event it decodes. Lines are examined only up to 32 bytes;
// the data itself is not changed.
type atScanner struct {
	w          io.Writer
	fn         func(pos int64)
	pre        []byte
	collecting bool
}

func newAtScanner(w io.Writer, fn func(int64)) *atScanner {
	return &atScanner{w: w, fn: fn, pre: make([]byte, 0, 32), collecting: true}
}

func (s *atScanner) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.scan(p[:n])
	return n, err
}

func (s *atScanner) scan(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		if s.collecting {
			if len(seg) > cap(s.pre)-len(s.pre) {
				s.collecting = false
			} else {
				s.pre = append(s.pre, seg...)
			}
		}
		if i < 0 {
			return
		}
		if s.collecting {
			s.line(s.pre)
		}
		s.pre, s.collecting, p = s.pre[:0], true, p[i+1:]
	}
}

func (s *atScanner) line(l []byte) {
	rest, ok := bytes.CutPrefix(bytes.TrimSuffix(l, []byte("\r")), []byte("# at "))
	if !ok {
		return
	}
	if pos, err := strconv.ParseInt(string(rest), 10, 64); err == nil && pos >= 0 {
		s.fn(pos)
	}
}

// clientTracker turns the "# at N" offsets of one mariadb-binlog run into
// progress: the offset drops back (to 4, the next file's
// Format_description) when mariadb-binlog moves to the run's next file.
type clientTracker struct {
	run        []step
	spans      []int64 // bytes each step replays
	file       int
	last       int64
	doneBytes  int64 // bytes of the run's files before file
	doneTx     int64 // transactions of the run's files before file
	events     int64
	lastReport time.Time
	pr         *replayProgress
}

func (c *clientTracker) at(pos int64) {
	c.events++
	if pos < c.last && c.file+1 < len(c.run) {
		c.doneBytes += c.spans[c.file]
		c.doneTx += c.run[c.file].tx.total()
		c.file++
	}
	c.last = pos
	if time.Since(c.lastReport) < 200*time.Millisecond {
		return
	}
	c.lastReport = time.Now()
	st := c.run[c.file]
	b := min(max(pos-st.start, 0), c.spans[c.file])
	c.pr.report(c.doneBytes+b, c.doneTx+st.tx.at(pos), addEvents(c.pr.events, c.events), st.seg.File+":"+strconv.FormatInt(pos, 10))
}

// span returns the bytes the step replays (0 if its file is unreadable).
func (st step) span() int64 {
	end := st.stop
	if end < 0 {
		if fi, err := os.Stat(st.path); err == nil {
			end = fi.Size()
		}
	}
	return max(end-st.start, 0)
}

func newClientTracker(run []step, pr *replayProgress) *clientTracker {
	c := &clientTracker{run: run, pr: pr}
	for _, st := range run {
		c.spans = append(c.spans, st.span())
	}
	return c
}

// finish accounts the whole run as replayed.
func (c *clientTracker) finish() {
	c.pr.events = addEvents(c.pr.events, c.events)
	c.pr.finishRun(c.run, c.spans)
}
