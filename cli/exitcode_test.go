package cli

import (
	"errors"
	"fmt"
	"testing"
)

// TestExitCode pins the galera-backup exit-code table (docs/exit-codes.md).
func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"success", nil, ExitOK},
		{"--print-defaults", errDefaultsPrinted, ExitOK},
		{"plain failure", errors.New("upload failed"), ExitFailure},
		{"usage", &ExitError{Code: ExitUsage, Err: errors.New("--target-dir is required")}, ExitUsage},
		{"wrapped usage", fmt.Errorf("storage: %w", &ExitError{Code: ExitUsage, Err: errors.New("bad URL")}), ExitUsage},
		{"partial (PITR gap, a node down)", &ExitError{Code: ExitPartial, Err: errors.New("the archive has 1 gap(s)")}, ExitPartial},
		{"explicit failure", &ExitError{Code: ExitFailure, Err: errors.New("no node answered")}, ExitFailure},
		{"cobra unknown command", errors.New(`unknown command "nope" for "galera-backup"`), ExitUsage},
		{"cobra argument count", errors.New("accepts 1 arg(s), received 2"), ExitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExitCode(tc.err); got != tc.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}
