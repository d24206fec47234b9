package scheduletest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/pitr"
	"github.com/gosst/gosst/test/gbtest"
	"github.com/gosst/gosst/test/s3server"
)

// TestScheduleRetentionKeepsPolicyAndWindow: `schedule` on node1 (the
// one-writer property is TestScheduleOneWriterPerRun's) takes a full backup
// every 15 s and incrementals every 5 s into a real S3 server, archives
// binlogs, and applies --keep-full 2 --pitr-window 20s after each backup
// while rows are written on node2. After every completed backup the listed
// set is exactly what an independent model of the policy keeps, no
// incremental is listed without its chain, and list --pitr has one window
// reaching back the whole PITR window. At the end every kept backup
// verifies and a PITR to a random second inside the window restores exactly
// the rows committed before it.
func TestScheduleRetentionKeepsPolicyAndWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a cluster")
	}
	srv := s3server.Require(t, s3server.Options{Buckets: []string{"galera"}})
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	q := url.Values{}
	q.Set("endpoint", srv.Endpoint)
	q.Set("path-style", "true")
	store := "s3://galera/retain?" + q.Encode()

	const window = 20 * time.Second
	w := gbtest.StartWriter(t, clu.Node(2), "retain.rows", 50*time.Millisecond)
	p := startSchedule(t, clu.Node(1), store, "--full-schedule", "@every 15s",
		"--incremental-schedule", "@every 5s", "--keep-full", "2", "--pitr-window", window.String(),
		"--lease-ttl", "9s", "--retry-backoff", "3s", "--max-lag", "2s", "--standby-after", "10s",
		"--coverage-interval", "2s")

	var seen []*backup.Manifest
	var prevKept []*backup.Manifest // listed after the previous cycle
	prevEnd := time.Time{}          // when the previous cycle's job ended
	fulls, cycles := 0, 0
	deadline := time.Now().Add(10 * time.Minute) // safety net only
	for fulls < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %d cycles (%d full backups): %s", cycles, fulls, describe(seen))
		}
		ends := p.jobEnds()
		if len(ends) <= cycles {
			p.waitLine(t, deadline)
			continue
		}
		// A stable view: the last finished job's retention has run (job end
		// is logged after it) and no later backup is published yet.
		ms := list(t, store)
		ends2 := p.jobEnds()
		if len(ends2) != len(ends) {
			continue
		}
		last := ends[len(ends)-1]
		tEnd, err := time.Parse(time.RFC3339Nano, last["time"].(string))
		if err != nil {
			t.Fatalf("job end time %v: %v", last["time"], err)
		}
		// A job still running (job start after the last job end) whose backup
		// is already listed has not run its retention yet.
		if st, ok := p.lastTime(t, "job start"); ok && st.After(tEnd) && !newestStart(ms).Before(st) {
			p.waitLine(t, deadline)
			continue
		}
		record(&seen, ms)
		single := len(ends)-cycles == 1
		for _, e := range ends[cycles:] {
			if e["job"] == "full" {
				fulls++
			}
		}
		cycles = len(ends)
		if bad := p.retentionFailures(); bad != "" {
			t.Fatalf("retention failed: %s", bad)
		}

		// Before this cycle's retention: what the last cycle left plus every
		// backup published since (seen for the first time now).
		pre := append([]*backup.Manifest(nil), prevKept...)
		for _, m := range ms {
			if !containsID(pre, m.ID) {
				pre = append(pre, m)
			}
		}
		from := prevEnd
		if newest := newestEnd(ms); newest.After(from) {
			from = newest
		}
		if !single {
			// Several jobs ended since the last look: a retention run in
			// between is not observed, so only what holds whatever it did is
			// checked: the 2 newest fulls with their incrementals are listed,
			// and the rest is one chain ending at a PITR base.
			if msg := checkKeptLoose(pre, ms, tEnd, window); msg != "" {
				t.Fatalf("cycle %d (after %d jobs): %s\nlisted %s\nbefore %s", cycles, len(ends)-cycles, msg, describe(ms), describe(pre))
			}
		} else if !checkKept(t, pre, ms, from, tEnd, window) {
			t.Fatalf("cycle %d: listed %s\nwant what --keep-full 2 --pitr-window %s keeps of %s\nfor a retention run between %s and %s",
				cycles, describe(ms), window, describe(pre), from.Format("15:04:05.000"), tEnd.Format("15:04:05.000"))
		}
		for _, m := range ms {
			if m.Type == backup.TypeIncremental && chainRoot(ms, m) == nil {
				t.Fatalf("incremental %s listed without its chain: %s", m.ID, describe(ms))
			}
		}
		// One continuous window, reaching back the whole PITR window once
		// backups that old exist.
		cov := coverageOf(t, store)
		if len(cov.Windows) > 1 || len(cov.Gaps) > 0 {
			t.Fatalf("cycle %d: want one gap-free window: %+v", cycles, cov)
		}
		oldest := oldestEnd(seen)
		if len(cov.Windows) == 1 {
			win := cov.Windows[0]
			if from.Add(-window-time.Second).After(oldest) && win.FromTime.After(tEnd.Add(-window)) {
				t.Fatalf("cycle %d: window %s … %s does not reach back %s from the retention run (%s)",
					cycles, win.FromTime.Format("15:04:05.000"), win.ToTime.Format("15:04:05.000"), window, tEnd.Format("15:04:05.000"))
			}
		} else if fulls >= 2 {
			t.Fatalf("cycle %d: no restorable window after %d full backups", cycles, fulls)
		}
		t.Logf("cycle %d (%s %v): kept %s", cycles, last["job"], last["slot"], describe(ms))
		prevKept, prevEnd = ms, tEnd
	}

	// Let the archive pass the last rows, then stop everything.
	w.Finish(t)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	kept := list(t, store)
	for _, m := range kept {
		gbtest.MustGB(t, "verify", m.ID, "--storage", store, "--log-level", "error")
	}
	cov := coverageOf(t, store)
	if len(cov.Windows) != 1 {
		t.Fatalf("after stopping: want one window: %+v", cov)
	}
	win := cov.Windows[0]

	// A random whole second inside the window (after its first second, at
	// least a second before its end, as in test/pitrtest): what committed
	// before it, by the documented rule, is exactly what is restored.
	first := win.FromTime.Truncate(time.Second).Add(time.Second)
	span := int64(win.ToTime.Add(-time.Second).Sub(first) / time.Second)
	if span < 1 {
		t.Fatalf("window %s … %s too short", win.FromTime, win.ToTime)
	}
	seed := time.Now().UnixNano()
	target := first.Add(time.Duration(rand.New(rand.NewSource(seed)).Int63n(span+1)) * time.Second)
	t.Logf("random seed %d: target %s in the window %s … %s", seed, target.Format(time.RFC3339),
		win.FromTime.Format(time.RFC3339Nano), win.ToTime.Format(time.RFC3339Nano))
	type row struct {
		id int
		at time.Time
	}
	var want []int
	var all int
	rs, err := clu.Node(2).DB().QueryContext(context.Background(), "SELECT id, at FROM retain.rows ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.id, &r.at); err != nil {
			t.Fatal(err)
		}
		all++
		if r.at.Before(target) {
			want = append(want, r.id)
		}
	}
	rs.Close()
	if all != len(w.Seqs()) {
		t.Fatalf("%d rows in the cluster, the writer committed %d", all, len(w.Seqs()))
	}
	// A target deep enough that a socket next to its staging directory
	// would exceed 107 bytes (mariadbd refused to start the replay before
	// the scratch server got a short private socket directory).
	dir := filepath.Join(t.TempDir(), "data")
	if len(filepath.Join(filepath.Dir(dir), ".data.gosst-restore-0000000000", "scratch-new.sock")) <= 107 {
		t.Logf("note: target %s is short; the long-path case is not exercised", dir)
	}
	gbtest.MustGB(t, "restore", "--pitr", target.Format(time.RFC3339), "--target-dir", dir, "--storage", store, "--log-level", "warn")
	db, stop := gbtest.Standalone(t, dir)
	defer stop()
	rs, err = db.Query("SELECT id FROM retain.rows ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for rs.Next() {
		var id int
		if err := rs.Scan(&id); err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	rs.Close()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("PITR to %s restored %d rows (%s), want exactly the %d committed before it (%s)",
			target.Format(time.RFC3339), len(got), idRange(got), len(want), idRange(want))
	}
	t.Logf("PITR to %s: exactly rows 1…%d of %d; %d backups kept: %s", target.Format(time.RFC3339), len(got), all, len(kept), describe(kept))
}

