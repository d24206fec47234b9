package main

import (
	"slices"
	"strings"
	"testing"
	"time"
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
	for _, tc := range []struct {
		ds   []time.Duration
		want time.Duration
	}{
		{[]time.Duration{3 * s}, 3 * s},
		{[]time.Duration{5 * s, 1 * s, 3 * s}, 3 * s},
		{[]time.Duration{4 * s, 1 * s, 3 * s, 2 * s}, 2 * s}, // the lower middle
	} {
		if got := median(tc.ds); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.ds, got, tc.want)
		}
	}
	var b strings.Builder
	printResults(&b, []string{"gosst", "mariabackup"}, map[string][]time.Duration{
		"gosst": {2 * s, 4 * s, 3 * s}, "mariabackup": {6 * s, 6 * s, 9 * s},
	})
	for _, want := range []string{"runs: 2.0 4.0 3.0)", "runs: 6.0 6.0 9.0)", "gosst / mariabackup = 0.50"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("results lack %q:\n%s", want, b.String())
		}
	}
}
