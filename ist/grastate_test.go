package ist

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParseGrastate(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Grastate
		wantErr bool
	}{
		{"clean shutdown", "# GALERA saved state\nversion: 2.1\nuuid:    6b94087a-e947-11f1-b506-2f33047b60b8\nseqno:   125\nsafe_to_bootstrap: 1\n",
			Grastate{"2.1", "6b94087a-e947-11f1-b506-2f33047b60b8", 125, true}, false},
		{"running", "# GALERA saved state\nversion: 2.1\nuuid:    6b94087a-e947-11f1-b506-2f33047b60b8\nseqno:   -1\nsafe_to_bootstrap: 0\n",
			Grastate{"2.1", "6b94087a-e947-11f1-b506-2f33047b60b8", -1, false}, false},
		{"empty file", "", Grastate{"", ZeroUUID, -1, true}, false},
		{"padded with spaces", "version: 2.1\nuuid: 6B94087A-E947-11F1-B506-2F33047B60B8\nseqno: 7\n          \n",
			Grastate{"2.1", "6b94087a-e947-11f1-b506-2f33047b60b8", 7, true}, false},
		{"unknown keys ignored", "foo: bar\nseqno: 3\n", Grastate{"", ZeroUUID, 3, true}, false},
		{"bad uuid", "uuid: nope\n", Grastate{}, true},
		{"bad seqno", "seqno: 12x\n", Grastate{}, true},
		{"seqno below -1", "seqno: -2\n", Grastate{}, true},
		{"bad safe_to_bootstrap", "safe_to_bootstrap: yes\n", Grastate{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseGrastate([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrGrastate) {
					t.Fatalf("want ErrGrastate, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHasPosition(t *testing.T) {
	for _, tt := range []struct {
		g    Grastate
		want bool
	}{
		{Grastate{UUID: "6b94087a-e947-11f1-b506-2f33047b60b8", Seqno: 5}, true},
		{Grastate{UUID: "6b94087a-e947-11f1-b506-2f33047b60b8", Seqno: -1}, false},
		{Grastate{UUID: ZeroUUID, Seqno: 5}, false},
	} {
		if got := tt.g.HasPosition(); got != tt.want {
			t.Errorf("%v.HasPosition() = %v", tt.g, got)
		}
	}
}

func TestReadGrastate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "grastate.dat")
	if _, err := ReadGrastate(p); err == nil {
		t.Fatal("missing file: want error")
	}
	if err := os.WriteFile(p, []byte("uuid: 6b94087a-e947-11f1-b506-2f33047b60b8\nseqno: 9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := ReadGrastate(p)
	if err != nil || g.Seqno != 9 {
		t.Fatalf("got %+v, %v", g, err)
	}
}

func FuzzParseGrastate(f *testing.F) {
	f.Add([]byte("# GALERA saved state\nversion: 2.1\nuuid:    6b94087a-e947-11f1-b506-2f33047b60b8\nseqno:   125\nsafe_to_bootstrap: 1\n"))
	f.Add([]byte("seqno: -1\n"))
	f.Add([]byte("uuid:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGrastate(data)
		if err != nil {
			return
		}
		if g.Seqno < -1 {
			t.Fatalf("seqno %d accepted", g.Seqno)
		}
		if !uuidRE.MatchString(g.UUID) {
			t.Fatalf("uuid %q accepted", g.UUID)
		}
	})
}
