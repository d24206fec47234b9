package testport

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFreePortsDistinctAndBelowEphemeral: reserved ports never repeat
// within a process, lie below the kernel's ephemeral range, and a port
// whose lock another holder has (as another test process would) is not
// handed out.
func TestFreePortsDistinctAndBelowEphemeral(t *testing.T) {
	a, err := Reserve(20)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Reserve(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	eph := ephemeralStart()
	for _, p := range append(a, b...) {
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p < portLo || (eph > 0 && p >= eph) || p >= portHi {
			t.Fatalf("port %d outside %d-%d (ephemeral range starts at %d)", p, portLo, portHi, eph)
		}
	}
	// Every reserved port is locked: a second opener (another process in
	// real life; another open file description here) cannot take it.
	dir := filepath.Join(os.TempDir(), "gosst-test-ports")
	for _, p := range a {
		if f, ok := lockPort(dir, p); ok {
			f.Close()
			t.Fatalf("port %d is reserved but its lock could be taken again", p)
		}
	}
}
