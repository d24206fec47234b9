package stall

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

func TestAttribute(t *testing.T) {
	s := time.Second
	tests := []struct {
		name    string
		elapsed time.Duration
		stages  []Stage
		limiter string
		shares  []float64
	}{
		{"one slow stage", 10 * s, []Stage{{"a", s}, {"b", 9 * s}, {"c", 0}}, "b", []float64{0.1, 0.9, 0}},
		{"negative difference counts as zero", 10 * s, []Stage{{"a", -3 * s}, {"b", 2 * s}}, "b", []float64{0, 0.2}},
		{"overlap capped at one", 10 * s, []Stage{{"a", 12 * s}, {"b", 2 * s}}, "a", []float64{1, 0.2}},
		{"tie: the first", 10 * s, []Stage{{"a", 5 * s}, {"b", 5 * s}}, "a", []float64{0.5, 0.5}},
		{"nothing measured", 10 * s, []Stage{{"a", 0}, {"b", 0}}, "", []float64{0, 0}},
		{"no time elapsed", 0, []Stage{{"a", s}}, "", []float64{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Attribute(tt.elapsed, tt.stages)
			if r.Limiter != tt.limiter {
				t.Errorf("limiter %q, want %q", r.Limiter, tt.limiter)
			}
			for i, sh := range r.Shares {
				if sh.Name != tt.stages[i].Name || sh.Share != tt.shares[i] {
					t.Errorf("share %d = %+v, want %s %v", i, sh, tt.stages[i].Name, tt.shares[i])
				}
			}
		})
	}
}

func TestReportFormat(t *testing.T) {
	r := Attribute(3*time.Second, []Stage{{"network", 2 * time.Second}, {"compression", time.Second}})
	if got, want := r.String(), "network 67 %, compression 33 %"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	m := r.Map()
	if m["network"] != 0.67 || m["compression"] != 0.33 || len(m) != 2 {
		t.Errorf("Map() = %v", m)
	}
	if (Report{}).Map() != nil {
		t.Error("empty report: want a nil map (omitted from JSON)")
	}
}

type fake struct{ ns atomic.Int64 }

func (f *fake) now() time.Time { return time.Unix(0, f.ns.Load()) }

type step struct {
	f  *fake
	d  time.Duration
	rw io.ReadWriter
}

func (s step) Read(p []byte) (int, error)  { s.f.ns.Add(int64(s.d)); return s.rw.Read(p) }
func (s step) Write(p []byte) (int, error) { s.f.ns.Add(int64(s.d)); return s.rw.Write(p) }

func TestMeter(t *testing.T) {
	f := &fake{}
	m := New(f.now)
	var buf bytes.Buffer
	st := step{f, time.Second, &buf}
	if _, err := m.Writer(st).Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 3)
	if n, err := m.Reader(st).Read(p); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	boom := errors.New("boom")
	if err := m.Time(func() error { f.ns.Add(int64(time.Second)); return boom }); !errors.Is(err, boom) {
		t.Fatalf("Time: %v", err)
	}
	m.Add(time.Second)
	if got := m.Blocked(); got != 4*time.Second {
		t.Errorf("Blocked() = %v, want 4s", got)
	}
}
