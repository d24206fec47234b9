package pitrtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/pitr"
	"github.com/gosst/gosst/test/gbtest"
)

// TestExpireKeepsPITRWindow: three backups of node 3 (full, full,
// incremental) while rows are written on node 2, binlogs archived; expire
// with a PITR window starting between the second and the third backup keeps
// exactly the second (the window's base) and the segments from its
// position, the kept backup verifies, and a PITR to a random time inside the
// window restores exactly the rows committed before it.
func TestExpireKeepsPITRWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	store := t.TempDir()
	n2, n3 := clu.Node(2), clu.Node(3)
	w := gbtest.StartWriter(t, n2, "expire.rows", 20*time.Millisecond)
	// waitRows waits until n more rows are committed.
	waitRows := func(n int) {
		t.Helper()
		w.WaitRows(t, n)
	}
	take := func(extra ...string) *backup.Manifest {
		t.Helper()
		out := mustGB(t, append([]string{"backup", "--json", "--storage", store, "--socket", n3.Socket, "--user", "root", "--log-level", "error"}, extra...)...)
		var m backup.Manifest
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("backup --json: %v\n%s", err, out)
		}
		return &m
	}
	waitRows(20)
	b1 := take()
	waitRows(20)
	flush(t, n3)
	b2 := take()
	waitRows(20)
	flush(t, n3)
	b3 := take("--incremental")
	waitRows(80)
	w.Finish(t)
	flush(t, n3)
	mustGB(t, "binlog", "archive", "--storage", store, "--socket", n3.Socket, "--user", "root", "--log-level", "warn")
	if b3.Parent != b2.ID {
		t.Fatalf("incremental %s builds on %s, want %s", b3.ID, b3.Parent, b2.ID)
	}
	segsBefore := segments(t, store)

	// The window starts between the second and the third backup, on the
	// first whole second after the second one ended.
	start := b2.EndTime.Truncate(time.Second).Add(time.Second)
	if !start.Before(b3.EndTime) {
		t.Fatalf("backups %s and %s ended within a second (%s, %s)", b2.ID, b3.ID, b2.EndTime, b3.EndTime)
	}
	now := time.Now().UTC()
	args := []string{"expire", "--storage", store, "--pitr-window", now.Sub(start).String(), "--now", now.Format(time.RFC3339Nano), "--json", "--log-level", "error"}
	before := storeFiles(t, store)
	var dry, done pitr.RetentionPlan
	if err := json.Unmarshal([]byte(mustGB(t, append(args, "--dry-run")...)), &dry); err != nil {
		t.Fatal(err)
	}
	if after := storeFiles(t, store); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("--dry-run changed the storage")
	}
	out := mustGB(t, args...)
	if err := json.Unmarshal([]byte(out), &done); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	decisions := func(p *pitr.RetentionPlan) string {
		var s []string
		for _, v := range p.Backups {
			s = append(s, fmt.Sprintf("%s keep=%v", v.ID, v.Keep))
		}
		for _, v := range p.Segments {
			s = append(s, fmt.Sprintf("%s keep=%v", v.Key, v.Keep))
		}
		return strings.Join(s, "\n")
	}
	if decisions(&dry) != decisions(&done) {
		t.Fatalf("the dry run planned\n%s\nthe run did\n%s", decisions(&dry), decisions(&done))
	}
	t.Logf("expire:\n%s", decisions(&done))
	for _, v := range done.Backups {
		if want := v.ID == b2.ID; v.Keep != want || v.Deleted == want {
			t.Fatalf("backup %s: keep %v deleted %v (%v), want keep %v", v.ID, v.Keep, v.Deleted, v.Reasons, want)
		}
	}
	if len(done.Backups) != 3 {
		t.Fatalf("%d backups in the plan, want 3 (%s %s %s)", len(done.Backups), b1.ID, b2.ID, b3.ID)
	}
	seq2 := gtidSeq(t, b2.Binlog.GTID)
	deleted := 0
	for _, v := range done.Segments {
		if want := v.To >= seq2 || !v.End.Before(start); v.Keep != want {
			t.Fatalf("segment %s (%d,%d]: keep %v, want %v (base at %d)", v.Key, v.From, v.To, v.Keep, want, seq2)
		}
		if !v.Keep {
			deleted++
		}
	}
	if deleted == 0 {
		t.Fatalf("no segment ended before the base backup: %d segments", len(segsBefore))
	}

	// What is left: the one backup, verified; the archive from its position,
	// without a gap.
	var list []backup.Manifest
	if err := json.Unmarshal([]byte(mustGB(t, "list", "--json", "--storage", store, "--log-level", "error")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != b2.ID {
		t.Fatalf("after expire: %+v", list)
	}
	mustGB(t, "verify", "--all", "--storage", store)
	cov := coverage(t, store)
	if len(cov.Windows) != 1 || len(cov.Gaps) != 0 || cov.Windows[0].FromSeq != seq2 {
		t.Fatalf("after expire, want one window from %d: %+v", seq2, cov)
	}
	win := cov.Windows[0]

	// PITRs to the window start itself and to a random whole second inside
	// the kept window, at least a second before its end (a row committed on
	// node 2 just before node 3 closed its last file can be in the next
	// file).
	span := int64(win.ToTime.Add(-time.Second).Sub(start) / time.Second)
	if span < 1 {
		t.Fatalf("window %s … %s too short", start, win.ToTime)
	}
	seed := time.Now().UnixNano()
	random := start.Add(time.Duration(1+rand.New(rand.NewSource(seed)).Int63n(span)) * time.Second)
	t.Logf("random seed %d: targets %s and %s in the kept window %s … %s", seed, start.Format(time.RFC3339), random.Format(time.RFC3339),
		start.Format(time.RFC3339), win.ToTime.Format(time.RFC3339))
	var rows []row
	rs, err := n2.DB().QueryContext(context.Background(), "SELECT id, at FROM expire.rows ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.id, &r.at); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	rs.Close()
	for _, target := range []time.Time{start, random} {
		want := 0
		for _, r := range rows {
			if r.at.Before(target) {
				want++
			}
		}
		dir := filepath.Join(t.TempDir(), "data")
		mustGB(t, "restore", "--pitr", target.Format(time.RFC3339), "--target-dir", dir, "--storage", store, "--log-level", "warn")
		db, stop := gbtest.Standalone(t, dir)
		rs, err := db.Query("SELECT id, at FROM expire.rows ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rs.Next() {
			var r row
			if err := rs.Scan(&r.id, &r.at); err != nil {
				t.Fatal(err)
			}
			if n >= len(rows) || r.id != rows[n].id || !r.at.Equal(rows[n].at) {
				t.Fatalf("target %s: restored row %d is (%d, %s), want %v", target, n, r.id, r.at, rows[min(n, len(rows)-1)])
			}
			n++
		}
		rs.Close()
		stop()
		if n != want {
			t.Fatalf("target %s: restored %d rows, want exactly %d", target, n, want)
		}
		t.Logf("PITR to %s: exactly %d rows of %d", target.Format(time.RFC3339), n, len(rows))
	}

	// A policy that would delete the last backup is refused.
	later := now.Add(400 * 24 * time.Hour).Format(time.RFC3339)
	out, code := gb(t, "expire", "--storage", store, "--keep-days", "7", "--now", later)
	if code != 2 || !strings.Contains(out, "would delete all 1 backups") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if len(storeFiles(t, store)) == 0 {
		t.Fatal("a refused expire deleted files")
	}
}

func gtidSeq(t *testing.T, list string) uint64 {
	t.Helper()
	for _, g := range strings.Split(list, ",") {
		var d, s, n uint64
		if _, err := fmt.Sscanf(g, "%d-%d-%d", &d, &s, &n); err == nil && d == 7 {
			return n
		}
	}
	t.Fatalf("no domain 7 in %q", list)
	return 0
}

func storeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var fs []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			fs = append(fs, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(fs)
	return fs
}
