package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/mariadb"
	gsst "github.com/gosst/gosst/sst"
	"github.com/gosst/gosst/sst/wsrep"
)

func TestRoundOrder(t *testing.T) {
	methods := []string{"gosst", "mariabackup", "rsync"}
	for r, want := range [][]string{
		{"gosst", "mariabackup", "rsync"},
		{"mariabackup", "rsync", "gosst"},
		{"rsync", "gosst", "mariabackup"},
		{"gosst", "mariabackup", "rsync"},
	} {
		if got := roundOrder(methods, r); !slices.Equal(got, want) {
			t.Errorf("round %d: %q, want %q", r, got, want)
		}
	}
	if !slices.Equal(methods, []string{"gosst", "mariabackup", "rsync"}) {
		t.Errorf("roundOrder changed its argument: %q", methods)
	}
}

func TestMedianAndResults(t *testing.T) {
	s := time.Second
	at := func(ds ...time.Duration) []sample {
		ss := make([]sample, len(ds))
		for i, d := range ds {
			ss[i] = sample{d, int64(i) << 20}
		}
		return ss
	}
	for _, tc := range []struct {
		ss   []sample
		want sample
	}{
		{at(3 * s), sample{3 * s, 0}},
		{at(5*s, 1*s, 3*s), sample{3 * s, 2 << 20}},
		{at(4*s, 1*s, 3*s, 2*s), sample{2 * s, 3 << 20}}, // the lower middle
	} {
		if got := median(tc.ss); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.ss, got, tc.want)
		}
	}
	var b strings.Builder
	printResults(&b, []string{"gosst", "mariabackup", "rsync", "gosst:encrypt=off"}, map[string][]sample{
		"gosst":             {{2 * s, 100 << 20}, {4 * s, 100 << 20}, {3 * s, 300 << 20}},
		"mariabackup":       {{6 * s, -1}, {6 * s, -1}, {9 * s, -1}},
		"rsync":             {{4 * s, 50 << 20}},
		"gosst:encrypt=off": {{2 * s, 0}},
	})
	for _, want := range []string{
		"runs: 2.0 4.0 3.0)", "runs: 6.0 6.0 9.0)",
		"3.0 s     300 MiB on the link (node 2", // the median run's bytes
		"6.0 s (node 2",                         // none known
		"gosst / mariabackup = 0.50", "gosst / rsync = 0.75",
		"gosst / best stock method (rsync) = 0.75",
		"gosst:encrypt=off / best stock method (rsync) = 0.50",
		"gosst / gosst:encrypt=off = 1.50",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("results lack %q:\n%s", want, b.String())
		}
	}
	// Only gosst methods: no stock ratio, the default against the others.
	b.Reset()
	printResults(&b, []string{"gosst", "gosst:encrypt=off"}, map[string][]sample{
		"gosst": {{23 * s / 10, -1}}, "gosst:encrypt=off": {{2 * s, -1}},
	})
	if got := b.String(); strings.Contains(got, "best stock") || !strings.Contains(got, "gosst / gosst:encrypt=off = 1.15") {
		t.Errorf("gosst-only results:\n%s", got)
	}
}

func TestParseRates(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"", []string{""}, false},
		{"1gbit", []string{"1gbit"}, false},
		{"1gbit,100mbit", []string{"1gbit", "100mbit"}, false},
		{"1gbit,", nil, true},
		{"fast", nil, true},
	} {
		got, err := parseRates(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("parseRates(%q) = %q, %v", tc.in, got, err)
		}
	}
}

// TestSetSSTEncryptOff checks that "gosst:encrypt=off" reaches gosst as
// the opt-out it obeys: in [sst], encrypt=off is read as the stock
// scripts' setting and gosst still encrypts.
func TestSetSSTEncryptOff(t *testing.T) {
	cnf := filepath.Join(t.TempDir(), "my.cnf")
	base := "[mysqld]\nwsrep_sst_method=gosst\n\n[sst]\nsst-log-archive-dir=/x\n"
	if err := os.WriteFile(cnf, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func() gsst.Config {
		t.Helper()
		o, err := mariadb.ReadOptionFile(cnf)
		if err != nil {
			t.Fatal(err)
		}
		c, err := gsst.ConfigFromOptions(o, &wsrep.Args{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	method, opts, _ := strings.Cut("gosst:encrypt=off;compression=none", ":")
	if err := setSST(cnf, optionGroup(method), opts); err != nil {
		t.Fatal(err)
	}
	if c := parse(); !c.EncryptOff || c.Codec != "none" {
		t.Errorf("gosst:encrypt=off;compression=none: EncryptOff %v, codec %q", c.EncryptOff, c.Codec)
	}
	// The next method's options replace the previous ones.
	if err := setSST(cnf, optionGroup("gosst"), ""); err != nil {
		t.Fatal(err)
	}
	if c := parse(); c.EncryptOff || c.Codec != gsst.CodecAuto {
		t.Errorf("gosst after gosst:encrypt=off: EncryptOff %v, codec %q", c.EncryptOff, c.Codec)
	}
	if data, _ := os.ReadFile(cnf); string(data) != base {
		t.Errorf("options not removed:\n%s", data)
	}
	if g := optionGroup("mariabackup"); g != "sst" {
		t.Errorf("stock method's options go in [%s], want [sst]", g)
	}
}
