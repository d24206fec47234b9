package schedule

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/gosst/gosst/ist"
)

func gauge(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestISTHorizonGauge(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	base := ist.StatusSample{At: t0, GcacheSize: 8 << 20, SlaveThreads: 1, CachedDownto: 1, LastCommitted: 100}
	// at returns the reading d after t0 with n write-sets of 1000 bytes
	// since t0 (the ring not yet full).
	at := func(d time.Duration, n int64) ist.StatusSample {
		s := base
		s.At = t0.Add(d)
		s.ReceivedBytes, s.Received, s.LastCommitted = 1000*n, n, base.LastCommitted+n
		return s
	}
	errRead := errors.New("connection refused")
	// 100 write-sets/s of 1000 bytes: 8 MiB / (100 000 + 2 800) B/s.
	busy := float64(8<<20) / 102_800
	steps := []struct {
		name    string
		reading ist.StatusSample
		err     error
		want    float64
	}{
		{"first reading: unknown", at(0, 0), nil, -1},
		{"5s later: too short, still unknown", at(5*time.Second, 500), nil, -1},
		{"10s: 100 write-sets/s", at(10*time.Second, 1000), nil, busy},
		{"3s later: last value kept", at(13*time.Second, 1000), nil, busy},
		{"idle 10s: unbounded", at(20*time.Second, 1000), nil, math.Inf(1)},
		{"node down: unknown", ist.StatusSample{}, errRead, -1},
		{"back: one reading, unknown", at(40*time.Second, 1000), nil, -1},
		{"counters reset (restart): unknown", at(60*time.Second, 0), nil, -1},
		{"then busy again", at(70*time.Second, 1000), nil, busy},
	}
	i := 0
	m := NewMetrics("n1")
	m.WatchISTHorizon(func(ctx context.Context) (ist.StatusSample, error) {
		s := steps[i]
		return s.reading, s.err
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i = range steps {
		if got := gauge(t, m, "gosst_ist_horizon_seconds"); math.Abs(got-steps[i].want) > 1e-9 && !(math.IsInf(got, 1) && math.IsInf(steps[i].want, 1)) {
			t.Errorf("%s: %v, want %v", steps[i].name, got, steps[i].want)
		}
	}
	var nilM *Metrics
	nilM.WatchISTHorizon(nil, nil) // records nothing, does not panic
}
