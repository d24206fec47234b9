// Package schedule is the engine of `galera-backup schedule`: cron-style
// jobs (full, incremental, verify) run by exactly one node of the cluster
// per scheduled slot, decided by a writer lease (see LeaseStore), retried
// with backoff, with Prometheus metrics and one structured log line per
// job start and end.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/robfig/cron/v3"
	"golang.org/x/sync/errgroup"
)

// Result is what a job reports on success.
type Result struct {
	Bytes  int64  // stored bytes (backups)
	Detail string // e.g. the backup id
}

// JobFunc runs one job. fence renews the lease and fails when it is lost:
// a job calls it right before it makes its result visible (a backup's
// manifest), so a node that lost the role never publishes.
type JobFunc func(ctx context.Context, l *Lease, fence func(context.Context) error) (Result, error)

// Job is one scheduled job kind.
type Job struct {
	Kind     string // full, incremental, verify
	Mutex    string // jobs with the same mutex never run at once in the cluster
	Schedule cron.Schedule
	Run      JobFunc
	// After, when set, runs after every success while the lease is still
	// held (retention).
	After func(ctx context.Context) error
}

// Outcomes of a slot, passed to Config.OnSlot.
const (
	OutcomeRan       = "ran"       // this node ran it successfully
	OutcomeElsewhere = "elsewhere" // another node took it, or a later slot was taken
	OutcomeGaveUp    = "gave-up"   // retries reached the next slot, or the service stops
)

// Config configures a Service.
type Config struct {
	Jobs   []Job
	Leases LeaseStore
	// Node is this node's name; Rank its position in the preference list
	// (0 first). A node waits Rank*RankDelay after a slot before claiming,
	// so the first listed healthy node normally wins.
	Node      string
	Rank      int
	RankDelay time.Duration // default 2s
	// TTL is the lease time; it is renewed every TTL/3 and a job whose
	// renewal has not succeeded for TTL/2 (by this process' monotonic
	// clock) is stopped (default 30s).
	TTL time.Duration
	// BackoffMin and BackoffMax bound the wait between attempts after a
	// failure (default 5s, 5m).
	BackoffMin, BackoffMax time.Duration
	// Background runs next to the jobs (binlog archiving); its error
	// stops nothing else and is only logged.
	Background []func(ctx context.Context) error
	Clock      clockwork.Clock
	Logger     *slog.Logger
	Metrics    *Metrics
	// Drain, when closed, stops the service gracefully: no new run starts,
	// a running job finishes (its lease is released), background tasks are
	// cancelled, and Run returns. Used for a configuration reload.
	Drain <-chan struct{}
	// OnSlot, when set, is called when this node is done with a slot.
	OnSlot func(kind string, slot time.Time, outcome string)
	// OnAttempt, when set, is called after every run of a job on this
	// node (its lease released), with its error.
	OnAttempt func(kind string, slot time.Time, err error)
}

// Service runs the jobs until its context ends.
type Service struct{ c Config }

// New checks c and fills in defaults.
func New(c Config) (*Service, error) {
	if c.Leases == nil {
		return nil, errors.New("schedule: no lease store")
	}
	if c.RankDelay <= 0 {
		c.RankDelay = 2 * time.Second
	}
	if c.TTL <= 0 {
		c.TTL = 30 * time.Second
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = 5 * time.Second
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = max(5*time.Minute, c.BackoffMin)
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Rank < 0 {
		c.Rank = 0
	}
	for _, j := range c.Jobs {
		if j.Schedule == nil || j.Run == nil || j.Kind == "" || j.Mutex == "" {
			return nil, fmt.Errorf("schedule: job %q is incomplete", j.Kind)
		}
	}
	return &Service{c: c}, nil
}

// ParseSchedule parses a 5-field cron expression or a descriptor (@daily,
// @every 10s). @every schedules are aligned to multiples of their interval
// since the Unix epoch, so that every node computes the same slots.
func ParseSchedule(expr string) (_ cron.Schedule, err error) {
	// robfig/cron v3.0.1 panics on some malformed input ("TZ=" without an
	// expression, found by FuzzParseSchedule): a bad schedule must be a
	// clear error, never a crash.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("schedule %q: not a cron expression (%v)", expr, r)
		}
	}()
	s, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w (want 5 cron fields, e.g. '0 3 * * *', or @daily, @every 1h)", expr, err)
	}
	if d, ok := s.(cron.ConstantDelaySchedule); ok {
		return alignedEvery(d.Delay), nil
	}
	return s, nil
}

