package wire

import "time"

// AdaptiveOptions turns on block frames (FlagBlocks): the writer decides,
// frame by frame, whether to send the data compressed. The zero value
// means the defaults.
//
// The decision is measured, not guessed. Compression can only help when
// the connection sets the pace, so while plain frames are sent the writer
// times its writes to the connection: in an epoch where they took less
// than half the time (the source, e.g. mariabackup reading the disk, set
// the pace) it does not even try compressing. Otherwise, after a first
// epoch of plain frames (a source's start is rarely typical), it sends one
// epoch of plain frames and one of each compressed kind (S2, and zstd
// with Zstd), compares how many data bytes per second got through, and
// keeps the fastest mode for the
// next RunEpochs epochs before measuring again. An epoch of the chosen
// mode that is slower than the other mode's measurement triggers a new
// measurement at once, so a decision taken on a fluke does not last. On a
// fast link, or when the receiver is the limit, plain frames win and cost
// nothing extra; on a slow link compression wins. A tie sends plain frames.
type AdaptiveOptions struct {
	// EpochBytes is how many data bytes each measurement covers (0 means
	// 64 MiB).
	EpochBytes int64
	// EpochTime ends an epoch early once it has lasted this long and
	// holds at least EpochBytes/16 bytes (0 means 2 s): it bounds what a
	// measurement costs on a slow link.
	EpochTime time.Duration
	// RunEpochs is how many epochs the chosen mode runs before both modes
	// are measured again (0 means 32).
	RunEpochs int
	// Margin is how much faster compressing must be to be chosen: 1.1
	// means 10 % more data bytes per second (0 means 1.1).
	Margin float64
	// Decisive is how much faster than plain a compressed mode must be to
	// be chosen after one measurement round instead of two; it then first
	// runs RunEpochs/2 epochs instead of RunEpochs/4 (0 means 1.5).
	Decisive float64
	// LinkBound is the share of an epoch's time spent in writes to the
	// connection from which the connection counts as the limit and
	// compressing is worth measuring (0 means 0.5).
	LinkBound float64
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// Workers is how many goroutines compress frames (0 means
	// min(4, GOMAXPROCS)). With more than one, compression, the checksum
	// and the connection's writes overlap (see blockPipe); 1 compresses
	// on the caller's goroutine between the writes.
	Workers int
	// Zstd lets the writer send zstd block frames (FlagZstdBlocks) as a
	// third mode besides plain and S2: set it only when the reader is
	// known to decode them.
	Zstd bool
}

// AdaptiveStats counts a writer's data frames by kind.
type AdaptiveStats struct {
	// Plain counts data frames, S2 S2 block frames, Zstd zstd block
	// frames.
	Plain, S2, Zstd int64
	// Wait is the time spent in writes of data frames to the connection.
	Wait time.Duration
}

// The modes a chooser picks among, cheapest first.
const (
	modePlain = iota
	modeS2
	modeZstd
)

// chooser decides per frame how to send it: plain, S2 or (with Zstd)
// zstd. A plain epoch whose writes to the connection took less than
// linkBound of its time starts no measurement: the source set the pace.
// Otherwise, after one unmeasured plain epoch (a quarter of the usual
// size: it only skips the source's start), it measures one epoch of each
// mode. Compressing is chosen only when it wins two such rounds in a row
// (one epoch of a busy disk or CPU can make either mode look fast), or one
// round by the decisive factor (a fluke rarely makes 1.5 times the rate);
// plain frames are chosen as soon as compressing loses one. Of the two
// compressed modes, zstd must beat S2 by the margin too (S2 costs less
// CPU). Once a compressed mode has won a round, the following rounds
// measure only plain and that mode (the loser's epoch would be sent at
// the slower rate for nothing) until plain wins again; then all modes
// compete anew. The chosen mode runs for runEpochs epochs and is measured
// again; at once if a running epoch is slower than another mode's last
// measurement. A compressed mode, the costly mistake on a fast link,
// first runs a quarter of that (half after a decisive win); each round
// that confirms it doubles its run, up to runEpochs, since every plain
// probe costs the most exactly when compressing wins.
//
// An epoch ends after epoch data bytes, or after epochTime once it holds
// at least epoch/16 bytes: on a slow link a plain epoch of 64 MiB would
// take seconds (5 s at 100 Mbit/s) of sending at the slower rate, where a
// couple of seconds measure the link as well.
type chooser struct {
	epoch     int64
	epochTime time.Duration
	runEpochs int
	margin    float64
	decisive  float64
	linkBound float64
	now       func() time.Time
	modes     int // 2, or 3 with zstd

	warmup    bool // the first epoch
	probing   bool
	probeStep int // the mode being measured
	wins      int // consecutive probe rounds compressing won
	cur       int // the mode chosen
	lead      int // the compressed mode a round measures against plain; plain: all modes
	left      int // epochs before the next probe
	run       int // epochs the chosen compressed mode runs between probes
	bytes     int64
	start     time.Time
	wait      time.Duration // in writes to the connection, this epoch
	rate      [3]float64    // data bytes per second by mode
}

