package scheduletest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gosst/gosst/backup"
)

// waitLog waits until p has logged a line with msg (the timeout is a
// safety net only).
func (p *proc) waitLog(t *testing.T, msg string, after int) int {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		p.mu.Lock()
		for i := after; i < len(p.lines); i++ {
			if p.lines[i]["msg"] == msg {
				p.mu.Unlock()
				return i + 1
			}
		}
		p.mu.Unlock()
		select {
		case <-p.exited:
			t.Fatalf("%s: schedule exited (%v) before logging %q", p.node, p.cmd.ProcessState, msg)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q log line", p.node, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// SIGHUP re-reads the option files: a bad one is refused and the service
// keeps running; a good one takes effect.
func TestScheduleReload(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a cluster")
	}
	store := t.TempDir()
	cnf := filepath.Join(t.TempDir(), "gosst.cnf")
	write := func(s string) {
		if err := os.WriteFile(cnf, []byte("[galera-backup]\n"+s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("full-schedule = 0 0 1 1 *") // once a year: nothing in this test
	p := startSchedule(t, clu.Node(1), store, "--defaults-extra-file", cnf, "--archive-binlogs=false", "--lease-ttl", "9s")
	at := p.waitLog(t, "schedule started", 0)

	write("full-schedule = every ten seconds")
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	at = p.waitLog(t, "configuration reload refused; the running configuration stays", at)

	write("full-schedule = @every 10s")
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	at = p.waitLog(t, "configuration reloaded; switching once the running jobs have finished", at)
	p.waitLog(t, "schedule started", at)
	var seen []*backup.Manifest
	waitFor(t, "a backup after the reload", store, &seen, func(ms []*backup.Manifest) bool { return len(ms) >= 1 })

	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// A node cut off from the Primary component never takes a run; the next
// listed node does. node1 rejoins before the test ends.
func TestScheduleZPartitionedNodeTakesNone(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	store := t.TempDir()
	n1 := clu.Node(1)
	common := []string{"--full-schedule", "@every 15s", "--lease-ttl", "9s", "--rank-delay", "2s", "--archive-binlogs=false"}
	procs := []*proc{startSchedule(t, n1, store, common...), startSchedule(t, clu.Node(2), store, common...)}
	var seen []*backup.Manifest
	waitFor(t, "a first backup by node1", store, &seen, func([]*backup.Manifest) bool { return len(seen) >= 1 })

	if err := n1.Exec(ctx, "SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'"); err != nil {
		t.Fatal(err)
	}
	isolated := time.Now()
	defer func() {
		if err := n1.Exec(context.Background(), "SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'"); err != nil {
			t.Errorf("rejoin node1: %v", err)
		}
		if err := n1.WaitSynced(context.Background(), 5*time.Minute); err != nil {
			t.Errorf("node1 did not rejoin: %v", err)
		}
	}()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		st, err := n1.Status(ctx, "wsrep_cluster_status")
		if err == nil && st != "Primary" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node1 still %q after gmcast.isolate=1 (%v)", st, err)
		}
	}
	n := len(seen)
	waitFor(t, "two backups while node1 is cut off", store, &seen, func([]*backup.Manifest) bool { return len(seen) >= n+2 })
	for _, m := range seen[n:] {
		if m.Node != "node2" {
			t.Errorf("backup %s by %s while node1 was outside the Primary component (since %s): %s", m.ID, m.Node, isolated.Format("15:04:05"), describe(seen))
		}
	}
	procs[0].mu.Lock()
	refused := false
	for _, l := range procs[0].lines {
		if l["msg"] == "cannot claim the writer role; retrying" && strings.Contains(l["err"].(string), "not eligible") {
			refused = true
		}
	}
	procs[0].mu.Unlock()
	if !refused {
		t.Errorf("node1 never logged that it may not claim while cut off")
	}
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.exited
	}
}

// --desync makes the holder's own node Donor/Desynced during its backup:
// the holder must still be able to renew its lease and publish.
func TestScheduleDesyncedHolderPublishes(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a cluster")
	}
	store := t.TempDir()
	p := startSchedule(t, clu.Node(1), store, "--full-schedule", "@every 10s", "--desync", "--archive-binlogs=false", "--lease-ttl", "3s")
	var end map[string]any
	for deadline := time.Now().Add(3 * time.Minute); end == nil; time.Sleep(200 * time.Millisecond) {
		p.mu.Lock()
		for _, l := range p.lines {
			if l["msg"] == "job end" {
				end = l
				break
			}
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("no job end")
		}
	}
	if end["ok"] != true {
		t.Fatalf("backup with --desync failed: %v", end["err"])
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
}
