package backup

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/storage/local"
	"github.com/gosst/gosst/storage/mem"
)

// TestLeftoverPolicy: objects without a manifest are removed only when
// their run is provably abandoned. The clock and the process check are
// injected; object times are the backend's (now).
func TestLeftoverPolicy(t *testing.T) {
	ctx := context.Background()
	me := self{host: "db1", bootID: "boot-1", pid: 100, start: 5}
	// Ids: one from long ago, one from "now" (the injected clock's view).
	const oldID = "20261101T000000Z-00000a"
	for _, tc := range []struct {
		name      string
		id        string
		lease     *RunLease // nil: none
		badLease  bool
		later     time.Duration // clock offset from the objects' write time
		gone      bool          // the lease's process no longer exists
		keep      string
		abandoned bool
		reason    string
	}{
		{name: "killed on this host", id: oldID, lease: &RunLease{Host: "db1", BootID: "boot-1", PID: 42, PIDStart: 7}, gone: true, abandoned: true, reason: "is gone"},
		{name: "running on this host, silent past the grace", id: oldID, lease: &RunLease{Host: "db1", BootID: "boot-1", PID: 42, PIDStart: 7}, later: 2 * time.Hour, reason: "still running"},
		{name: "this host before a reboot", id: oldID, lease: &RunLease{Host: "db1", BootID: "boot-0", PID: 42, PIDStart: 7}, gone: true, reason: "within the grace period"},
		{name: "another node, heartbeating", id: oldID, lease: &RunLease{Host: "db2", BootID: "boot-9", PID: 42, PIDStart: 7}, gone: true, reason: "within the grace period"},
		{name: "another node, silent past the grace", id: oldID, lease: &RunLease{Host: "db2", BootID: "boot-9", PID: 42, PIDStart: 7}, later: 2 * time.Hour, abandoned: true, reason: "no heartbeat"},
		{name: "no lease, fresh", id: oldID, reason: "within the grace period"},
		{name: "no lease, silent past the grace", id: oldID, later: 2 * time.Hour, abandoned: true, reason: "no heartbeat"},
		{name: "unreadable lease, silent past the grace", id: oldID, badLease: true, later: 2 * time.Hour, abandoned: true, reason: "no heartbeat"},
		{name: "id newer than the grace", id: NewID(time.Now().Add(90*time.Minute), 1), later: 2 * time.Hour, reason: "started"},
		{name: "own id", id: oldID, later: 2 * time.Hour, keep: oldID, reason: "this run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := mem.New()
			cat := &Catalog{Store: be}
			put := func(k string, b []byte) {
				if err := be.Put(ctx, k, bytes.NewReader(b), int64(len(b))); err != nil {
					t.Fatal(err)
				}
			}
			put(dataKey(tc.id, ".zstd"), []byte("part"))
			switch {
			case tc.lease != nil:
				l := *tc.lease
				l.ID = tc.id
				if err := cat.writeLease(ctx, l); err != nil {
					t.Fatal(err)
				}
			case tc.badLease:
				put(leaseObjectKey(tc.id), []byte("{"))
			}
			// A complete backup is never a leftover.
			done := sampleManifest("20261001T000000Z-00000b", TypeFull, "", 0, 1)
			data, _ := done.Marshal()
			put(manifestKey(done.ID), data)
			put(dataKey(done.ID, ".zstd"), []byte("xyz"))

			var asked []int
			p := LeftoverPolicy{Keep: tc.keep, me: me,
				Now: func() time.Time { return time.Now().Add(tc.later) },
				gone: func(pid int, start uint64) bool {
					asked = append(asked, pid)
					return tc.gone
				}}
			left, err := cat.Abandoned(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 1 || left[0].ID != tc.id {
				t.Fatalf("leftovers: %+v", left)
			}
			if left[0].Abandoned != tc.abandoned || !strings.Contains(left[0].Reason, tc.reason) {
				t.Fatalf("abandoned %v (%s), want %v (%q)", left[0].Abandoned, left[0].Reason, tc.abandoned, tc.reason)
			}
			n, err := cat.DeleteLeftovers(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if tc.abandoned {
				want = len(left[0].Keys)
			}
			if n != want {
				t.Fatalf("deleted %d objects, want %d", n, want)
			}
			if _, err := be.Stat(ctx, dataKey(done.ID, ".zstd")); err != nil {
				t.Fatalf("a complete backup's object was removed: %v", err)
			}
		})
	}
}

// TestDeleteLeftoversRemovesLocalStaging: on local storage, an abandoned
// backup's half-written staging file (a kill during Put) goes with it.
func TestDeleteLeftoversRemovesLocalStaging(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	be, err := local.New(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	cat := &Catalog{Store: be}
	const id = "20261101T000000Z-00000a"
	if err := cat.writeLease(ctx, RunLease{ID: id, Host: "db1", BootID: "boot-1", PID: 42, PIDStart: 7}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "backups", id)
	staging := filepath.Join(dir, backend.TempPrefix+"123")
	if err := os.WriteFile(staging, []byte("half an upload"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := LeftoverPolicy{me: self{host: "db1", bootID: "boot-1", pid: 1, start: 1}, gone: func(int, uint64) bool { return true }}
	if n, err := cat.DeleteLeftovers(ctx, p); err != nil || n != 1 {
		t.Fatalf("DeleteLeftovers: %d %v", n, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(dir)
		t.Fatalf("the abandoned backup's directory stays: %v %v", err, entries)
	}
}

// TestRemoveDeadScratch: a killed run's mariabackup scratch directory is
// removed by the next run; a live run's, another boot's and foreign
// directories are not.
func TestRemoveDeadScratch(t *testing.T) {
	dir := t.TempDir()
	me := thisProcess()
	if me.start == 0 || len(me.bootID) < 8 {
		t.Skip("no /proc")
	}
	// A real process that has exited: its pid and start time.
	cmd := exec.Command("sh", "-c", "cat /proc/self/stat >/dev/null; exit 0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadPID := cmd.Process.Pid
	deadStart, err := processStart(deadPID)
	if err != nil {
		t.Fatal(err) // not reaped yet: it exists
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if !processGone(deadPID, deadStart) {
		t.Fatal("an exited process is not gone")
	}
	if processGone(me.pid, me.start) {
		t.Fatal("this process is gone")
	}
	mk := func(pattern string) string {
		d, err := os.MkdirTemp(dir, pattern)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "xtrabackup_checkpoints"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return d
	}
	dead := mk(scratchPattern(self{bootID: me.bootID, pid: deadPID, start: deadStart}))
	live := mk(scratchPattern(me))
	otherBoot := mk(scratchPattern(self{bootID: "ffffffff-0000", pid: deadPID, start: deadStart}))
	old := mk("gosst-mariabackup-") // an older gosst's name: owner unknown
	removeDeadScratch(dir, me, processGone, slog.New(slog.DiscardHandler))
	for d, want := range map[string]bool{dead: false, live: true, otherBoot: true, old: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(d), err == nil, want)
		}
	}
}
