package cli

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/gosst/gosst/internal/text"
	"github.com/gosst/gosst/stream/meter"
)

// progress renders meter snapshots: a single self-updating line when
// stderr is a terminal, otherwise a log line every 10 s.
type progress struct {
	g    *Globals
	what string
	tty  bool
	mu   sync.Mutex
	last time.Time
	drew bool
}

func newProgress(g *Globals, what string) *progress {
	p := &progress{g: g, what: what}
	if f, ok := g.Err.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// Update is a meter.Report callback.
func (p *progress) Update(s meter.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		line := fmt.Sprintf("%s: %s", p.what, text.Bytes(s.Bytes))
		if s.Total > 0 {
			line += fmt.Sprintf(" of %s (%.0f%%)", text.Bytes(s.Total), 100*float64(s.Bytes)/float64(s.Total))
		}
		line += fmt.Sprintf(", %.1f MB/s, %s", s.Rate/1e6, s.Elapsed.Round(time.Second))
		if s.ETA > 0 {
			line += fmt.Sprintf(", ETA %s", s.ETA.Round(time.Second))
		}
		fmt.Fprintf(p.g.Err, "\r\033[K%s", line)
		p.drew = true
		return
	}
	if time.Since(p.last) < 10*time.Second {
		return
	}
	p.last = time.Now()
	attrs := []any{"bytes", s.Bytes, "rate_MBps", fmt.Sprintf("%.1f", s.Rate/1e6), "elapsed", s.Elapsed.Round(time.Second)}
	if s.Total > 0 {
		attrs = append(attrs, "total", s.Total)
	}
	if s.ETA > 0 {
		attrs = append(attrs, "eta", s.ETA.Round(time.Second))
	}
	p.g.Logger.Info(p.what, attrs...)
}

// Done ends the progress line.
func (p *progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drew {
		fmt.Fprintln(p.g.Err)
	}
}
