package sst

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestTimeoutMessage: the idle-timeout error is the line an operator
// reads in the error log; it must say which direction went silent.
func TestTimeoutMessage(t *testing.T) {
	for _, tc := range []struct{ what, want string }{
		{"sent", "nothing could be sent for 10s"},
		{"received", "nothing could be received for 10s"},
	} {
		err := timeoutErr(os.ErrDeadlineExceeded, 10*time.Second, tc.what)
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("timeoutErr(%q) = %v, want %q", tc.what, err, tc.want)
		}
	}
}
