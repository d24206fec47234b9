package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// fakeStore is an in-memory LeaseStore with the SQL store's rules,
// expiring leases on the test clock.
type fakeStore struct {
	mu    sync.Mutex
	clock clockwork.Clock
	locks map[string]*Lease
	exp   map[string]time.Time
	slots map[string]time.Time
	done  map[string]bool
	epoch int64
	// ineligible nodes fail every claim; loseRenew nodes fail renewals.
	ineligible, loseRenew map[string]bool
}

func newFakeStore(c clockwork.Clock) *fakeStore {
	return &fakeStore{clock: c, locks: map[string]*Lease{}, exp: map[string]time.Time{}, slots: map[string]time.Time{},
		done: map[string]bool{}, ineligible: map[string]bool{}, loseRenew: map[string]bool{}}
}

type fakeView struct {
	*fakeStore
	node string
}

func (f fakeView) Claim(ctx context.Context, mutex, kind string, slot time.Time, ttl time.Duration) (ClaimResult, *Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ineligible[f.node] {
		return ClaimResult{}, nil, fmt.Errorf("%w: test", ErrNotEligible)
	}
	now := f.clock.Now()
	last := f.slots[kind]
	slotDone := last.After(slot) || (last.Equal(slot) && f.done[kind])
	if l := f.locks[mutex]; l != nil && !f.exp[mutex].Before(now) {
		return ClaimResult{Holder: l.Holder, Done: slotDone}, nil, nil
	}
	if slotDone {
		return ClaimResult{Done: true}, nil, nil
	}
	f.epoch++
	l := &Lease{Mutex: mutex, Kind: kind, Slot: slot, Holder: f.node, Owner: f.node, Epoch: f.epoch}
	f.locks[mutex], f.exp[mutex] = l, now.Add(ttl)
	f.slots[kind], f.done[kind] = slot, false
	return ClaimResult{Won: true}, l, nil
}

func (f fakeView) Renew(ctx context.Context, l *Lease, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.locks[l.Mutex]
	if f.loseRenew[f.node] || cur == nil || cur.Epoch != l.Epoch || f.exp[l.Mutex].Before(f.clock.Now()) {
		return ErrLeaseLost
	}
	f.exp[l.Mutex] = f.clock.Now().Add(ttl)
	return nil
}

func (f fakeView) Finish(ctx context.Context, l *Lease, success bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if success && f.slots[l.Kind].Equal(l.Slot) {
		f.done[l.Kind] = true
	}
	if cur := f.locks[l.Mutex]; cur != nil && cur.Epoch == l.Epoch {
		f.exp[l.Mutex] = f.clock.Now().Add(-time.Nanosecond)
	}
	return nil
}

func (f fakeView) Holder(ctx context.Context, mutex string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.locks[mutex]; l != nil && !f.exp[mutex].Before(f.clock.Now()) {
		return l.Holder, nil
	}
	return "", nil
}

type event struct {
	node, kind, outcome string
	slot                time.Time
}

type harness struct {
	t        *testing.T
	clock    *clockwork.FakeClock
	store    *fakeStore
	events   chan event
	attempts chan error
	mu       sync.Mutex
	runs     []event // jobs that ran (node, kind, slot)
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

var t0 = time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)

func newHarness(t *testing.T) *harness {
	c := clockwork.NewFakeClockAt(t0)
	h := &harness{t: t, clock: c, store: newFakeStore(c), events: make(chan event, 100), attempts: make(chan error, 100)}
	t.Cleanup(func() {
		if h.cancel != nil {
			h.cancel()
		}
		h.wg.Wait()
	})
	return h
}

// start runs a service for node with rank and jobs built by mk.
func (h *harness) start(ctx context.Context, node string, rank int, jobs ...Job) chan error {
	return h.startDrain(ctx, nil, node, rank, jobs...)
}

func (h *harness) startDrain(ctx context.Context, drain chan struct{}, node string, rank int, jobs ...Job) chan error {
	s, err := New(Config{Drain: drain, Jobs: jobs, Leases: fakeView{h.store, node}, Node: node, Rank: rank, RankDelay: time.Second,
		TTL: 30 * time.Second, BackoffMin: 5 * time.Second, BackoffMax: 20 * time.Second, Clock: h.clock,
		Metrics: NewMetrics(node),
		OnAttempt: func(kind string, slot time.Time, err error) {
			if kind == "full" {
				h.attempts <- err
			}
		},
		OnSlot: func(kind string, slot time.Time, outcome string) {
			h.events <- event{node: node, kind: kind, outcome: outcome, slot: slot}
		}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.wg.Add(1)
	ended := make(chan error, 1)
	go func() { defer h.wg.Done(); ended <- s.Run(ctx) }()
	return ended
}

// recv waits for a value; the timeout is a safety net only.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatal("nothing received")
	}
	var zero T
	return zero
}

