package backup

import (
	"context"
	"sync"
	"testing"

	"github.com/gosst/gosst/stream/meter"
)

// TestReportProgressJoined: once stop returns, the final report (the
// complete byte count) has been delivered and no callback follows it.
func TestReportProgressJoined(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cancel bool // the owner's context ends first
	}{
		{"stop", false},
		{"owner cancelled", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			m := meter.New(meter.Options{Total: 300})
			var mu sync.Mutex
			var got []int64
			stopped := false
			stop := reportProgress(ctx, m, func(s meter.Snapshot) {
				mu.Lock()
				defer mu.Unlock()
				if stopped {
					t.Errorf("progress callback after stop returned")
				}
				got = append(got, s.Bytes)
			})
			m.Add(300)
			if tc.cancel {
				cancel()
			}
			stop()
			mu.Lock()
			stopped = true
			if len(got) == 0 || got[len(got)-1] != 300 {
				t.Errorf("reports %v: want the final one (300 bytes) delivered before stop returns", got)
			}
			mu.Unlock()
			stop() // idempotent
		})
	}
	// No callback: nothing to run, stop is still safe.
	reportProgress(context.Background(), meter.New(meter.Options{}), nil)()
}
