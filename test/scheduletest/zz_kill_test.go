package scheduletest

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/gosst/gosst/backup"
)

// Killing the holder's mariadbd moves the next runs to the next listed
// node, and the restore test (--verify-schedule) runs and is reported in
// the metrics. Runs last: node1 rejoins afterwards.
func TestScheduleZZMariadbdKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a cluster")
	}
	store := t.TempDir()
	n1 := clu.Node(1)
	common := []string{"--full-schedule", "@every 15s", "--verify-schedule", "@every 20s", "--lease-ttl", "9s",
		"--rank-delay", "2s", "--archive-binlogs=false", "--retry-backoff", "3s"}
	var procs []*proc
	for i := 1; i <= 3; i++ {
		procs = append(procs, startSchedule(t, clu.Node(i), store, common...))
	}
	var seen []*backup.Manifest
	waitFor(t, "a first backup by node1", store, &seen, func([]*backup.Manifest) bool { return len(seen) >= 1 })
	if seen[0].Node != "node1" {
		t.Errorf("first backup by %s, want node1", seen[0].Node)
	}

	if err := n1.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	defer func() {
		if err := n1.Start(context.Background()); err != nil {
			t.Errorf("restart node1: %v", err)
		}
	}()
	n := len(seen)
	waitFor(t, "two backups after node1's mariadbd was killed", store, &seen, func([]*backup.Manifest) bool { return len(seen) >= n+2 })
	for _, m := range seen[n:] {
		if m.Node == "node1" {
			t.Errorf("backup %s by node1 after its mariadbd was killed at %s: %s", m.ID, killed.Format("15:04:05"), describe(seen))
		}
	}
	if got := seen[len(seen)-1].Node; got != "node2" {
		t.Errorf("after node1's mariadbd died the runs went to %s, want node2: %s", got, describe(seen))
	}

	// A restore test ran on some node, and its metrics say so.
	var verifier *proc
	for deadline := time.Now().Add(5 * time.Minute); verifier == nil; time.Sleep(time.Second) {
		for _, p := range procs {
			for _, l := range p.jobEnds() {
				if l["job"] == "verify" {
					verifier = p
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no successful verify run")
		}
	}
	addr := <-verifier.metrics
	fams := scrape(t, addr)
	if v, ok := gauge(fams, "gosst_verify_last_result", nil); !ok || v != 1 {
		t.Errorf("%s: gosst_verify_last_result %v (present %v), want 1", verifier.node, v, ok)
	}
	if v, _ := gauge(fams, "gosst_verify_last_timestamp_seconds", nil); v <= float64(killed.Add(-time.Minute).Unix()) {
		t.Errorf("%s: gosst_verify_last_timestamp_seconds %v", verifier.node, v)
	}
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.exited
	}
}
