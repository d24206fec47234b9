package cluster

import (
	"strings"
	"testing"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"100mbit", 100e6, false},
		{"1gbit", 1e9, false},
		{"500kbit", 500e3, false},
		{"8000bit", 8000, false},
		{"8000", 8000, false},
		{" 1GBIT ", 1e9, false},
		{"", 0, true},
		{"mbit", 0, true},
		{"0mbit", 0, true},
		{"-1mbit", 0, true},
		{"1.5gbit", 0, true},
		{"100mb", 0, true}, // bytes units are not accepted: say bits
		{"99999999999999999999gbit", 0, true},
		{"9223372036854775807gbit", 0, true},
	} {
		got, err := ParseRate(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"100mbit", "1gbit", "1", "", "9223372036854775807bit", "0x10kbit"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseRate(s)
		if err != nil {
			if v != 0 || !strings.Contains(err.Error(), "link rate") {
				t.Fatalf("ParseRate(%q) = %d, %v", s, v, err)
			}
			return
		}
		if v <= 0 {
			t.Fatalf("ParseRate(%q) = %d, want > 0", s, v)
		}
	})
}

func TestTBFBurst(t *testing.T) {
	for _, tc := range []struct{ bps, want int64 }{
		{1e9, 1250000},  // 10 ms at 1 Gbit/s
		{100e6, 125000}, // 10 ms at 100 Mbit/s
		{1e6, 64 << 10}, // floor
	} {
		if got := tbfBurst(tc.bps); got != tc.want {
			t.Errorf("tbfBurst(%d) = %d, want %d", tc.bps, got, tc.want)
		}
	}
}

func TestStalePID(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"gosst-lab-1234-1-a", 1234, true},
		{"gosst-lab-77-12-b", 77, true},
		{"gosst-lab-x-1-a", 0, false},
		{"gosst-lab-1234", 0, false},
		{"gosst-lab--1-a", 0, false},
		{"other-1234-1-a", 0, false},
		{"gosst-lab-0-1-a", 0, false},
	} {
		pid, ok := stalePID(tc.name)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("stalePID(%q) = %d, %v; want %d, %v", tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
}
