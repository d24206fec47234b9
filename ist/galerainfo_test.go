package ist

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testUUID = "8e120e29-e947-11f1-817f-b7bf0e58ebeb"

// Moved whole from sst (TestParsePosition) with the parser it tests.
func TestParseGaleraInfo(t *testing.T) {
	for _, tc := range []struct {
		in, line string
		ok       bool
	}{
		{testUUID + ":9 9", testUUID + ":9 9", true},
		{testUUID + ":9", testUUID + ":9", true},
		{testUUID + ":-1 0\n", testUUID + ":-1 0", true},
		{"  " + strings.ToUpper(testUUID) + ":12 7  ", testUUID + ":12 7", true},
		{testUUID + ":x 9", "", false},
		{testUUID + ":-2", "", false},
		{"8e120e29:9 9", "", false},
		{testUUID + ":9 9 9", "", false},
		{testUUID + ":9 -1", "", false},
		{"", "", false},
	} {
		p, err := ParseGaleraInfo(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParsePosition(%q): err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && p.Line() != tc.line {
			t.Errorf("ParsePosition(%q).Line() = %q, want %q", tc.in, p.Line(), tc.line)
		}
	}
}

// The parser backup.ParseGaleraInfo used before the merge: its cases.
func TestParseGaleraInfoBackupCases(t *testing.T) {
	g, err := ParseGaleraInfo("6b94087a-e947-11f1-b506-2f33047b60b8:23 7\n")
	if err != nil || g.Seqno != 23 || g.DomainID() != 7 {
		t.Fatalf("%+v %v", g, err)
	}
	if _, err := ParseGaleraInfo("nonsense"); !errors.Is(err, ErrPosition) {
		t.Fatalf("bad galera info accepted: %v", err)
	}
	for _, bad := range []string{
		testUUID + ":9 4294967296",   // domain ids are 32-bit
		testUUID + ":9 x",            // the old backup parser read this as domain 0
		strings.Repeat(" ", 2000),    // bounded
		testUUID + ":9\nsafe_to_b 1", // one line only
	} {
		if _, err := ParseGaleraInfo(bad); !errors.Is(err, ErrPosition) {
			t.Errorf("ParseGaleraInfo(%q): %v, want ErrPosition", bad, err)
		}
	}
}

func TestPositionDomain(t *testing.T) {
	p := Position{UUID: testUUID, Seqno: 5}
	if p.DomainID() != NoDomain || p.Line() != testUUID+":5" {
		t.Fatalf("no domain: %d %q", p.DomainID(), p.Line())
	}
	q := p.WithDomain(0)
	if !q.HasDomain || q.DomainID() != 0 || q.Line() != testUUID+":5 0" {
		t.Fatalf("domain 0: %+v %q", q, q.Line())
	}
	if r := q.WithDomain(-1); r != p {
		t.Fatalf("WithDomain(-1) = %+v, want %+v", r, p)
	}
	if r := p.WithDomain(1 << 32); r.HasDomain {
		t.Fatalf("WithDomain(2^32) = %+v", r)
	}
	if s := q.UUIDSeqno(); s != testUUID+":5" {
		t.Fatal(s)
	}
}

func TestFormatGrastate(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Position
		safe bool
		ok   bool
	}{
		{"position", Position{UUID: testUUID, Seqno: 40}, false, true},
		{"safe", Position{UUID: strings.ToUpper(testUUID), Seqno: 0, GTID: "7-11-3"}.WithDomain(7), true, true},
		{"no uuid", Position{Seqno: 40}, false, false},
		{"zero uuid", Position{UUID: ZeroUUID, Seqno: 40}, false, false},
		{"seqno -1", Position{UUID: testUUID, Seqno: -1}, false, false},
		{"injected line", Position{UUID: testUUID + "\nsafe_to_bootstrap: 1", Seqno: 40}, false, false},
		{"malformed uuid", Position{UUID: "6b94087a", Seqno: 40}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := FormatGrastate(tc.p, tc.safe)
			if !tc.ok {
				if !errors.Is(err, ErrGrastate) {
					t.Fatalf("got %q, %v; want ErrGrastate", out, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			g, err := ParseGrastate(out)
			if err != nil || g.UUID != strings.ToLower(tc.p.UUID) || g.Seqno != tc.p.Seqno || g.SafeToBootstrap != tc.safe || g.Version != "2.1" {
				t.Fatalf("round trip %q: %+v %v", out, g, err)
			}
		})
	}
}

func TestWriteGrastate(t *testing.T) {
	dir := t.TempDir()
	p := Position{UUID: testUUID, Seqno: 40}.WithDomain(7)
	if err := WriteGrastate(dir, p, false); err != nil {
		t.Fatal(err)
	}
	g, err := ReadGrastate(filepath.Join(dir, "grastate.dat"))
	if err != nil || g.String() != p.UUIDSeqno() || g.SafeToBootstrap {
		t.Fatalf("%+v %v", g, err)
	}
	// A refused position leaves the existing file as it was.
	before, _ := os.ReadFile(filepath.Join(dir, "grastate.dat"))
	if err := WriteGrastate(dir, Position{UUID: ZeroUUID, Seqno: 3}, true); !errors.Is(err, ErrGrastate) {
		t.Fatalf("zero uuid: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "grastate.dat"))
	if string(before) != string(after) {
		t.Fatalf("file changed: %q -> %q", before, after)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}

func FuzzParseGaleraInfo(f *testing.F) {
	f.Add(testUUID + ":9 9")
	f.Add(testUUID + ":-1")
	f.Add("6b94087a-e947-11f1-b506-2f33047b60b8:23 7\n")
	f.Add("nonsense")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseGaleraInfo(s)
		if err != nil {
			return
		}
		q, err := ParseGaleraInfo(p.Line())
		if err != nil || q != p {
			t.Fatalf("round trip %q -> %+v -> %+v, %v", s, p, q, err)
		}
		if p.Known() {
			out, err := FormatGrastate(p, false)
			if err != nil {
				t.Fatalf("FormatGrastate(%+v): %v", p, err)
			}
			if g, err := ParseGrastate(out); err != nil || g.String() != p.UUIDSeqno() {
				t.Fatalf("grastate round trip %+v: %+v %v", p, g, err)
			}
		}
	})
}
