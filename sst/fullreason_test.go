package sst

import (
	"github.com/gosst/gosst/ist"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestFullSSTReason(t *testing.T) {
	const cluster = "6b94087a-e947-11f1-b506-2f33047b60b8"
	const other = "0c779d86-e947-11f1-b506-2f33047b60b8"
	donor := ist.Position{UUID: cluster, Seqno: 500}
	grastate := func(uuid string, seqno int) string {
		return "# GALERA saved state\nversion: 2.1\nuuid:    " + uuid + "\nseqno:   " + strconv.Itoa(seqno) + "\nsafe_to_bootstrap: 0\n"
	}
	for _, tc := range []struct {
		name     string
		grastate string // "" = none
		args     []string
		want     []string // "" entry: want no reason
	}{
		{"new node", "", nil, []string{""}},
		{"unsafe state", grastate("00000000-0000-0000-0000-000000000000", -1), nil, []string{""}},
		{"other history", grastate(other, -1), nil, []string{"history " + other, "not the cluster's " + cluster}},
		{"other history from the start position", "", []string{"--wsrep_start_position=" + other + ":40,7-11-39"}, []string{"history " + other}},
		{"rolled over", grastate(cluster, -1), []string{"--user=mysql", "--wsrep_start_position=" + cluster + ":120"},
			[]string{"position " + cluster + ":120", "no longer holds write-set 121", "380 write-sets behind"}},
		{"dashes in the option name", grastate(cluster, -1), []string{"--wsrep-start-position=" + cluster + ":120"}, []string{"write-set 121"}},
		{"crashed node started without its position", grastate(cluster, -1), nil, []string{"history " + cluster, "seqno is not visible", "galera_recovery"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.grastate != "" {
				if err := os.WriteFile(filepath.Join(dir, "grastate.dat"), []byte(tc.grastate), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got := fullSSTReason(dir, tc.args, donor)
			for _, w := range tc.want {
				if w == "" && got != "" {
					t.Fatalf("reason %q, want none", got)
				}
				if !strings.Contains(got, w) {
					t.Fatalf("reason %q lacks %q", got, w)
				}
			}
		})
	}
}
