package mariadb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScratchSocketLongPath: a scratch server for a datadir deep in a tree
// (restore --target-dir /long/path) gets a socket path mariadbd accepts;
// before the fix it was always next to the datadir, and mariadbd refused to
// start ("The socket file path is too long (> 107)").
func TestScratchSocketLongPath(t *testing.T) {
	long := "/" + strings.Repeat("d", 60) + "/.data.gosst-restore-3928408451/scratch-new"
	for _, tc := range []struct {
		name, base string
		private    bool
	}{
		{"short stays next to the datadir", "/srv/.data.gosst-restore-1/scratch-new", false},
		{"at the limit", "/" + strings.Repeat("s", maxSocketPath-len("/.sock")), false},
		{"one byte over", "/" + strings.Repeat("s", maxSocketPath-len("/.sock")+1), true},
		{"deep target", long, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock, dir, err := scratchSocket(tc.base)
			if err != nil {
				t.Fatal(err)
			}
			if len(sock) > maxSocketPath {
				t.Fatalf("socket %s: %d bytes", sock, len(sock))
			}
			if !tc.private {
				if sock != tc.base+".sock" || dir != "" {
					t.Fatalf("got %s in %q, want %s.sock", sock, dir, tc.base)
				}
				return
			}
			defer os.RemoveAll(dir)
			if dir == "" || filepath.Dir(sock) != dir {
				t.Fatalf("socket %s not in a private directory (%q)", sock, dir)
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
				t.Fatalf("private directory %s: %v %v", dir, fi, err)
			}
		})
	}
}