type alignedEvery time.Duration

func (a alignedEvery) Next(t time.Time) time.Time {
	d := time.Duration(a)
	return t.Truncate(d).Add(d)
}

// Run runs every job and background task until ctx ends; it returns after
// all of them have stopped.
func (s *Service) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	// wait ends with ctx or when draining: every wait between runs uses it,
	// the jobs themselves only ctx.
	wait, stop := context.WithCancel(ctx)
	defer stop()
	if s.c.Drain != nil {
		g.Go(func() error {
			select {
			case <-s.c.Drain:
				stop()
			case <-wait.Done():
			}
			return nil
		})
	}
	for _, j := range s.c.Jobs {
		g.Go(func() error { s.loop(ctx, wait, j); return nil })
	}
	for _, b := range s.c.Background {
		g.Go(func() error {
			if err := b(wait); err != nil && wait.Err() == nil {
				s.c.Logger.Error("background task stopped", "err", err)
			}
			return nil
		})
	}
	return g.Wait()
}

// sleep waits d on the service clock; false when ctx ended first.
func (s *Service) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := s.c.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.Chan():
		return true
	}
}

func (s *Service) loop(ctx, wait context.Context, j Job) {
	now := s.c.Clock.Now()
	for {
		slot := j.Schedule.Next(now)
		if !s.sleep(wait, slot.Sub(s.c.Clock.Now())) {
			return
		}
		s.runSlot(ctx, wait, j, slot)
		if wait.Err() != nil {
			return
		}
		now = s.c.Clock.Now()
		if now.Before(slot) {
			now = slot
		}
		if n := j.Schedule.Next(slot); !n.After(now) {
			s.c.Logger.Warn("skipping scheduled runs that passed while the previous one ran", "job", j.Kind, "slot", slot, "next", j.Schedule.Next(now))
		}
	}
}

func (s *Service) done(j Job, slot time.Time, outcome string) {
	if s.c.OnSlot != nil {
		s.c.OnSlot(j.Kind, slot, outcome)
	}
}

func (s *Service) runSlot(ctx, waitCtx context.Context, j Job, slot time.Time) {
	log := s.c.Logger.With("job", j.Kind, "slot", slot.UTC().Format(time.RFC3339))
	deadline := j.Schedule.Next(slot)
	wait := time.Duration(s.c.Rank) * s.c.RankDelay
	backoff := s.c.BackoffMin
	for attempt := 1; ; attempt++ {
		if !s.sleep(waitCtx, wait) || waitCtx.Err() != nil {
			s.done(j, slot, OutcomeGaveUp)
			return
		}
		res, l, err := s.c.Leases.Claim(ctx, j.Mutex, j.Kind, slot, s.c.TTL)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				s.done(j, slot, OutcomeGaveUp)
				return
			}
			log.Warn("cannot claim the writer role; retrying", "attempt", attempt, "err", err)
			wait = s.c.TTL / 3
		case res.Done:
			log.Debug("slot taken by another node", "holder", res.Holder)
			s.done(j, slot, OutcomeElsewhere)
			return
		case !res.Won:
			log.Debug("another node holds the writer role", "holder", res.Holder)
			wait = s.c.TTL / 3
		default:
			err := s.execute(ctx, j, l, attempt, log)
			if s.c.OnAttempt != nil {
				s.c.OnAttempt(j.Kind, slot, err)
			}
			if err == nil {
				s.done(j, slot, OutcomeRan)
				return
			}
			wait, backoff = backoff, min(2*backoff, s.c.BackoffMax)
		}
		if waitCtx.Err() != nil {
			s.done(j, slot, OutcomeGaveUp)
			return
		}
		if !s.c.Clock.Now().Add(wait).Before(deadline) {
			log.Error("giving up this scheduled run: the next one is due", "attempts", attempt, "next", deadline)
			s.done(j, slot, OutcomeGaveUp)
			return
		}
	}
}

