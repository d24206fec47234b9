// Package meter counts bytes flowing through a stream and derives a rate
// and an ETA for progress reports.
//
// A Meter is safe for concurrent use: the byte counter is atomic, so the
// data path never takes a lock, and Snapshot may be called from any
// goroutine (it serialises its own rate bookkeeping).
package meter

import (
	"context"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWindow is the time constant of the rate's moving average.
const DefaultWindow = 10 * time.Second

// Options configures a Meter. The zero value is usable.
type Options struct {
	// Total is the expected number of bytes, or 0 if unknown (no ETA).
	Total int64
	// Window is the time constant of the exponential moving average of the
	// rate; 0 means DefaultWindow. Older samples weigh e^(-age/Window).
	Window time.Duration
	// Now is the clock; nil means time.Now. Tests inject a fake.
	Now func() time.Time
}

// Snapshot is the state of a Meter at one instant.
type Snapshot struct {
	Bytes   int64         // bytes counted so far
	Total   int64         // expected bytes, 0 if unknown
	Elapsed time.Duration // since the Meter was created
	Rate    float64       // bytes per second, moving average
	// ETA is the expected time to reach Total at the current rate; -1 when
	// unknown (no Total, or no rate yet), 0 once Total is reached.
	ETA time.Duration
}

// Meter counts bytes. Create it with New.
type Meter struct {
	n      atomic.Int64
	total  int64
	window time.Duration
	now    func() time.Time
	start  time.Time

	mu    sync.Mutex
	lastT time.Time
	lastN int64
	rate  float64
	rated bool
}

// New returns a Meter that starts counting now.
func New(o Options) *Meter {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	t := o.Now()
	return &Meter{total: o.Total, window: o.Window, now: o.Now, start: t, lastT: t}
}

// Add counts n bytes.
func (m *Meter) Add(n int64) { m.n.Add(n) }

// Bytes returns the bytes counted so far.
func (m *Meter) Bytes() int64 { return m.n.Load() }

// Snapshot returns the current state and folds the bytes counted since the
// previous Snapshot into the moving average. Call it at a steady interval
// (Report does) for a meaningful rate.
func (m *Meter) Snapshot() Snapshot {
	n := m.n.Load()
	t := m.now()
	m.mu.Lock()
	if dt := t.Sub(m.lastT).Seconds(); dt > 0 {
		inst := float64(n-m.lastN) / dt
		if !m.rated {
			m.rate, m.rated = inst, true
		} else {
			alpha := 1 - math.Exp(-dt/m.window.Seconds())
			m.rate += alpha * (inst - m.rate)
		}
		m.lastT, m.lastN = t, n
	}
	rate := m.rate
	m.mu.Unlock()

	s := Snapshot{Bytes: n, Total: m.total, Elapsed: t.Sub(m.start), Rate: rate, ETA: -1}
	switch {
	case m.total <= 0:
	case n >= m.total:
		s.ETA = 0
	case rate > 0:
		s.ETA = time.Duration(float64(m.total-n) / rate * float64(time.Second))
	}
	return s
}

// Report calls fn with a Snapshot every interval until ctx is done, then
// once more with the final state. It blocks; run it in its own goroutine
// (under the caller's errgroup). fn runs on Report's goroutine. An interval
// of 0 or less means one second.
func (m *Meter) Report(ctx context.Context, interval time.Duration, fn func(Snapshot)) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fn(m.Snapshot())
			return
		case <-t.C:
			fn(m.Snapshot())
		}
	}
}

// Reader returns a reader that counts the bytes read from r.
func (m *Meter) Reader(r io.Reader) io.Reader { return &reader{r: r, m: m} }

// Writer returns a writer that counts the bytes written to w.
func (m *Meter) Writer(w io.Writer) io.Writer { return &writer{w: w, m: m} }

type reader struct {
	r io.Reader
	m *Meter
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.m.Add(int64(n))
	return n, err
}

type writer struct {
	w io.Writer
	m *Meter
}

func (w *writer) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.m.Add(int64(n))
	return n, err
}
