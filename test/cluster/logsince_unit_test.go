package cluster

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLogSince: LogSince returns the bytes after the offset, nothing for
// an offset beyond the end or a log not written yet, and LogSize is the
// offset that makes the next LogSince return only what is appended.
func TestLogSince(t *testing.T) {
	n := &Node{ErrorLog: filepath.Join(t.TempDir(), "error.log")}
	if got := n.LogSince(0); got != "" {
		t.Errorf("LogSince(0) of a missing log = %q, want empty", got)
	}
	if got := n.LogSize(); got != 0 {
		t.Errorf("LogSize of a missing log = %d, want 0", got)
	}
	if err := os.WriteFile(n.ErrorLog, []byte("first line\nsecond line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		off  int64
		want string
	}{
		{0, "first line\nsecond line\n"},
		{11, "second line\n"},
		{23, ""},
		{24, ""},
	} {
		if got := n.LogSince(c.off); got != c.want {
			t.Errorf("LogSince(%d) = %q, want %q", c.off, got, c.want)
		}
	}
	off := n.LogSize()
	f, err := os.OpenFile(n.ErrorLog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("third line\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := n.LogSince(off); got != "third line\n" {
		t.Errorf("LogSince(LogSize()) after an append = %q, want the appended line", got)
	}
}
