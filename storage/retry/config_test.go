package retry

import (
	"io"
	"log/slog"
	"testing"
)

func TestForRequests(t *testing.T) {
	own := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name string
		in   Config
		want *slog.Logger
	}{
		{name: "no logger: the default one, never silent", in: Config{MaxAttempts: 9}, want: slog.Default()},
		{name: "own logger kept", in: Config{Logger: own}, want: own},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.ForRequests(3)
			if got.MaxAttempts != 3 || got.Logger != tc.want {
				t.Fatalf("got %d attempts, logger %p; want 3, %p", got.MaxAttempts, got.Logger, tc.want)
			}
		})
	}
}