// waitLine waits for the service to log its next line (or exit).
func (p *proc) waitLine(t *testing.T, deadline time.Time) {
	t.Helper()
	p.mu.Lock()
	n := len(p.lines)
	p.mu.Unlock()
	for {
		p.mu.Lock()
		have := len(p.lines)
		p.mu.Unlock()
		if have > n {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("%s: schedule exited: %v", p.node, p.cmd.ProcessState)
		case <-time.After(200 * time.Millisecond): // polling the log; not a timing assumption
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no log line before the deadline", p.node)
		}
	}
}

// lastTime returns the time of the last log line with this message.
func (p *proc) lastTime(t *testing.T, msg string) (time.Time, bool) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.lines) - 1; i >= 0; i-- {
		if p.lines[i]["msg"] == msg {
			at, err := time.Parse(time.RFC3339Nano, p.lines[i]["time"].(string))
			if err != nil {
				t.Fatalf("log time %v: %v", p.lines[i]["time"], err)
			}
			return at, true
		}
	}
	return time.Time{}, false
}

func coverageOf(t *testing.T, store string) *pitr.Coverage {
	t.Helper()
	out := gbtest.MustGB(t, "list", "--pitr", "--json", "--storage", store, "--log-level", "error")
	var cov pitr.Coverage
	if err := json.Unmarshal([]byte(out), &cov); err != nil {
		t.Fatalf("list --pitr --json: %v\n%s", err, out)
	}
	return &cov
}

