package cli

import (
	"fmt"
	"time"

	"github.com/gosst/gosst/internal/text"
	"github.com/gosst/gosst/pitr"
)

// Replay is the pitr.PITROptions.Progress callback: the progress line
// (terminal) or a log line every 10 s, with the transactions and events.
func (p *progress) Replay(s pitr.ReplaySnapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintf(p.g.Err, "\r\033[K%s", replayLine(p.what, s))
		p.drew = true
		return
	}
	if time.Since(p.last) < 10*time.Second {
		return
	}
	p.last = time.Now()
	p.g.Logger.Info(p.what, replayAttrs(s)...)
}

// replayLine renders the terminal line, e.g. "replay: 310 MiB of 1.0 GiB
// (30%), 35.4 MB/s, 12000 of 40000 transactions, 1333 tx/s, 61000 events,
// 9s, ETA 21s".
func replayLine(what string, s pitr.ReplaySnapshot) string {
	line := fmt.Sprintf("%s: %s", what, text.Bytes(s.Bytes))
	if s.Total > 0 {
		line += fmt.Sprintf(" of %s (%.0f%%)", text.Bytes(s.Total), 100*float64(s.Bytes)/float64(s.Total))
	}
	line += fmt.Sprintf(", %.1f MB/s", s.Rate/1e6)
	if s.TransactionsTotal > 0 {
		line += fmt.Sprintf(", %d of %d transactions, %.0f tx/s", s.Transactions, s.TransactionsTotal, s.TxRate)
	}
	if s.Events >= 0 {
		line += fmt.Sprintf(", %d events", s.Events)
	}
	line += fmt.Sprintf(", %s", s.Elapsed.Round(time.Second))
	if s.ETA > 0 {
		line += fmt.Sprintf(", ETA %s", s.ETA.Round(time.Second))
	}
	return line
}

// replayAttrs are the log line's attributes.
func replayAttrs(s pitr.ReplaySnapshot) []any {
	attrs := []any{"bytes", s.Bytes, "rate_MBps", fmt.Sprintf("%.1f", s.Rate/1e6),
		"transactions", s.Transactions, "transactions_total", s.TransactionsTotal, "tx_per_s", fmt.Sprintf("%.0f", s.TxRate)}
	if s.Events >= 0 {
		attrs = append(attrs, "events", s.Events)
	}
	attrs = append(attrs, "elapsed", s.Elapsed.Round(time.Second))
	if s.Total > 0 {
		attrs = append(attrs, "total", s.Total)
	}
	if s.ETA > 0 {
		attrs = append(attrs, "eta", s.ETA.Round(time.Second))
	}
	return attrs
}

// replayHow describes the replay in the summary: mode, rate, events.
func replayHow(res *pitr.PITRResult) string {
	how := res.Replay
	if res.Replay == pitr.ReplayApplier {
		how = fmt.Sprintf("%s, %d threads (%s), %s of relay logs", res.Replay, res.ApplierThreads, res.ApplierMode, text.Bytes(res.ReplayBytes))
	}
	how += fmt.Sprintf(", %.0f transactions/s", res.TransactionsPerSecond)
	if res.Events >= 0 {
		how += fmt.Sprintf(", %d events", res.Events)
	}
	return how
}
