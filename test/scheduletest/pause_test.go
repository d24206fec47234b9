package scheduletest

import (
	"syscall"
	"testing"
	"time"

	"github.com/gosst/gosst/backup"
)

// The holder's schedule is paused (SIGSTOP) in the middle of a backup for
// longer than its lease: node2 takes the run over; when node1 resumes it
// must not publish its backup, and no two published backups overlap.
func TestSchedulePausedHolderDoesNotPublish(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a cluster")
	}
	store := t.TempDir()
	common := []string{"--full-schedule", "@every 30s", "--lease-ttl", "3s", "--rank-delay", "1s",
		"--archive-binlogs=false", "--retry-backoff", "1s",
		// a slow backup, so that the pause lands inside it
		"--rate-limit", "2M"}
	p1 := startSchedule(t, clu.Node(1), store, common...)
	p2 := startSchedule(t, clu.Node(2), store, common...)
	p1.waitLog(t, "job start", 0)
	if err := p1.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	at := p2.waitLog(t, "job start", 0) // node2 takes over once node1's lease expired
	tookOver := time.Now()
	if err := p1.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	p2.waitLog(t, "job end", at-1)
	end := p1.waitLog(t, "job end", 0)
	p1.mu.Lock()
	l := p1.lines[end-1]
	p1.mu.Unlock()
	if l["ok"] == true {
		t.Fatalf("node1 published a backup after being paused from %s past its lease (node2 took over at %s)",
			paused.Format("15:04:05.000"), tookOver.Format("15:04:05.000"))
	}
	t.Logf("node1 after the pause: %v", l["err"])
	var seen []*backup.Manifest
	ms := waitFor(t, "node2's backup", store, &seen, func(ms []*backup.Manifest) bool { return len(ms) >= 1 })
	for _, m := range ms {
		if m.Node != "node2" {
			t.Errorf("backup %s by %s listed: %s", m.ID, m.Node, describe(ms))
		}
	}
	for _, p := range []*proc{p1, p2} {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.exited
	}
}