func newChooser(o AdaptiveOptions) *chooser {
	c := &chooser{epoch: o.EpochBytes, epochTime: o.EpochTime, runEpochs: o.RunEpochs, margin: o.Margin,
		decisive: o.Decisive, linkBound: o.LinkBound, now: o.Now, left: 1, modes: 2, warmup: true}
	if o.Zstd {
		c.modes = 3
	}
	if c.epoch <= 0 {
		c.epoch = 64 << 20
	}
	if c.epochTime <= 0 {
		c.epochTime = 2 * time.Second
	}
	if c.runEpochs <= 0 {
		c.runEpochs = 32
	}
	if c.margin <= 0 {
		c.margin = 1.1
	}
	if c.decisive <= 0 {
		c.decisive = 1.5
	}
	if c.linkBound <= 0 {
		c.linkBound = 0.5
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// mode says how the next frame should be sent.
func (c *chooser) mode() int {
	if c.start.IsZero() {
		c.start = c.now()
	}
	if c.probing {
		return c.probeStep
	}
	return c.cur
}

// done records that n data bytes, sent in mode (the mode picked for
// them), were handed on, their write to the connection having taken
// wait. A frame picked before the current epoch began (a pipeline's
// queue) is not counted: the epoch starts after it.
func (c *chooser) done(n int64, wait time.Duration, mode int) {
	want := c.cur
	if c.probing {
		want = c.probeStep
	}
	if mode != want {
		c.bytes, c.wait, c.start = 0, 0, c.now()
		return
	}
	c.bytes += n
	c.wait += wait
	if c.bytes < c.epoch/16 {
		return
	}
	now := c.now()
	elapsed := now.Sub(c.start)
	limit := c.epoch
	if c.warmup {
		limit = c.epoch / 4
	}
	if c.bytes < limit && elapsed < c.epochTime {
		return
	}
	c.warmup = false
	took := max(elapsed.Seconds(), 1e-9)
	rate := float64(c.bytes) / took
	linkBound := c.wait.Seconds() >= c.linkBound*took
	// The next epoch starts now, not at the next mode(): with a
	// pipeline, frames picked earlier may be done before that.
	c.bytes, c.start, c.wait = 0, now, 0
	if !c.probing {
		behind := false
		for m := range c.modes {
			// A costlier mode must be faster by the margin, a cheaper
			// one merely faster.
			switch {
			case m == c.cur || c.rate[m] == 0:
			case m > c.cur && rate*c.margin < c.rate[m], m < c.cur && rate < c.rate[m]:
				behind = true
			}
		}
		c.left--
		// Sending plain frames faster than the connection takes them
		// leaves nothing for compression to win.
		if (c.left <= 0 || behind) && (c.cur != modePlain || linkBound) {
			c.probing, c.probeStep = true, modePlain
		}
		return
	}
	c.rate[c.probeStep] = rate
	switch {
	case c.lead != modePlain && c.probeStep == modePlain:
		c.probeStep = c.lead
		return
	case c.lead == modePlain && c.probeStep+1 < c.modes:
		c.probeStep++
		return
	}
	c.probeStep = modePlain
	best := c.lead
	if best == modePlain {
		// Each compressed mode must beat plain by the margin; of two
		// that do, zstd must beat S2 by the margin too.
		if c.rate[modeS2] > c.rate[modePlain]*c.margin {
			best = modeS2
		}
		if c.modes > modeZstd && c.rate[modeZstd] > c.rate[modePlain]*c.margin &&
			(best == modePlain || c.rate[modeZstd] > c.rate[modeS2]*c.margin) {
			best = modeZstd
		}
	}
	if best == modePlain || c.rate[best] <= c.rate[modePlain]*c.margin {
		c.wins, c.cur, c.lead, c.probing, c.left = 0, modePlain, modePlain, false, c.runEpochs
		return
	}
	// The winner alone is measured against plain from now on: the
	// other compressed mode's rate is dropped, so that a stale
	// measurement neither decides nor triggers a probe.
	for m := modeS2; m < c.modes; m++ {
		if m != best {
			c.rate[m] = 0
		}
	}
	c.lead = best
	decisive := c.rate[best] >= c.rate[modePlain]*c.decisive
	if c.wins++; c.wins < 2 && c.cur == modePlain && !decisive {
		return // one more round, plain against the winner, before compressing
	}
	switch {
	case c.cur == best:
		c.run = min(c.runEpochs, 2*c.run) // confirmed: probe less often
	case decisive:
		c.run = max(1, c.runEpochs/2)
	default:
		c.run = max(1, c.runEpochs/4)
	}
	c.cur, c.probing, c.left = best, false, c.run
}
