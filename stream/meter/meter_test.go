package meter

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestRateAndETA(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	m := New(Options{Total: 100 << 20, Window: 5 * time.Second, Now: c.now})
	if s := m.Snapshot(); s.ETA != -1 || s.Rate != 0 {
		t.Fatalf("initial %+v", s)
	}
	// 1 MiB/s for 10 s.
	for range 10 {
		c.t = c.t.Add(time.Second)
		m.Add(1 << 20)
		m.Snapshot()
	}
	s := m.Snapshot()
	if s.Rate != 1<<20 || s.Bytes != 10<<20 || s.Elapsed != 10*time.Second {
		t.Fatalf("steady %+v", s)
	}
	if s.ETA != 90*time.Second {
		t.Fatalf("ETA %v", s.ETA)
	}
	// Rate doubles: the average moves towards it, not all at once.
	c.t = c.t.Add(time.Second)
	m.Add(2 << 20)
	s = m.Snapshot()
	if s.Rate <= 1<<20 || s.Rate >= 2<<20 {
		t.Fatalf("moving average %v", s.Rate)
	}
	m.Add(200 << 20)
	if s := m.Snapshot(); s.ETA != 0 {
		t.Fatalf("done ETA %v", s.ETA)
	}
	if s := New(Options{Now: c.now}).Snapshot(); s.ETA != -1 {
		t.Fatalf("unknown total ETA %v", s.ETA)
	}
}

func TestWrappersConcurrent(t *testing.T) {
	m := New(Options{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			io.Copy(m.Writer(io.Discard), m.Reader(strings.NewReader(strings.Repeat("x", 10000))))
			m.Snapshot()
		})
	}
	wg.Wait()
	if m.Bytes() != 80000 {
		t.Fatalf("counted %d", m.Bytes())
	}
}

func TestReport(t *testing.T) {
	m := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got []Snapshot
	done := make(chan struct{})
	ticked := make(chan struct{}, 1)
	go func() {
		m.Report(ctx, 5*time.Millisecond, func(s Snapshot) {
			mu.Lock()
			got = append(got, s)
			mu.Unlock()
			select {
			case ticked <- struct{}{}:
			default:
			}
		})
		close(done)
	}()
	io.Copy(m.Writer(io.Discard), bytes.NewReader(make([]byte, 1000)))
	<-ticked // one report from the ticker (however long the machine takes), then the final one
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(got) < 2 || got[len(got)-1].Bytes != 1000 {
		t.Fatalf("reports %+v", got)
	}
}
