package schedule

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// renewStore is a LeaseStore whose Renew returns err and counts calls.
type renewStore struct {
	LeaseStore
	mu    sync.Mutex
	err   error
	calls int
}

func (s *renewStore) Renew(ctx context.Context, l *Lease, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return s.err
}

func (s *renewStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func newRenewal(store LeaseStore) (*renewal, *clockwork.FakeClock) {
	clock := clockwork.NewFakeClockAt(t0)
	c := &Config{Clock: clock, Leases: store, TTL: 30 * time.Second}
	return &renewal{c: c, l: &Lease{Mutex: "backup", Epoch: 1}, renewed: clock.Now()}, clock
}

func TestRenewalFence(t *testing.T) {
	ctx := context.Background()
	store := &renewStore{}
	r, clock := newRenewal(store)
	// Each renewal restarts the TTL/2 allowance.
	for i := 0; i < 3; i++ {
		clock.Advance(14 * time.Second)
		if err := r.fence(ctx); err != nil {
			t.Fatalf("fence %d, %s after a renewal: %v", i, 14*time.Second, err)
		}
	}
	if store.count() != 3 {
		t.Fatalf("%d renewals, want 3", store.count())
	}
	// A pause longer than TTL/2: refused without asking the store.
	clock.Advance(16 * time.Second)
	if err := r.fence(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("fence after a pause: %v, want ErrLeaseLost", err)
	}
	if store.count() != 3 {
		t.Errorf("the store was asked to renew a lease already given up (%d calls)", store.count())
	}
	// The store's own verdict is passed on.
	store.err = ErrLeaseLost
	r2, _ := newRenewal(store)
	if err := r2.fence(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("fence when the store says lost: %v", err)
	}
}

func TestRenewalLoop(t *testing.T) {
	for _, tc := range []struct {
		name      string
		renewErr  error
		advances  int   // timer periods (TTL/3) the loop runs before the check
		wantCause error // nil: the loop keeps running
	}{
		{"renewals succeed", nil, 3, nil},
		{"lease lost at the first renewal", ErrLeaseLost, 1, ErrLeaseLost},
		{"transient failure under TTL/2 is retried", errors.New("deadlock"), 1, nil},
		{"transient failures past TTL/2 lose the lease", errors.New("deadlock"), 2, ErrLeaseLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			r, clock := newRenewal(&renewStore{err: tc.renewErr})
			jctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			finished := make(chan struct{})
			done := make(chan error, 1)
			go func() { done <- r.loop(jctx, finished, cancel, slog.New(slog.DiscardHandler)) }()
			for i := 0; i < tc.advances; i++ {
				if err := clock.BlockUntilContext(ctx, 1); err != nil {
					t.Fatal(err)
				}
				clock.Advance(10 * time.Second)
			}
			if tc.wantCause != nil {
				if err := <-done; !errors.Is(err, tc.wantCause) {
					t.Fatalf("loop ended with %v, want %v", err, tc.wantCause)
				}
				if c := context.Cause(jctx); !errors.Is(c, tc.wantCause) {
					t.Errorf("job cancelled by %v, want %v", c, tc.wantCause)
				}
				return
			}
			// Still renewing: the loop waits on its next timer. The job
			// finishing ends it.
			if err := clock.BlockUntilContext(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if jctx.Err() != nil {
				t.Fatalf("job cancelled: %v", context.Cause(jctx))
			}
			close(finished)
			if err := <-done; err != nil {
				t.Errorf("loop after the job finished: %v", err)
			}
		})
	}
}