func (h *harness) job(node, kind, mutex, every string, run func(ctx context.Context, fence func(context.Context) error) error) Job {
	sch, err := ParseSchedule(every)
	if err != nil {
		h.t.Fatal(err)
	}
	return Job{Kind: kind, Mutex: mutex, Schedule: sch, Run: func(ctx context.Context, l *Lease, fence func(context.Context) error) (Result, error) {
		h.mu.Lock()
		h.runs = append(h.runs, event{node: node, kind: kind, slot: l.Slot})
		h.mu.Unlock()
		if run != nil {
			return Result{Bytes: 1}, run(ctx, fence)
		}
		return Result{Bytes: 1}, nil
	}}
}

// step waits until n timers are pending, then advances the clock by d.
func (h *harness) step(n int, d time.Duration) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // safety net only
	defer cancel()
	if err := h.clock.BlockUntilContext(ctx, n); err != nil {
		h.t.Fatalf("waiting for %d timers: %v", n, err)
	}
	h.clock.Advance(d)
}

// want waits for the next slot event and checks it.
func (h *harness) want(node, outcome string) event {
	h.t.Helper()
	select {
	case e := <-h.events:
		if e.node != node || e.outcome != outcome {
			h.t.Fatalf("slot event: got %s %s %s, want %s %s", e.node, e.kind, e.outcome, node, outcome)
		}
		return e
	case <-time.After(time.Minute): // safety net only
		h.t.Fatalf("no slot event (want %s %s)", node, outcome)
	}
	return event{}
}

func TestOneNodePerSlotFirstListedWins(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	for i, n := range []string{"a", "b", "c"} {
		h.start(ctx, n, i, h.job(n, "full", "backup", "@every 10s", nil))
	}
	for slot := 1; slot <= 3; slot++ {
		h.step(3, 10*time.Second-2*time.Second*time.Duration(min(slot-1, 1))) // to the slot
		h.want("a", OutcomeRan)
		h.step(3, time.Second) // b's rank delay
		h.want("b", OutcomeElsewhere)
		h.step(3, time.Second) // c's rank delay
		h.want("c", OutcomeElsewhere)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.runs) != 3 {
		t.Fatalf("runs: %+v, want 3", h.runs)
	}
	for i, r := range h.runs {
		if want := t0.Add(time.Duration(i+1) * 10 * time.Second); r.node != "a" || !r.slot.Equal(want) {
			t.Errorf("run %d: %s at %s, want a at %s", i, r.node, r.slot, want)
		}
	}
}

func TestIneligibleFirstNodeNeverRuns(t *testing.T) {
	h := newHarness(t)
	h.store.ineligible["a"] = true // e.g. a donor, or outside the Primary component
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	for i, n := range []string{"a", "b"} {
		h.start(ctx, n, i, h.job(n, "full", "backup", "@every 1m", nil))
	}
	h.step(2, time.Minute)  // slot: a fails to claim and waits TTL/3, b waits its rank delay
	h.step(2, time.Second)  // b claims
	h.want("b", OutcomeRan) // the next listed node takes it
	h.step(2, 9*time.Second)
	h.step(2, 10*time.Second) // a retries while ineligible
	h.step(2, 10*time.Second)
	h.step(2, 10*time.Second)
	h.step(2, 10*time.Second) // a's next retry would reach the next slot: it gives up
	h.want("a", OutcomeGaveUp)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.runs) != 1 || h.runs[0].node != "b" {
		t.Fatalf("runs %+v, want exactly one by b", h.runs)
	}
}

