package pitr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/binlog"
	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/storage/mem"
)

const retLineage = "7e7e0000-0000-0000-0000-000000000001"

var retT0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func day(d float64) time.Time { return retT0.Add(time.Duration(d * float64(24*time.Hour))) }

// retBackup is a synthetic backup: a manifest, its data object and a
// second object under its prefix (something expire must also remove).
type retBackup struct {
	id, typ, parent string
	end             time.Time
	seq             uint64 // GTID 7-11-seq; 0: no binlog position
}

func retID(n int) string { return fmt.Sprintf("20261101T%06dZ-%06x", n, n) }

func putRetBackup(t *testing.T, be backend.Backend, b retBackup) {
	t.Helper()
	ctx := context.Background()
	m := &backup.Manifest{Format: backup.ManifestFormat, ID: b.id, Type: b.typ, Parent: b.parent, StartTime: b.end.Add(-time.Minute), EndTime: b.end,
		Galera: backup.GaleraPosition{UUID: retLineage, Seqno: int64(b.seq), DomainID: 7}, ToolVersion: "test", Codecs: []string{"xbstream", "zstd"},
		Objects: []backup.Object{{Key: dataKey(b.id, ".zstd"), Size: 3, SHA256: strings.Repeat("a", 64), PlainSize: 5, PlainSHA256: strings.Repeat("b", 64)}}}
	if b.seq > 0 {
		m.Binlog.GTID = fmt.Sprintf("0-11-3,7-11-%d", b.seq)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string][]byte{m.Objects[0].Key: []byte("abc"), backupsPrefix + b.id + "/extra.log": []byte("x")} {
		if err := be.Put(ctx, k, bytes.NewReader(v), int64(len(v))); err != nil {
			t.Fatal(err)
		}
	}
	if err := be.Put(ctx, manifestKey(b.id), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// putRetSegment archives transactions from+1 … to, closed at closed.
func putRetSegment(t *testing.T, be backend.Backend, from, to uint64, closed time.Time) *Segment {
	t.Helper()
	s := &Segment{Format: SegmentFormat, Lineage: retLineage, Domain: 7, Server: 11, From: from, To: to, Node: "node1",
		File: fmt.Sprintf("mysql-bin.%06d", to), ReplayFrom: 4, FirstCommit: closed.Add(-time.Hour), LastCommit: closed, Closed: closed,
		Binlog: &binlog.FileIndex{Size: 1000}, Codecs: []string{"binlog", "zstd"}}
	s.Object = backup.Object{Key: s.Key() + "/data.binlog.zstd", Size: 3, SHA256: strings.Repeat("a", 64), PlainSize: 1000, PlainSHA256: strings.Repeat("b", 64)}
	ctx := context.Background()
	if err := be.Put(ctx, s.Object.Key, strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(s)
	if err := be.Put(ctx, s.Key()+"/index.json", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	return s
}

func keys(t *testing.T, be backend.Backend) []string {
	t.Helper()
	var ks []string
	if err := be.List(context.Background(), "", func(oi backend.ObjectInfo) error {
		ks = append(ks, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(ks)
	return ks
}

func verdicts(p *RetentionPlan) (kept, deleted []string) {
	for _, v := range p.Backups {
		if v.Keep {
			kept = append(kept, v.ID)
		} else {
			deleted = append(deleted, v.ID)
		}
	}
	return
}

func segVerdicts(p *RetentionPlan) (kept, deleted []string) {
	for _, v := range p.Segments {
		s := fmt.Sprintf("%d-%d", v.From, v.To)
		if v.Keep {
			kept = append(kept, s)
		} else {
			deleted = append(deleted, s)
		}
	}
	return
}

func ids(ns ...int) []string {
	var s []string
	for _, n := range ns {
		s = append(s, retID(n))
	}
	return s
}

func TestPlanRetention(t *testing.T) {
	F, I := backup.TypeFull, backup.TypeIncremental
	type seg struct {
		from, to uint64
		closed   float64 // day
	}
	for _, c := range []struct {
		name    string
		backups []retBackup
		corrupt []int // ids whose manifest is garbage
		segs    []seg
		policy  RetentionPolicy
		now     float64
		kept    []string
		segKept []string // "from-to"; nil: segments not checked
		segDel  []string
		reason  map[string]string // id → substring of a reason
		note    string            // substring of a note
	}{
		{
			name: "keep-full keeps whole chains",
			backups: []retBackup{{retID(1), F, "", day(1), 0}, {retID(2), I, retID(1), day(2), 0},
				{retID(3), F, "", day(3), 0}, {retID(4), I, retID(3), day(4), 0}, {retID(5), I, retID(4), day(5), 0},
				{retID(6), F, "", day(6), 0}},
			policy: RetentionPolicy{KeepFull: 2}, now: 30,
			kept:   ids(3, 4, 5, 6),
			reason: map[string]string{retID(5): "in the chain of full backup " + retID(3), retID(1): "not in the chain of one of the 2 newest"},
		},
		{
			name:    "keep-full larger than the catalog",
			backups: []retBackup{{retID(1), F, "", day(1), 0}, {retID(2), I, retID(1), day(2), 0}},
			policy:  RetentionPolicy{KeepFull: 5}, now: 30,
			kept: ids(1, 2),
		},
		{
			name: "keep-days keeps what a recent incremental builds on",
			backups: []retBackup{{retID(1), F, "", day(1), 0}, {retID(2), I, retID(1), day(2), 0}, {retID(3), I, retID(2), day(9), 0},
				{retID(4), F, "", day(3), 0}},
			policy: RetentionPolicy{KeepWithin: 2 * 24 * time.Hour}, now: 10,
			kept:   ids(1, 2, 3),
			reason: map[string]string{retID(1): "needed by kept incremental " + retID(3), retID(3): "keep-days"},
		},
		{
			name:    "keep-days boundary is inclusive",
			backups: []retBackup{{retID(1), F, "", day(1), 0}, {retID(2), F, "", day(3), 0}, {retID(3), F, "", day(3.5), 0}},
			policy:  RetentionPolicy{KeepWithin: 7 * 24 * time.Hour}, now: 10,
			kept: ids(2, 3),
		},
		{
			name:    "keep-full and keep-days: a backup is deleted only if no rule keeps it",
			backups: []retBackup{{retID(1), F, "", day(1), 0}, {retID(2), F, "", day(2), 0}, {retID(3), F, "", day(9), 0}, {retID(4), I, retID(3), day(9.5), 0}},
			policy:  RetentionPolicy{KeepFull: 1, KeepWithin: 8 * 24 * time.Hour}, now: 10,
			kept: ids(2, 3, 4),
		},
		{
			name:    "incremental whose parent is gone is deleted when old, kept when recent",
			backups: []retBackup{{retID(2), I, retID(1), day(2), 0}, {retID(4), I, retID(3), day(9), 0}, {retID(5), F, "", day(9), 0}},
			policy:  RetentionPolicy{KeepFull: 1, KeepWithin: 24 * time.Hour}, now: 10,
			kept:   ids(4, 5),
			reason: map[string]string{retID(2): "not in any full backup's chain"},
			note:   "cannot be restored",
		},
		{
			name:    "a corrupt manifest and what builds on it are kept",
			backups: []retBackup{{retID(2), I, retID(1), day(2), 0}, {retID(3), F, "", day(3), 0}, {retID(5), F, "", day(9), 0}},
			corrupt: []int{1},
			policy:  RetentionPolicy{KeepFull: 1}, now: 10,
			kept:   ids(1, 2, 5),
			reason: map[string]string{retID(1): "manifest unreadable", retID(2): "whose manifest is unreadable"},
		},
		{
			name: "pitr-window keeps the newest backup at or before the window start and the segments from it",
			backups: []retBackup{{retID(1), F, "", day(1), 10}, {retID(2), F, "", day(3), 30}, {retID(3), F, "", day(5), 50},
				{retID(4), F, "", day(7), 70}},
			segs:   []seg{{0, 20, 2}, {20, 29, 2.9}, {29, 40, 4}, {40, 60, 6}, {60, 80, 8}},
			policy: RetentionPolicy{PITRWindow: 5 * 24 * time.Hour}, now: 9, // window from day 4
			kept:    ids(2),
			segKept: []string{"29-40", "40-60", "60-80"}, segDel: []string{"0-20", "20-29"},
			reason: map[string]string{retID(2): "pitr-window: base backup", retID(4): "not needed to restore the PITR window"},
		},
		{
			name:    "segments between the base and the window start are kept, also when closed before it",
			backups: []retBackup{{retID(1), F, "", day(1), 10}, {retID(2), F, "", day(3), 30}},
			segs:    []seg{{0, 20, 2}, {20, 40, 3.5}, {40, 60, 6}},
			policy:  RetentionPolicy{PITRWindow: 5 * 24 * time.Hour}, now: 9, // window from day 4
			kept:    ids(2),
			segKept: []string{"20-40", "40-60"}, segDel: []string{"0-20"},
			reason: map[string]string{retID(1): "not needed to restore the PITR window"},
		},
		{
			// A time target inside the window start's second restores what
			// committed before that second: a backup that ended within it
			// cannot be the base.
			name: "pitr-window start in the same second as a backup's end",
			backups: []retBackup{{retID(1), F, "", day(1), 10}, {retID(2), F, "", day(3).Add(400 * time.Millisecond), 30},
				{retID(3), F, "", day(5), 50}},
			segs:   []seg{{0, 20, 2}, {20, 30, 3}, {30, 40, 4}, {40, 60, 6}},
			policy: RetentionPolicy{PITRWindow: 5*24*time.Hour - 700*time.Millisecond}, now: 8, // window from day 3 + 0.7 s
			kept:    ids(1),
			segKept: []string{"0-20", "20-30", "30-40", "40-60"}, segDel: []string{},
		},
		{
			name: "an incremental with a broken chain is no PITR base",
			backups: []retBackup{{retID(1), F, "", day(1), 10}, {retID(2), I, retID(0), day(3), 30},
				{retID(3), F, "", day(5), 50}},
			segs:   []seg{{0, 20, 2}, {20, 40, 4}, {40, 60, 6}},
			policy: RetentionPolicy{PITRWindow: 5 * 24 * time.Hour}, now: 9, // window from day 4
			kept:    ids(1),
			segKept: []string{"0-20", "20-40", "40-60"}, segDel: []string{},
			note: "cannot be restored",
		},
		{
			name: "pitr-window start exactly at a backup's end",
			backups: []retBackup{{retID(1), F, "", day(1), 10}, {retID(2), F, "", day(3), 30},
				{retID(3), F, "", day(5), 50}},
			segs:   []seg{{0, 20, 2}, {20, 30, 3}, {30, 40, 4}, {40, 60, 6}},
			policy: RetentionPolicy{PITRWindow: 5 * 24 * time.Hour}, now: 8, // window from day 3
			kept:    ids(2),
			segKept: []string{"20-30", "30-40", "40-60"}, segDel: []string{"0-20"},
		},
		{
			name: "pitr-window base is an incremental: its full is kept, and the full's segments are not",
			backups: []retBackup{{retID(1), F, "", day(1), 10}, {retID(2), I, retID(1), day(3), 30},
				{retID(3), I, retID(2), day(5), 50}},
			segs:   []seg{{0, 20, 2}, {20, 40, 4}, {40, 60, 6}},
			policy: RetentionPolicy{PITRWindow: 2 * 24 * time.Hour}, now: 6, // window from day 4
			kept:    ids(1, 2),
			segKept: []string{"20-40", "40-60"}, segDel: []string{"0-20"},
			reason: map[string]string{retID(1): "needed by kept incremental " + retID(2)},
		},
		{
			name: "no backup before the window start: the earliest in the window is kept",
			backups: []retBackup{{retID(1), F, "", day(5), 50},
				{retID(2), F, "", day(7), 70}},
			segs:   []seg{{0, 20, 2}, {20, 55, 6}, {55, 80, 8}},
			policy: RetentionPolicy{PITRWindow: 6 * 24 * time.Hour}, now: 9, // window from day 3
			kept:    ids(1),
			segKept: []string{"20-55", "55-80"}, segDel: []string{"0-20"},
			note: "is restorable only from",
		},
		{
			name: "a gap inside the window: each restorable window keeps its own base, nothing after the first base is deleted",
			backups: []retBackup{{retID(1), F, "", day(1), 10}, {retID(2), F, "", day(4), 35}, {retID(3), F, "", day(6.5), 65},
				{retID(4), F, "", day(8), 85}},
			segs: []seg{{0, 20, 2}, {20, 40, 4.5} /* gap 41..60 */, {60, 70, 7}, {70, 90, 8.5}},
			// window from day 5: the first window (10..40) reaches to day 4.5 only: not needed.
			policy: RetentionPolicy{PITRWindow: 4 * 24 * time.Hour}, now: 9,
			kept:    ids(3),
			segKept: []string{"60-70", "70-90"}, segDel: []string{"0-20", "20-40"},
			note: "gap in the binlog archive",
		},
		{
			name:    "a gap inside the window after its start: the window before the gap keeps its base",
			backups: []retBackup{{retID(1), F, "", day(1), 10}, {retID(2), F, "", day(4), 35}, {retID(3), F, "", day(6.5), 65}},
			segs:    []seg{{0, 20, 2}, {20, 40, 6} /* gap */, {60, 70, 7}},
			policy:  RetentionPolicy{PITRWindow: 4 * 24 * time.Hour}, now: 9, // window from day 5
			kept:    ids(2, 3),
			segKept: []string{"20-40", "60-70"}, segDel: []string{"0-20"},
		},
		{
			name:    "archive ended long before the window: nothing reaches it",
			backups: []retBackup{{retID(1), F, "", day(1), 10}, {retID(2), F, "", day(8), 90}},
			segs:    []seg{{0, 20, 2}},
			policy:  RetentionPolicy{PITRWindow: 2 * 24 * time.Hour, KeepFull: 1}, now: 9,
			kept:    ids(2),
			segKept: nil, segDel: []string{"0-20"},
			note: "no restorable window reaches",
		},
		{
			name:    "pitr-window off: segments are not touched",
			backups: []retBackup{{retID(1), F, "", day(1), 10}, {retID(2), F, "", day(8), 90}},
			segs:    []seg{{0, 20, 2}},
			policy:  RetentionPolicy{KeepFull: 1}, now: 9,
			kept:    ids(2),
			segKept: []string{}, segDel: []string{},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			be := mem.New()
			for _, b := range c.backups {
				putRetBackup(t, be, b)
			}
			for _, n := range c.corrupt {
				if err := be.Put(ctx, manifestKey(retID(n)), strings.NewReader("{not json"), 9); err != nil {
					t.Fatal(err)
				}
			}
			for _, s := range c.segs {
				putRetSegment(t, be, s.from, s.to, day(s.closed))
			}
			before := keys(t, be)
			plan, err := PlanRetention(ctx, &backup.Catalog{Store: be}, c.policy, day(c.now))
			if err != nil {
				t.Fatal(err)
			}
			desc := plan.Describe()
			kept, _ := verdicts(plan)
			if fmt.Sprint(kept) != fmt.Sprint(c.kept) {
				t.Errorf("kept %v, want %v\n%s", kept, c.kept, desc)
			}
			if c.segKept != nil || c.segDel != nil {
				sk, sd := segVerdicts(plan)
				if fmt.Sprint(sk) != fmt.Sprint(c.segKept) || fmt.Sprint(sd) != fmt.Sprint(c.segDel) {
					t.Errorf("segments kept %v deleted %v, want %v and %v\n%s", sk, sd, c.segKept, c.segDel, desc)
				}
			}
			for id, want := range c.reason {
				found := false
				for _, v := range plan.Backups {
					if v.ID == id && strings.Contains(strings.Join(v.Reasons, "; "), want) {
						found = true
					}
				}
				if !found {
					t.Errorf("%s: no reason containing %q\n%s", id, want, desc)
				}
			}
			if c.note != "" && !strings.Contains(strings.Join(plan.Notes, "\n"), c.note) {
				t.Errorf("no note containing %q\n%s", c.note, desc)
			}
			for _, v := range plan.Backups {
				if len(v.Reasons) == 0 {
					t.Errorf("%s has no reason\n%s", v.ID, desc)
				}
			}
			if after := keys(t, be); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("planning changed the storage")
			}
		})
	}
}

func TestRetentionPolicyValidate(t *testing.T) {
	for _, c := range []struct {
		p     RetentionPolicy
		force bool
		want  error
	}{
		{RetentionPolicy{KeepFull: 1}, false, nil},
		{RetentionPolicy{PITRWindow: time.Hour}, false, nil},
		{RetentionPolicy{}, false, ErrRetentionRefused},
		{RetentionPolicy{}, true, nil},
		{RetentionPolicy{KeepFull: -1}, true, ErrRetentionPolicy},
		{RetentionPolicy{KeepWithin: -time.Hour, KeepFull: 2}, false, ErrRetentionPolicy},
		{RetentionPolicy{PITRWindow: -1}, true, ErrRetentionPolicy},
	} {
		err := c.p.Validate(c.force)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%+v force=%v: %v, want %v", c.p, c.force, err, c.want)
		}
	}
}

func TestParseRetentionDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"": 0, "0": 0, "7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute, " 2d ": 48 * time.Hour,
	} {
		got, err := ParseRetentionDuration(in)
		if err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
		if want > 0 {
			if back, err := ParseRetentionDuration(FormatRetentionDuration(got)); err != nil || back != got {
				t.Errorf("%q: format %q reads back as %v %v", in, FormatRetentionDuration(got), back, err)
			}
		}
	}
	for _, in := range []string{"-1d", "-5h", "d", "7", "seven days", "1d-2h", "7dd", "1.5d", "99999999d", "1h1d", "0107000d", "36600d2562047h"} {
		if _, err := ParseRetentionDuration(in); !errors.Is(err, ErrRetentionPolicy) {
			t.Errorf("%q accepted: %v", in, err)
		}
	}
}

func FuzzParseRetentionDuration(f *testing.F) {
	for _, s := range []string{"7d", "36h", "1d12h", "0", "", "-1d", "1d-2h", "9223372036854775807ns", "36500d23h59m", "36600d2562047h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseRetentionDuration(s)
		if err != nil {
			if !errors.Is(err, ErrRetentionPolicy) {
				t.Fatalf("%q: error without ErrRetentionPolicy: %v", s, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("%q: negative %v accepted", s, d)
		}
		if back, err := ParseRetentionDuration(FormatRetentionDuration(d)); d > 0 && (err != nil || back != d) {
			t.Fatalf("%q = %v: formatted %q reads back as %v %v", s, d, FormatRetentionDuration(d), back, err)
		}
	})
}

// faultBackend records deletions and fails the one of failKey.
type faultBackend struct {
	backend.Backend
	mu      sync.Mutex
	deleted []string
	failKey string
}

func (f *faultBackend) Delete(ctx context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if key == f.failKey {
		return fmt.Errorf("injected failure deleting %s", key)
	}
	f.deleted = append(f.deleted, key)
	return f.Backend.Delete(ctx, key)
}

func chainCatalog(t *testing.T) *mem.Backend {
	be := mem.New()
	for _, b := range []retBackup{
		{retID(1), backup.TypeFull, "", day(1), 0}, {retID(2), backup.TypeIncremental, retID(1), day(2), 0}, {retID(3), backup.TypeIncremental, retID(2), day(3), 0},
		{retID(4), backup.TypeFull, "", day(4), 0}, {retID(5), backup.TypeIncremental, retID(4), day(5), 0},
	} {
		putRetBackup(t, be, b)
	}
	return be
}

func TestExpireRefuses(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		policy RetentionPolicy
		want   error
	}{
		{"empty policy", RetentionPolicy{}, ErrRetentionRefused},
		{"policy deleting every backup", RetentionPolicy{KeepWithin: 24 * time.Hour}, ErrRetentionRefused},
		{"negative keep-full", RetentionPolicy{KeepFull: -2}, ErrRetentionPolicy},
	} {
		be := chainCatalog(t)
		before := keys(t, be)
		fb := &faultBackend{Backend: be}
		plan, err := Expire(ctx, &backup.Catalog{Store: fb}, ExpireOptions{Policy: c.policy, Now: day(30)})
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", c.name, err, c.want)
		}
		if len(fb.deleted) > 0 || fmt.Sprint(keys(t, be)) != fmt.Sprint(before) {
			t.Fatalf("%s: deleted %v", c.name, fb.deleted)
		}
		if plan != nil && (!plan.DryRun || !strings.Contains(plan.Describe(), "would delete")) {
			t.Fatalf("%s: a refused plan must read as a dry run:\n%s", c.name, plan.Describe())
		}
	}
	// With --force the same policy deletes everything, incrementals first.
	be := chainCatalog(t)
	fb := &faultBackend{Backend: be}
	if _, err := Expire(ctx, &backup.Catalog{Store: fb}, ExpireOptions{Policy: RetentionPolicy{KeepWithin: 24 * time.Hour}, Now: day(30), Force: true}); err != nil {
		t.Fatal(err)
	}
	if k := keys(t, be); len(k) != 0 {
		t.Fatalf("left %v", k)
	}
}

func TestExpireDryRunAndOrder(t *testing.T) {
	ctx := context.Background()
	be := chainCatalog(t)
	before := keys(t, be)
	fb := &faultBackend{Backend: be}
	cat := &backup.Catalog{Store: fb}
	o := ExpireOptions{Policy: RetentionPolicy{KeepFull: 1}, Now: day(30), DryRun: true}
	dry, err := Expire(ctx, cat, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(fb.deleted) > 0 || fmt.Sprint(keys(t, be)) != fmt.Sprint(before) {
		t.Fatalf("dry run deleted %v", fb.deleted)
	}
	if d := dry.Describe(); !strings.Contains(d, "would delete") || !strings.Contains(d, "dry run") {
		t.Fatalf("dry run output:\n%s", d)
	}
	o.DryRun = false
	plan, err := Expire(ctx, cat, o)
	if err != nil {
		t.Fatal(err)
	}
	dk, dd := verdicts(dry)
	pk, pd := verdicts(plan)
	if fmt.Sprint(dk, dd) != fmt.Sprint(pk, pd) {
		t.Fatalf("dry run planned %v/%v, the run did %v/%v", dk, dd, pk, pd)
	}
	// Incrementals before what they build on; each manifest before its data.
	pos := map[string]int{}
	for i, k := range fb.deleted {
		pos[k] = i
	}
	for _, id := range ids(1, 2, 3) {
		if _, ok := pos[manifestKey(id)]; !ok {
			t.Fatalf("%s not deleted: %v", id, fb.deleted)
		}
		if pos[manifestKey(id)] > pos[dataKey(id, ".zstd")] || pos[manifestKey(id)] > pos[backupsPrefix+id+"/extra.log"] {
			t.Errorf("%s: data deleted before the manifest: %v", id, fb.deleted)
		}
	}
	if !(pos[manifestKey(retID(3))] < pos[manifestKey(retID(2))] && pos[manifestKey(retID(2))] < pos[manifestKey(retID(1))]) {
		t.Errorf("chain deleted parent first: %v", fb.deleted)
	}
	want := []string{dataKey(retID(4), ".zstd"), backupsPrefix + retID(4) + "/extra.log", manifestKey(retID(4)),
		dataKey(retID(5), ".zstd"), backupsPrefix + retID(5) + "/extra.log", manifestKey(retID(5))}
	sort.Strings(want)
	if got := keys(t, be); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("left %v, want %v", got, want)
	}
	if d := plan.Describe(); !strings.Contains(d, "deleted") || !strings.Contains(d, "summary: 2 backups kept, 3 deleted") {
		t.Fatalf("output:\n%s", d)
	}
}

// TestExpireInterrupted: a deletion that fails stops expire; a backup whose
// manifest is gone is no longer listed (its rest is an interrupted backup),
// a backup whose manifest could not be deleted is complete, and a kept
// incremental never loses what it builds on.
func TestExpireInterrupted(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		failKey  string
		listed   []string // backups listed afterwards
		leftover string   // id with objects but no manifest
	}{
		{"data object of an incremental", dataKey(retID(3), ".zstd"), ids(1, 2, 4, 5), retID(3)},
		{"manifest of the full of a chain", manifestKey(retID(1)), ids(1, 4, 5), ""},
		{"manifest of the first incremental", manifestKey(retID(3)), ids(1, 2, 3, 4, 5), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			be := chainCatalog(t)
			fb := &faultBackend{Backend: be, failKey: c.failKey}
			cat := &backup.Catalog{Store: fb}
			plan, err := Expire(ctx, cat, ExpireOptions{Policy: RetentionPolicy{KeepFull: 1}, Now: day(30)})
			if err == nil || !strings.Contains(err.Error(), "injected failure") {
				t.Fatalf("err %v", err)
			}
			if !strings.Contains(plan.Describe(), "FAILED") {
				t.Fatalf("output does not show the failure:\n%s", plan.Describe())
			}
			list, bad, err := cat.List(ctx)
			if err != nil || len(bad) > 0 {
				t.Fatal(err, bad)
			}
			var got []string
			for _, m := range list {
				got = append(got, m.ID)
				// Every listed backup is complete and its chain loads.
				if _, err := cat.Chain(ctx, m); err != nil {
					t.Errorf("listed %s has a broken chain: %v", m.ID, err)
				}
				if _, err := be.Stat(ctx, m.Objects[0].Key); err != nil {
					t.Errorf("listed %s lost its data: %v", m.ID, err)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.listed) {
				t.Fatalf("listed %v, want %v", got, c.listed)
			}
			left, err := cat.Leftovers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := left[c.leftover]; (c.leftover != "") != ok || (c.leftover == "" && len(left) > 0) {
				t.Fatalf("leftovers %v, want %q", left, c.leftover)
			}
			// The next run, without the fault, finishes the job.
			fb.failKey = ""
			if _, err := Expire(ctx, cat, ExpireOptions{Policy: RetentionPolicy{KeepFull: 1}, Now: day(30)}); err != nil {
				t.Fatal(err)
			}
			list, _, _ = cat.List(ctx)
			if len(list) != 2 {
				t.Fatalf("after the second run: %d backups", len(list))
			}
		})
	}
}