func (p *proc) retentionFailures() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if s, _ := l["msg"].(string); strings.HasPrefix(s, "retention") && l["level"] != "INFO" {
			return fmt.Sprint(l)
		}
	}
	return ""
}

func containsID(ms []*backup.Manifest, id string) bool {
	for _, m := range ms {
		if m.ID == id {
			return true
		}
	}
	return false
}

func byID(ms []*backup.Manifest, id string) *backup.Manifest {
	for _, m := range ms {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// chainRoot follows m's parents within ms to its full backup (nil: the
// chain is broken).
func chainRoot(ms []*backup.Manifest, m *backup.Manifest) *backup.Manifest {
	for m != nil && m.Type == backup.TypeIncremental {
		m = byID(ms, m.Parent)
	}
	return m
}

func newestStart(ms []*backup.Manifest) time.Time {
	var t time.Time
	for _, m := range ms {
		if m.StartTime.After(t) {
			t = m.StartTime
		}
	}
	return t
}

func newestEnd(ms []*backup.Manifest) time.Time {
	var t time.Time
	for _, m := range ms {
		if m.EndTime.After(t) {
			t = m.EndTime
		}
	}
	return t
}

func oldestEnd(ms []*backup.Manifest) time.Time {
	t := ms[0].EndTime
	for _, m := range ms {
		if m.EndTime.Before(t) {
			t = m.EndTime
		}
	}
	return t
}

// expectedKept is the policy, modelled here independently of pitr.Expire:
// the 2 newest full backups (by id) with every incremental whose chain
// starts at one of them; the PITR base, the newest backup with a complete
// chain that ended at or before (now - window) truncated to the second, or
// the earliest such backup when none ended that early; and the chain of
// every kept backup.
func expectedKept(pre []*backup.Manifest, now time.Time, window time.Duration) []string {
	keep := map[string]bool{}
	var fullIDs []string
	for _, m := range pre {
		if m.Type == backup.TypeFull {
			fullIDs = append(fullIDs, m.ID)
		}
	}
	sort.Strings(fullIDs)
	newest := map[string]bool{}
	for _, id := range fullIDs[max(0, len(fullIDs)-2):] {
		newest[id] = true
	}
	var restorable []*backup.Manifest
	for _, m := range pre {
		if r := chainRoot(pre, m); r != nil {
			restorable = append(restorable, m)
			if newest[r.ID] {
				keep[m.ID] = true
			}
		}
	}
	sort.Slice(restorable, func(i, j int) bool { return restorable[i].EndTime.Before(restorable[j].EndTime) })
	s := now.Add(-window).Truncate(time.Second)
	var base *backup.Manifest
	for _, m := range restorable {
		if !m.EndTime.After(s) {
			base = m
		}
	}
	if base == nil && len(restorable) > 0 {
		base = restorable[0]
	}
	for m := base; m != nil; m = byID(pre, m.Parent) {
		keep[m.ID] = true
		if m.Type != backup.TypeIncremental {
			break
		}
	}
	var ids []string
	for id := range keep {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// checkKept reports whether the listed set is what the policy keeps of pre
// for a retention run at some time between from and to (the run's clock is
// not observable; every 50 ms of the interval is tried, both ends included).
func checkKept(t *testing.T, pre, listed []*backup.Manifest, from, to time.Time, window time.Duration) bool {
	t.Helper()
	var got []string
	for _, m := range listed {
		got = append(got, m.ID)
	}
	sort.Strings(got)
	for now := from; ; now = now.Add(50 * time.Millisecond) {
		if now.After(to) {
			now = to
		}
		if fmt.Sprint(expectedKept(pre, now, window)) == fmt.Sprint(got) {
			return true
		}
		if !now.Before(to) {
			return false
		}
	}
}

// checkKeptLoose checks what every sequence of retention runs up to to
// leaves of pre: the 2 newest full backups and every incremental whose chain
// starts at one of them are listed, and every other listed backup is in the
// chain of one backup that ended at or before to - window (the PITR base).
func checkKeptLoose(pre, listed []*backup.Manifest, to time.Time, window time.Duration) string {
	var fullIDs []string
	for _, m := range pre {
		if m.Type == backup.TypeFull {
			fullIDs = append(fullIDs, m.ID)
		}
	}
	sort.Strings(fullIDs)
	newest := map[string]bool{}
	for _, id := range fullIDs[max(0, len(fullIDs)-2):] {
		newest[id] = true
	}
	var rest []*backup.Manifest
	for _, m := range pre {
		if r := chainRoot(pre, m); r != nil && newest[r.ID] && !containsID(listed, m.ID) {
			return fmt.Sprintf("%s (kept by --keep-full 2) is not listed", m.ID)
		}
	}
	for _, m := range listed {
		if r := chainRoot(listed, m); r == nil || !newest[r.ID] {
			rest = append(rest, m)
		}
	}
	if len(rest) == 0 {
		return ""
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].ID < rest[j].ID })
	base := rest[len(rest)-1]
	if base.EndTime.After(to.Add(-window)) {
		return fmt.Sprintf("%s is kept by no rule (not one of the 2 newest fulls' chains, ended after the window start)", base.ID)
	}
	for _, m := range rest {
		in := false
		for c := base; c != nil; c = byID(listed, c.Parent) {
			in = in || c.ID == m.ID
			if c.Type != backup.TypeIncremental {
				break
			}
		}
		if !in {
			return fmt.Sprintf("%s is kept by no rule (not in the chain of the PITR base %s)", m.ID, base.ID)
		}
	}
	return ""
}

func idRange(ids []int) string {
	if len(ids) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d…%d", ids[0], ids[len(ids)-1])
}
