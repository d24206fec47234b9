package backup

import (
	"context"
	"time"

	"github.com/gosst/gosst/stream/meter"
	"golang.org/x/sync/errgroup"
)

// reportProgress calls fn with m's snapshot every second on a goroutine of
// its own (nothing if fn is nil). The returned stop ends the reports and
// waits for the last one, the final state: no progress callback runs
// after its owner has returned.
func reportProgress(ctx context.Context, m *meter.Meter, fn func(meter.Snapshot)) (stop func()) {
	if fn == nil {
		return func() {}
	}
	pctx, cancel := context.WithCancel(ctx)
	var g errgroup.Group
	g.Go(func() error { m.Report(pctx, time.Second, fn); return nil })
	return func() { cancel(); _ = g.Wait() }
}