// TestExpireReadErrorDeletesNothing: a manifest that cannot be read because
// of a storage error (not a corrupt one) stops expire before any deletion.
func TestExpireReadErrorDeletesNothing(t *testing.T) {
	ctx := context.Background()
	be := chainCatalog(t)
	before := keys(t, be)
	fb := &faultBackend{Backend: &getFault{Backend: be, key: manifestKey(retID(4))}}
	_, err := Expire(ctx, &backup.Catalog{Store: fb}, ExpireOptions{Policy: RetentionPolicy{KeepFull: 1}, Now: day(30)})
	if err == nil || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Fatalf("err %v", err)
	}
	if len(fb.deleted) > 0 || fmt.Sprint(keys(t, be)) != fmt.Sprint(before) {
		t.Fatalf("deleted %v", fb.deleted)
	}
}

type getFault struct {
	backend.Backend
	key string
}

func (g *getFault) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if key == g.key {
		return nil, errors.New("injected: connection reset")
	}
	return g.Backend.Get(ctx, key, off, n)
}

// TestExpireCycles runs a month of daily cycles (a full every 7 days, an
// incremental the other days, binlogs archived every 6 hours) with expire
// after every backup, and checks after each cycle that exactly the policy
// is kept, every kept chain loads, and every point of the PITR window is
// restorable from a kept backup.
func TestExpireCycles(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	cat := &backup.Catalog{Store: be}
	a := &Archive{Store: be}
	p := RetentionPolicy{KeepFull: 2, KeepWithin: 3 * 24 * time.Hour, PITRWindow: 5 * 24 * time.Hour}
	rnd := rand.New(rand.NewSource(1))
	var seq uint64
	var prev string
	var all []retBackup
	for d := 0; d < 40; d++ {
		for q := 0; q < 4; q++ { // 6-hourly binlog segments, 10 transactions each
			putRetSegment(t, be, seq, seq+10, day(float64(d)+float64(q)/4+0.25))
			seq += 10
		}
		end := day(float64(d) + 1)
		b := retBackup{id: retID(d + 1), end: end, seq: seq}
		if d%7 == 0 {
			b.typ = backup.TypeFull
		} else {
			b.typ, b.parent = backup.TypeIncremental, prev
		}
		putRetBackup(t, be, b)
		all = append(all, b)
		prev = b.id
		now := end.Add(time.Minute)
		plan, err := Expire(ctx, cat, ExpireOptions{Policy: p, Now: now})
		if err != nil {
			t.Fatalf("day %d: %v", d, err)
		}
		list, bad, err := cat.List(ctx)
		if err != nil || len(bad) > 0 {
			t.Fatal(err, bad)
		}
		// Exactly the policy: a backup is listed iff a rule keeps it, and
		// every chain loads.
		kept, _ := verdicts(plan)
		var got []string
		fulls := 0
		for _, m := range list {
			got = append(got, m.ID)
			if m.Type == backup.TypeFull {
				fulls++
			}
			if _, err := cat.Chain(ctx, m); err != nil {
				t.Fatalf("day %d: %s: %v", d, m.ID, err)
			}
			if _, err := be.Stat(ctx, m.Objects[0].Key); err != nil {
				t.Fatalf("day %d: %s lost its data", d, m.ID)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(kept) {
			t.Fatalf("day %d: listed %v, plan kept %v", d, got, kept)
		}
		if want := min(d/7+1, 2); fulls < want {
			t.Fatalf("day %d: %d fulls, want at least %d\n%s", d, fulls, want, plan.Describe())
		}
		if want := retentionOracle(all, p, now); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("day %d: listed %v, the policy keeps %v\n%s", d, got, want, plan.Describe())
		}
		if left, _ := cat.Leftovers(ctx); len(left) > 0 {
			t.Fatalf("day %d: leftovers %v", d, left)
		}
		// Every point in the window is restorable.
		cov, err := a.Coverage(ctx, cat)
		if err != nil {
			t.Fatal(err)
		}
		if len(cov.Gaps) > 0 {
			t.Fatalf("day %d: gap:\n%s", d, cov.Describe())
		}
		start := now.Add(-p.PITRWindow)
		if start.Before(day(1)) {
			start = day(1) // nothing older exists
		}
		last := cov.Windows[len(cov.Windows)-1].ToTime
		for i := 0; i < 20; i++ {
			tt := start.Add(time.Duration(rnd.Int63n(int64(last.Sub(start)) + 1))).Truncate(time.Second)
			if i == 0 {
				tt = start
			}
			if _, _, err := pick(cov, PITROptions{Time: tt}); err != nil {
				t.Fatalf("day %d: %s in the window is not restorable: %v\n%s", d, tt, err, plan.Describe())
			}
		}
		// Segments end just before the base of the window, not earlier.
		segs, _, _ := a.Segments(ctx)
		if d > 6 && segs[0].EndTime().After(start) {
			t.Fatalf("day %d: oldest segment closed %s, after the window start %s", d, segs[0].EndTime(), start)
		}
	}
}

// retentionOracle computes what the policy keeps in TestExpireCycles's
// linear history (each incremental builds on the backup before it), the
// simple way: keeping backup i keeps everything from its full to i.
func retentionOracle(all []retBackup, p RetentionPolicy, now time.Time) []string {
	keep := make([]bool, len(all))
	root := func(i int) int {
		for all[i].typ != backup.TypeFull {
			i--
		}
		return i
	}
	keepTo := func(i int) {
		for j := root(i); j <= i; j++ {
			keep[j] = true
		}
	}
	var fulls []int
	for i, b := range all {
		if b.typ == backup.TypeFull {
			fulls = append(fulls, i)
		}
	}
	if len(fulls) > p.KeepFull {
		fulls = fulls[len(fulls)-p.KeepFull:]
	}
	for i := range all {
		for _, f := range fulls {
			if root(i) == f {
				keepTo(i)
			}
		}
		if !all[i].end.Before(now.Add(-p.KeepWithin)) {
			keepTo(i)
		}
	}
	base := 0 // the newest backup at or before the window start, else the first
	for i, b := range all {
		if !b.end.After(now.Add(-p.PITRWindow)) {
			base = i
		}
	}
	keepTo(base)
	var ids []string
	for i, b := range all {
		if keep[i] {
			ids = append(ids, b.id)
		}
	}
	return ids
}

// TestExpireSegmentInterrupted: a segment whose data object cannot be
// deleted leaves data without an index (not part of the archive, no gap
// in the window), and the next expire removes it.
func TestExpireSegmentInterrupted(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	putRetBackup(t, be, retBackup{retID(1), backup.TypeFull, "", day(1), 10})
	putRetBackup(t, be, retBackup{retID(2), backup.TypeFull, "", day(3), 30})
	old := putRetSegment(t, be, 0, 20, day(2))
	putRetSegment(t, be, 20, 40, day(4))
	putRetSegment(t, be, 40, 60, day(6))
	fb := &faultBackend{Backend: be, failKey: old.Object.Key}
	cat := &backup.Catalog{Store: fb}
	o := ExpireOptions{Policy: RetentionPolicy{PITRWindow: 4 * 24 * time.Hour}, Now: day(7)} // window from day 3
	plan, err := Expire(ctx, cat, o)
	if err == nil || !strings.Contains(err.Error(), "the next expire removes it") {
		t.Fatalf("err %v", err)
	}
	if !strings.Contains(plan.Describe(), "FAILED") {
		t.Fatalf("output:\n%s", plan.Describe())
	}
	cov, err := (&Archive{Store: be}).Coverage(ctx, cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(cov.Windows) != 1 || len(cov.Gaps) != 0 || cov.Windows[0].FromSeq != 30 || cov.Windows[0].ToSeq != 60 {
		t.Fatalf("after the interrupted expire:\n%s", cov.Describe())
	}
	if _, err := be.Stat(ctx, old.Object.Key); err != nil {
		t.Fatalf("the data object should remain: %v", err)
	}
	segs, _, err := (&Archive{Store: be}).Segments(ctx)
	if err != nil || len(segs) != 2 || segs[0].From != 20 {
		t.Fatalf("the half-deleted segment is still listed: %v %v", segs, err)
	}
	fb.failKey = ""
	plan, err = Expire(ctx, cat, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := be.Stat(ctx, old.Object.Key); !errors.Is(err, backend.ErrNotExist) {
		t.Fatalf("the second run left %s: %v\n%s", old.Object.Key, err, plan.Describe())
	}
	if !strings.Contains(plan.Describe(), "data without an index") {
		t.Fatalf("output:\n%s", plan.Describe())
	}
	// An upload in progress (data, no index yet) after the archive is never
	// touched.
	if err := be.Put(ctx, segmentKey(retLineage, 7, 60, 80)+"/data.binlog.zstd", strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := Expire(ctx, cat, o); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Stat(ctx, segmentKey(retLineage, 7, 60, 80)+"/data.binlog.zstd"); err != nil {
		t.Fatalf("an upload in progress was deleted: %v", err)
	}
}
