package sst

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// TestKeepaliveWriter drives the keepalive loop with a fake clock and
// hand-fed ticks (the time a tick carries is the loop's clock): the frame
// count is exact, whatever the machine's load.
// A send on the unbuffered tick channel returns only once the loop has
// finished the previous tick, so each check below sees a settled state.
func TestKeepaliveWriter(t *testing.T) {
	var buf syncBuf
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k := &keepaliveWriter{w: &buf, now: func() time.Time { return now }}
	if _, err := k.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tick := make(chan time.Time)
	done := make(chan struct{})
	go func() { defer close(done); k.loop(ctx, tick, 200*time.Millisecond, func() {}) }()
	// One second at 200 ms, ticking every 100 ms as run's ticker does
	// (every/2); each tick carries the loop's time.
	for range 10 {
		now = now.Add(100 * time.Millisecond)
		tick <- now
	}
	tick <- now // the loop has finished the tenth tick
	n := bytes.Count([]byte(buf.String()), keepaliveFrame)
	if n < 3 || n > 6 {
		t.Errorf("%d keepalive frames in 1 s at 200 ms", n)
	}
	if n != 5 {
		t.Errorf("%d keepalive frames in 1 s at 200 ms; want 5 (one per idle 200 ms)", n)
	}
	// Data written resets the idle time: no keepalive 100 ms after it.
	if _, err := k.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(100 * time.Millisecond)
	tick <- now
	tick <- now
	if m := bytes.Count([]byte(buf.String()), keepaliveFrame); m != n {
		t.Errorf("keepalive 100 ms after data (%d frames, had %d)", m, n)
	}
	if err := k.stop(); err != nil {
		t.Fatal(err)
	}
	after := buf.String()
	now = now.Add(500 * time.Millisecond)
	// The loop sees stop at its next tick and returns. That may be the
	// tick it received last, still in hand when stop ran: then it has
	// already returned and takes no more ticks.
	select {
	case tick <- now:
	case <-done:
	}
	<-done
	if buf.String() != after {
		t.Error("keepalive after stop")
	}
}

// TestKeepaliveWriterFails: a failing keepalive write records the error,
// calls onFail once and ends the loop.
func TestKeepaliveWriterFails(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	broken := errors.New("connection reset")
	k := &keepaliveWriter{w: failWriter{broken}, now: func() time.Time { return now }}
	tick := make(chan time.Time)
	done := make(chan struct{})
	failed := 0
	go func() {
		defer close(done)
		k.loop(context.Background(), tick, time.Second, func() { failed++ })
	}()
	now = now.Add(time.Second)
	tick <- now
	<-done
	if failed != 1 || !errors.Is(k.err(), broken) || !errors.Is(k.stop(), broken) {
		t.Fatalf("onFail called %d times, err %v", failed, k.err())
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }
