package sst

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/gosst/gosst/internal/text"
	"github.com/gosst/gosst/stream/meter"
)

// logger writes "WSREP_SST: [LEVEL] gosst: <role>: ..." lines to stderr,
// which mysqld connected to its error log. It never sees secrets.
type logger struct {
	mu   sync.Mutex
	w    io.Writer
	role string
}

func (l *logger) printf(level, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		fmt.Fprintf(l.w, "WSREP_SST: [%s] gosst: %s: %s\n", level, l.role, line)
	}
}

func (l *logger) Infof(format string, args ...any)  { l.printf("INFO", format, args...) }
func (l *logger) Warnf(format string, args ...any)  { l.printf("WARNING", format, args...) }
func (l *logger) Errorf(format string, args ...any) { l.printf("ERROR", format, args...) }

// output writes protocol lines to mysqld, each whole in one write.
type output struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *output) line(s string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, err := io.WriteString(o.w, s+"\n")
	return err
}

// progress reports a transfer: a stderr line every interval, and, when
// enabled, "complete <bytes>" lines for mysqld.
type progress struct {
	log      *logger
	out      *output
	lines    bool // emit total/complete
	phase    string
	raw      *meter.Meter // uncompressed backup bytes
	wire     *meter.Meter // bytes on the connection (compressed)
	start    time.Time
	interval time.Duration
}

func newProgress(log *logger, out *output, lines bool, phase string, total int64, interval time.Duration) *progress {
	p := &progress{
		log: log, out: out, lines: lines, phase: phase,
		raw:      meter.New(meter.Options{Total: total, Window: 10 * time.Second}),
		wire:     meter.New(meter.Options{}),
		start:    time.Now(),
		interval: interval,
	}
	if lines && total > 0 {
		_ = out.line(fmt.Sprintf("total %d", total))
	}
	return p
}

// run reports until ctx ends.
func (p *progress) run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s := p.raw.Snapshot()
			eta := "unknown"
			if s.ETA >= 0 {
				eta = s.ETA.Round(time.Second).String()
			}
			total := ""
			if s.Total > 0 {
				total = fmt.Sprintf(" of ~%s (%.0f%%)", human(s.Total), 100*float64(s.Bytes)/float64(s.Total))
			}
			p.log.Infof("%s: %s%s backup data, %s on the wire, %s/s, ETA %s", p.phase, human(s.Bytes), total,
				human(p.wire.Bytes()), human(int64(s.Rate)), eta)
			if p.lines {
				_ = p.out.line(fmt.Sprintf("complete %d", s.Bytes))
			}
		}
	}
}

// summary logs the final line.
func (p *progress) summary(verb string) {
	d := time.Since(p.start)
	raw, w := p.raw.Bytes(), p.wire.Bytes()
	ratio := 0.0
	if w > 0 {
		ratio = float64(raw) / float64(w)
	}
	cpu := ""
	if self, children := cpuTime(); self > 0 {
		// Where a slow transfer spent its CPU: this script or mariabackup.
		cpu = fmt.Sprintf("; CPU %.1f s", self.Seconds())
		if children > 0 {
			cpu += fmt.Sprintf(", mariabackup %.1f s", children.Seconds())
		}
	}
	p.log.Infof("%s %s of backup data as %s on the wire in %.1f s (%s/s, compression ratio %.2f%s)",
		verb, human(raw), human(w), d.Seconds(), human(int64(float64(raw)/max(d.Seconds(), 0.001))), ratio, cpu)
	if p.lines {
		_ = p.out.line(fmt.Sprintf("complete %d", raw))
	}
}

// human formats a byte count for the log (text.Bytes: 1.5 KiB, 17.1 MiB).
var human = text.Bytes
