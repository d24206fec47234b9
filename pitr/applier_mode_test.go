package pitr

import (
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/backup"
)

// TestApplierModeDefaults: no mode means DefaultApplierMode; MariaDB's
// slave_parallel_mode values are taken; anything else is refused before
// anything is restored.
func TestApplierModeDefaults(t *testing.T) {
	for _, tc := range []struct{ mode, want, err string }{
		{"", DefaultApplierMode, ""},
		{"optimistic", "optimistic", ""},
		{"aggressive", "aggressive", ""},
		{"conservative", "conservative", ""},
		{"minimal", "minimal", ""},
		{"none", "", `applier mode "none"`},
		{"OPTIMISTIC", "", "want one of"},
	} {
		o := PITROptions{RestoreOptions: backup.RestoreOptions{TargetDir: t.TempDir()}, Time: time.Unix(1e9, 0), ApplierMode: tc.mode}
		err := o.setDefaults()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.mode, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.mode, err, tc.err)
		case tc.err == "" && o.ApplierMode != tc.want:
			t.Errorf("%q: mode %q, want %q", tc.mode, o.ApplierMode, tc.want)
		}
	}
}
