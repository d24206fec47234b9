// Package stall attributes a pipeline's wall time to its stages, so a
// transfer's summary can say which stage limited it.
//
// A Meter adds up the time spent inside the Read or Write calls of one
// edge between two stages: time a stage spent waiting for the stage
// beyond that edge. A stage's busy time is the time its neighbour waited
// for it; Attribute turns those into shares of the elapsed time and names
// the stage with the largest share the limiter.
//
// Meters read a monotonic clock (time.Now's readings carry one); tests
// inject a fake.
package stall

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"
)

// Meter adds up the time spent in calls through it. It is safe for
// concurrent use.
type Meter struct {
	now func() time.Time
	ns  atomic.Int64
}

// New returns a Meter that reads the clock now; nil means time.Now.
func New(now func() time.Time) *Meter {
	if now == nil {
		now = time.Now
	}
	return &Meter{now: now}
}

// Add counts d.
func (m *Meter) Add(d time.Duration) { m.ns.Add(int64(d)) }

// Blocked is the time counted so far.
func (m *Meter) Blocked() time.Duration { return time.Duration(m.ns.Load()) }

// Time runs f and counts the time it took.
func (m *Meter) Time(f func() error) error {
	t := m.now()
	err := f()
	m.Add(m.now().Sub(t))
	return err
}

// Reader returns a reader that counts the time spent in r.Read.
func (m *Meter) Reader(r io.Reader) io.Reader { return &reader{r: r, m: m} }

// Writer returns a writer that counts the time spent in w.Write.
func (m *Meter) Writer(w io.Writer) io.Writer { return &writer{w: w, m: m} }

type reader struct {
	r io.Reader
	m *Meter
}

func (r *reader) Read(p []byte) (int, error) {
	t := r.m.now()
	n, err := r.r.Read(p)
	r.m.Add(r.m.now().Sub(t))
	return n, err
}

type writer struct {
	w io.Writer
	m *Meter
}

func (w *writer) Write(p []byte) (int, error) {
	t := w.m.now()
	n, err := w.w.Write(p)
	w.m.Add(w.m.now().Sub(t))
	return n, err
}

// Stage is one stage's busy time: the time the rest of the pipeline spent
// waiting for it.
type Stage struct {
	Name string
	Busy time.Duration
}

// Share is a stage's busy time as a fraction of the elapsed time, 0..1.
type Share struct {
	Name  string  `json:"name"`
	Share float64 `json:"share"`
}

// Report is the attribution of one transfer.
type Report struct {
	Elapsed time.Duration
	Shares  []Share // in pipeline order
	// Limiter is the stage with the largest share (the first of equals);
	// empty when nothing was measured.
	Limiter string
}

// Attribute divides each stage's busy time by elapsed. Negative busy
// times (a difference of two meters that overlapped) count as 0, and
// shares are capped at 1.
func Attribute(elapsed time.Duration, stages []Stage) Report {
	r := Report{Elapsed: elapsed}
	best := 0.0
	for _, s := range stages {
		f := 0.0
		if elapsed > 0 && s.Busy > 0 {
			f = min(1, s.Busy.Seconds()/elapsed.Seconds())
		}
		r.Shares = append(r.Shares, Share{Name: s.Name, Share: f})
		if f > best {
			best, r.Limiter = f, s.Name
		}
	}
	return r
}

// Map returns the shares by stage name, rounded to 0.01, for a JSON record.
func (r Report) Map() map[string]float64 {
	if len(r.Shares) == 0 {
		return nil
	}
	m := make(map[string]float64, len(r.Shares))
	for _, s := range r.Shares {
		m[s.Name] = float64(int(s.Share*100+0.5)) / 100
	}
	return m
}

// String is "network 81 %, compression 12 %, ...".
func (r Report) String() string {
	parts := make([]string, len(r.Shares))
	for i, s := range r.Shares {
		parts[i] = fmt.Sprintf("%s %.0f %%", s.Name, 100*s.Share)
	}
	return strings.Join(parts, ", ")
}