// execute runs a job holding lease l, renewing it; it releases the lease
// afterwards, marking the slot done on success.
func (s *Service) execute(ctx context.Context, j Job, l *Lease, attempt int, log *slog.Logger) (err error) {
	start := s.c.Clock.Now()
	log = log.With("node", s.c.Node, "epoch", l.Epoch, "attempt", attempt)
	log.Info("job start")
	s.c.Metrics.jobStarted(j.Kind, l.Mutex, true)
	res, err := s.runLeased(ctx, j, l, log)
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer fcancel()
	if ferr := s.c.Leases.Finish(fctx, l, err == nil); ferr != nil {
		log.Warn("could not release the writer lease; it expires by itself", "err", ferr)
	}
	dur := s.c.Clock.Since(start)
	s.c.Metrics.jobEnded(j.Kind, l.Mutex, dur, res.Bytes, err, s.c.Clock.Now())
	if err != nil {
		log.Error("job end", "ok", false, "duration", dur.Round(time.Millisecond), "err", err)
		return err
	}
	log.Info("job end", "ok", true, "duration", dur.Round(time.Millisecond), "bytes", res.Bytes, "detail", res.Detail)
	return nil
}

// runLeased runs j (and its After) while a second goroutine renews the
// lease every TTL/3; both are joined before it returns. Losing the lease
// cancels the job, and its error then says so.
func (s *Service) runLeased(ctx context.Context, j Job, l *Lease, log *slog.Logger) (Result, error) {
	jctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := &renewal{c: &s.c, l: l, renewed: s.c.Clock.Now()}
	var res Result
	finished := make(chan struct{})
	g, gctx := errgroup.WithContext(jctx)
	g.Go(func() error { return r.loop(gctx, finished, cancel, log) })
	g.Go(func() error {
		defer close(finished)
		var err error
		res, err = j.Run(gctx, l, r.fence)
		if err == nil && j.After != nil {
			if aerr := j.After(gctx); aerr != nil {
				log.Warn("retention after the job failed; the next success retries it", "err", aerr)
			}
		}
		return err
	})
	err := g.Wait()
	if c := context.Cause(jctx); err != nil && c != nil && !errors.Is(err, c) && errors.Is(c, ErrLeaseLost) {
		err = fmt.Errorf("%w (%w)", err, c)
	}
	return res, err
}

// renewal keeps a running job's lease: the renewal loop and the job's
// fence both renew it, one at a time.
type renewal struct {
	c       *Config
	l       *Lease
	mu      sync.Mutex // serialises renewals (renewal loop and the job's fence)
	renewed time.Time  // of the last successful renewal
}

// since is the time since the last successful renewal.
func (r *renewal) since() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c.Clock.Since(r.renewed)
}

// fence renews the lease, and fails with ErrLeaseLost without trying when
// the last renewal is older than TTL/2 (the process was paused: another
// node may hold the lease by now).
func (r *renewal) fence(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.c.Clock.Since(r.renewed) > r.c.TTL/2 {
		return fmt.Errorf("%w: no renewal for %s", ErrLeaseLost, r.c.Clock.Since(r.renewed).Round(time.Millisecond))
	}
	if err := r.c.Leases.Renew(ctx, r.l, r.c.TTL); err != nil {
		return err
	}
	r.renewed = r.c.Clock.Now()
	return nil
}

// loop renews the lease every TTL/3 until the job has finished or ctx
// ends. A failed renewal is retried until the lease is lost or TTL/2 has
// passed without one; then it cancels the job with ErrLeaseLost.
func (r *renewal) loop(ctx context.Context, finished <-chan struct{}, cancel context.CancelCauseFunc, log *slog.Logger) error {
	for {
		t := r.c.Clock.NewTimer(r.c.TTL / 3)
		select {
		case <-finished:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.Chan():
		}
		if err := r.fence(ctx); err != nil {
			if errors.Is(err, ErrLeaseLost) || r.since() > r.c.TTL/2 {
				if !errors.Is(err, ErrLeaseLost) {
					err = fmt.Errorf("%w: %w", ErrLeaseLost, err)
				}
				cancel(err)
				return err
			}
			log.Warn("lease renewal failed; retrying", "err", err)
		}
	}
}

// Schedule is a parsed schedule: the next run after a time.
type Schedule = cron.Schedule
