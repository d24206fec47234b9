package cli

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/ist"
)

func TestAdviseUsage(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"sample too short", []string{"--sample", "10ms"}, ExitUsage, "at least 1s"},
		{"negative downtime", []string{"--downtime", "-1h"}, ExitUsage, "negative"},
		// A node that does not answer: no advice from half a cluster,
		// and nothing printed on stdout.
		{"unreachable node", []string{"--sample", "1s", "--timeout", "2s"}, ExitFailure, "every node must answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"advise", "--no-defaults", "--socket", sock}, tc.args...)
			out, errOut, code := run(t, args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d with %q", code, out, errOut, tc.code, tc.want)
			}
		})
	}
}

func TestPrintAdvice(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	s := ist.StatusSample{At: t0, GcacheSize: 128 << 20, SlaveThreads: 4, FCLimit: 16, CachedDownto: 100, LastCommitted: 10100, CertDepsDistance: 9, RecvQueueAvg: 3}
	e := s
	e.At = t0.Add(time.Minute)
	e.ReceivedBytes, e.Received, e.LastCommitted, e.CachedDownto = 60<<20, 6000, s.LastCommitted+6000, s.CachedDownto+6000
	e.FlowControlPausedNS, e.FlowControlSent = 12e9, 30
	a, err := ist.Advise([]ist.Sampled{{Node: "db1", T0: s, T1: e}}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	printAdvice(&Globals{Out: &out}, a, 2*time.Hour)
	for _, want := range []string{
		"a node can be down about 1m40s and still rejoin by IST (method seqno)", // 10001 seqnos at 100/s
		"For a downtime of 2h0m0s: gcache.size = ",
		"oldest advancing 100.0/s (full, discarding)",
		"wsrep_slave_threads: grow (4 -> 9)",
		"flow control: keep gcs.fc_limit (16): this node paused the cluster 20.0%",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