func TestFailedJobRetriedWithBackoffOtherJobsRun(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	fails := 2
	full := h.job("a", "full", "backup", "@every 1h", func(ctx context.Context, _ func(context.Context) error) error {
		if fails > 0 {
			fails--
			return errors.New("mariabackup failed")
		}
		return nil
	})
	verify := h.job("a", "verify", "verify", "@every 1h", nil)
	h.start(ctx, "a", 0, full, verify)
	h.step(2, time.Hour) // both due; full fails and backs off 5s
	// verify is not blocked by the failing backup.
	e1, e2 := <-h.events, (event{})
	if e1.kind != "verify" || e1.outcome != OutcomeRan {
		t.Fatalf("first event %+v, want verify ran", e1)
	}
	if err := <-h.attempts; err == nil {
		t.Fatal("first attempt succeeded")
	}
	h.step(2, 5*time.Second) // first retry fails, backs off 10s
	if err := <-h.attempts; err == nil {
		t.Fatal("second attempt succeeded")
	}
	h.step(2, 9*time.Second)
	select {
	case e2 = <-h.events:
		t.Fatalf("retried before its backoff: %+v", e2)
	default:
	}
	h.step(2, time.Second) // second retry succeeds
	e2 = h.want("a", OutcomeRan)
	if e2.kind != "full" {
		t.Fatalf("event %+v, want full", e2)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.runs {
		if r.kind == "full" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("full ran %d times, want 3 (2 failures + success)", n)
	}
}

func TestLostLeaseStopsTheJob(t *testing.T) {
	h := newHarness(t)
	h.store.loseRenew["a"] = true // a paused node whose lease was taken over
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	got := make(chan error, 1)
	h.start(ctx, "a", 0, h.job("a", "full", "backup", "@every 1h", func(jctx context.Context, fence func(context.Context) error) error {
		<-jctx.Done() // a long backup
		got <- context.Cause(jctx)
		return jctx.Err()
	}))
	h.step(1, time.Hour)
	h.step(1, 10*time.Second) // renewal (TTL/3) fails
	if err := recv(t, got); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("job stopped by %v, want ErrLeaseLost", err)
	}
}

func TestFenceRefusesAfterAPause(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	started, resume := make(chan struct{}), make(chan struct{})
	got := make(chan error, 1)
	h.start(ctx, "a", 0, h.job("a", "full", "backup", "@every 1h", func(jctx context.Context, fence func(context.Context) error) error {
		close(started)
		<-resume
		err := fence(jctx) // right before publishing (the manifest)
		got <- err
		return err
	}))
	h.step(1, time.Hour)
	<-started
	// The process was stopped for longer than TTL/2: the renewal timer
	// and the job resume at the same moment. Whichever runs first, the
	// job must not publish.
	h.clock.Advance(20 * time.Second)
	close(resume)
	if err := recv(t, got); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("fence after a pause: %v, want ErrLeaseLost", err)
	}
}

func TestParseSchedule(t *testing.T) {
	for _, tc := range []struct {
		expr string
		from time.Time
		want time.Time
		bad  bool
	}{
		{expr: "@every 10s", from: t0.Add(3 * time.Second), want: t0.Add(10 * time.Second)},
		{expr: "@every 10s", from: t0, want: t0.Add(10 * time.Second)},
		{expr: "0 4 * * *", from: t0, want: t0.Add(time.Hour)},
		{expr: "@daily", from: t0, want: t0.Add(21 * time.Hour)},
		{expr: "CRON_TZ=UTC 0 4 * * *", from: t0.In(time.FixedZone("X", 3600)), want: t0.Add(time.Hour)},
		{expr: "0 4 * *", bad: true},
		{expr: "* * * * * *", bad: true},
		{expr: "61 * * * *", bad: true},
		{expr: "", bad: true},
		{expr: "TZ=", bad: true}, // panics inside robfig/cron v3.0.1
	} {
		s, err := ParseSchedule(tc.expr)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted", tc.expr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		if got := s.Next(tc.from); !got.Equal(tc.want) {
			t.Errorf("%q from %s: next %s, want %s", tc.expr, tc.from, got, tc.want)
		}
	}
}

func TestDrainLetsTheRunningJobFinish(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	drain, started, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	stopped := make(chan error, 1)
	ended := h.startDrain(ctx, drain, "a", 0, h.job("a", "full", "backup", "@every 1m", func(jctx context.Context, _ func(context.Context) error) error {
		close(started)
		<-release
		stopped <- jctx.Err() // a reload must not cancel a running backup
		return nil
	}))
	h.step(1, time.Minute)
	recv(t, started)
	close(drain) // SIGHUP: reload once the running job is done
	close(release)
	if err := recv(t, stopped); err != nil {
		t.Fatalf("running job cancelled by the drain: %v", err)
	}
	h.want("a", OutcomeRan)
	if err := recv(t, ended); err != nil {
		t.Fatalf("Run: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.runs) != 1 {
		t.Fatalf("runs %+v, want exactly 1 (no run after the drain)", h.runs)
	}
	if e := h.store.exp["backup"]; !e.Before(h.clock.Now()) {
		t.Fatalf("lease not released after the drain: expires %s", e)
	}
}
