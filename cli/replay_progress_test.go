package cli

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/pitr"
	"github.com/gosst/gosst/stream/meter"
)

// TestReplayProgressLine: the terminal line and the log line of a replay
// show bytes, transactions, transactions per second and events.
func TestReplayProgressLine(t *testing.T) {
	snap := func(b, total int64, rate float64, tx, txTotal int64, txRate float64, events int64, el, eta time.Duration) pitr.ReplaySnapshot {
		return pitr.ReplaySnapshot{Snapshot: meter.Snapshot{Bytes: b, Total: total, Rate: rate, Elapsed: el, ETA: eta},
			Transactions: tx, TransactionsTotal: txTotal, TxRate: txRate, Events: events}
	}
	for _, tc := range []struct {
		name    string
		s       pitr.ReplaySnapshot
		line    string
		logKeys string
	}{
		{"applier mid-way", snap(310<<20, 1<<30, 35.4e6, 12000, 40000, 1333.4, 61000, 9*time.Second, 21*time.Second),
			"replay: 310.0 MiB of 1.0 GiB (30%), 35.4 MB/s, 12000 of 40000 transactions, 1333 tx/s, 61000 events, 9s, ETA 21s",
			"bytes=325058560 rate_MBps=35.4 transactions=12000 transactions_total=40000 tx_per_s=1333 events=61000 elapsed=9s total=1073741824 eta=21s"},
		{"events unknown, no ETA yet", snap(0, 4096, 0, 0, 3, 0, -1, 0, -1),
			"replay: 0 B of 4.0 KiB (0%), 0.0 MB/s, 0 of 3 transactions, 0 tx/s, 0s",
			"bytes=0 rate_MBps=0.0 transactions=0 transactions_total=3 tx_per_s=0 elapsed=0s total=4096"},
		{"done", snap(4096, 4096, 1e6, 3, 3, 750, 20, 4*time.Second, 0),
			"replay: 4.0 KiB of 4.0 KiB (100%), 1.0 MB/s, 3 of 3 transactions, 750 tx/s, 20 events, 4s",
			"bytes=4096 rate_MBps=1.0 transactions=3 transactions_total=3 tx_per_s=750 events=20 elapsed=4s total=4096"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := replayLine("replay", tc.s); got != tc.line {
				t.Errorf("line\n got %q\nwant %q", got, tc.line)
			}
			var buf bytes.Buffer
			g := &Globals{Err: &buf, Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey || a.Key == slog.LevelKey {
						return slog.Attr{}
					}
					return a
				}}))}
			newProgress(g, "replay").Replay(tc.s) // not a terminal: the log line
			if want := "msg=replay " + tc.logKeys + "\n"; buf.String() != want {
				t.Errorf("log line\n got %q\nwant %q", buf.String(), want)
			}
		})
	}
}

// TestReplaySummary: the summary's replay part names the mode, the
// average transactions per second and the events.
func TestReplaySummary(t *testing.T) {
	for _, tc := range []struct {
		res  pitr.PITRResult
		want string
	}{
		{pitr.PITRResult{Replay: pitr.ReplayApplier, ApplierThreads: 4, ApplierMode: "optimistic", ReplayBytes: 3 << 20, TransactionsPerSecond: 1234.4, Events: 56789},
			"applier, 4 threads (optimistic), 3.0 MiB of relay logs, 1234 transactions/s, 56789 events"},
		{pitr.PITRResult{Replay: pitr.ReplayClient, TransactionsPerSecond: 12.6, Events: 100}, "client, 13 transactions/s, 100 events"},
		{pitr.PITRResult{Replay: pitr.ReplayApplier, ApplierThreads: 1, ApplierMode: "conservative", ReplayBytes: 10, TransactionsPerSecond: 5, Events: -1},
			"applier, 1 threads (conservative), 10 B of relay logs, 5 transactions/s"},
	} {
		if got := replayHow(&tc.res); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
		if strings.Contains(tc.want, "events") != (tc.res.Events >= 0) {
			t.Fatal("bad case")
		}
	}
}
