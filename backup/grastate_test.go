package backup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosst/gosst/ist"
)

// TestWriteGaleraState: restore writes grastate.dat through ist, and a
// manifest whose position names no history leaves no grastate.dat (the
// old fmt.Sprintf writer wrote the zero uuid, a malformed uuid, or an
// extra safe_to_bootstrap line smuggled in the uuid into the file).
func TestWriteGaleraState(t *testing.T) {
	const u = "6b94087a-e947-11f1-b506-2f33047b60b8"
	for _, tc := range []struct {
		name string
		g    GaleraPosition
		err  string // "" = written
	}{
		{"position", GaleraPosition{UUID: u, Seqno: 40, DomainID: 7}, ""},
		{"seqno 0", GaleraPosition{UUID: strings.ToUpper(u), Seqno: 0}, ""},
		{"no position", GaleraPosition{Seqno: -1}, "has no Galera position"},
		{"seqno -1", GaleraPosition{UUID: u, Seqno: -1}, "has no Galera position"},
		{"zero uuid", GaleraPosition{UUID: ist.ZeroUUID, Seqno: 40}, "names no Galera history"},
		{"malformed uuid", GaleraPosition{UUID: "6b94087a", Seqno: 40}, "names no Galera history"},
		{"injected line", GaleraPosition{UUID: u + "\nsafe_to_bootstrap: 1", Seqno: 40}, "names no Galera history"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := writeGaleraState(dir, &Manifest{ID: "b1", Galera: tc.g})
			path := filepath.Join(dir, "grastate.dat")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "b1") {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				if ents, _ := os.ReadDir(dir); len(ents) != 0 {
					t.Fatalf("left behind %v", ents)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			g, err := ist.ReadGrastate(path)
			if err != nil || g.UUID != strings.ToLower(tc.g.UUID) || g.Seqno != tc.g.Seqno || g.SafeToBootstrap || g.Version != "2.1" {
				t.Fatalf("%+v %v", g, err)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o660 {
				t.Fatalf("mode: %v %v", fi.Mode(), err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Fatalf("temporary files left: %v", ents)
			}
		})
	}
}

func TestGaleraPositionRoundTrip(t *testing.T) {
	g := GaleraPosition{UUID: "6b94087a-e947-11f1-b506-2f33047b60b8", Seqno: 23, DomainID: 7}
	if got := GaleraPositionOf(g.Position()); got != g {
		t.Fatalf("%+v -> %+v", g, got)
	}
	if got := GaleraPositionOf(ist.Position{UUID: g.UUID, Seqno: 3}); got.DomainID != 0 {
		t.Fatalf("no domain recorded as %d", got.DomainID)
	}
	if _, err := ParseGaleraInfo(g.UUID + ":9 x"); !errors.Is(err, ist.ErrPosition) {
		t.Fatalf("bad domain: %v", err)
	}
}
