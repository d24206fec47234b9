package schedule

import (
	"testing"
	"time"
)

// Schedules come from option files: any text is refused or gives a
// schedule whose next run is after the time asked about (or the zero time
// when it never runs).
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"@every 10s", "0 4 * * *", "CRON_TZ=UTC 0 2 * * 0", "@daily", "*/5 1-3 * * 1,3", "0 0 30 2 *", "@every 0s", "TZ=Nowhere 0 0 * * *"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := ParseSchedule(expr)
		if err != nil {
			return
		}
		from := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
		if n := s.Next(from); !n.IsZero() && !n.After(from) {
			t.Fatalf("%q: next %s is not after %s", expr, n, from)
		}
	})
}
