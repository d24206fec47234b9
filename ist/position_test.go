package ist

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePosition(t *testing.T) {
	const u = "6b94087a-e947-11f1-b506-2f33047b60b8"
	tests := []struct {
		in      string
		want    Position
		wantErr bool
	}{
		{u + ":101,0-0-0", Position{UUID: u, Seqno: 101, GTID: "0-0-0"}, false},
		{u + ":40,7-11-39", Position{UUID: u, Seqno: 40, GTID: "7-11-39"}, false},
		{u + ":40,7-11-39,8-1-2", Position{UUID: u, Seqno: 40, GTID: "7-11-39,8-1-2"}, false},
		{u + ":125", Position{UUID: u, Seqno: 125, GTID: ""}, false},
		{"  " + strings.ToUpper(u) + ":3\n", Position{UUID: u, Seqno: 3, GTID: ""}, false},
		{ZeroUUID + ":-1", Position{UUID: ZeroUUID, Seqno: -1, GTID: ""}, false},
		{u, Position{}, true},
		{u + ":", Position{}, true},
		{u + ":-2", Position{}, true},
		{u + ":1,", Position{}, true},
		{u + ":1,x", Position{}, true},
		{"nope:1", Position{}, true},
		{u + ":" + strings.Repeat("9", 2000), Position{}, true},
	}
	for _, tt := range tests {
		got, err := ParsePosition(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrPosition) {
				t.Errorf("ParsePosition(%q): want ErrPosition, got %v", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePosition(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestPositionKnownString(t *testing.T) {
	const u = "6b94087a-e947-11f1-b506-2f33047b60b8"
	if !(Position{UUID: u, Seqno: 0, GTID: ""}).Known() || (Position{UUID: u, Seqno: -1, GTID: ""}).Known() || (Position{UUID: ZeroUUID, Seqno: 5, GTID: ""}).Known() {
		t.Fatal("Known wrong")
	}
	if s := (Position{UUID: u, Seqno: 4, GTID: "7-11-3"}).String(); s != u+":4,7-11-3" {
		t.Fatal(s)
	}
}

// Lines as mariadbd 10.11.19 with galera 26.4.23 writes them.
const recoverLog = `2026-12-04 10:00:00 0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1 source revision  as process 4242
2026-12-04 10:00:00 0 [Note] InnoDB: Starting crash recovery from checkpoint LSN=47629
2026-12-04 10:00:01 0 [Note] WSREP: Recovered position: 6b94087a-e947-11f1-b506-2f33047b60b8:101,0-0-0
2026-12-04 10:00:01 0 [Note] InnoDB: Last wsrep seqno to be recovered 101
`

func TestParseRecoveredPosition(t *testing.T) {
	p, err := ParseRecoveredPosition([]byte(recoverLog))
	if err != nil || p != (Position{UUID: "6b94087a-e947-11f1-b506-2f33047b60b8", Seqno: 101, GTID: "0-0-0"}) {
		t.Fatalf("got %+v, %v", p, err)
	}
	if _, err := ParseRecoveredPosition([]byte("[Note] WSREP: wsrep_on=OFF, skipping position recovery\n")); !errors.Is(err, ErrNoRecoveredPosition) || !strings.Contains(err.Error(), "wsrep_on") {
		t.Fatalf("skipped: got %v", err)
	}
	if _, err := ParseRecoveredPosition(nil); !errors.Is(err, ErrNoRecoveredPosition) {
		t.Fatalf("empty: got %v", err)
	}
	if _, err := ParseRecoveredPosition([]byte("WSREP: Recovered position: garbage\n")); !errors.Is(err, ErrPosition) {
		t.Fatalf("garbage: got %v", err)
	}
}

func FuzzParsePosition(f *testing.F) {
	f.Add("6b94087a-e947-11f1-b506-2f33047b60b8:101,0-0-0")
	f.Add("6b94087a-e947-11f1-b506-2f33047b60b8:40,7-11-39")
	f.Add(ZeroUUID + ":-1")
	f.Add(recoverLog)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePosition(s)
		if err != nil {
			_, _ = ParseRecoveredPosition([]byte(s))
			return
		}
		q, err := ParsePosition(p.String())
		if err != nil || q != p {
			t.Fatalf("round trip %q -> %+v -> %+v, %v", s, p, q, err)
		}
	})
}
