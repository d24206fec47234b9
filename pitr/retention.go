package pitr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/storage/backend"
)

// RetentionPolicy says what expire keeps; a backup or binlog segment is
// deleted only when no rule keeps it. Zero disables a rule.
type RetentionPolicy struct {
	// KeepFull keeps the newest KeepFull full backups and every
	// incremental built on them (their chains).
	KeepFull int `json:"keep_full"`
	// KeepWithin keeps every backup that finished within this long before
	// now (--keep-days D is D×24h), plus the backups it builds on.
	KeepWithin time.Duration `json:"keep_within_ns"`
	// PITRWindow keeps every point in [now-PITRWindow, last archived
	// transaction] restorable: for each restorable window reaching into it,
	// the newest backup finished at or before its start (or the window's
	// earliest backup) with its chain, and every binlog segment from that
	// backup's position on. Segments are deleted only with this rule set;
	// without it the binlog archive is not touched.
	PITRWindow time.Duration `json:"pitr_window_ns"`
}

// ErrRetentionRefused means expire deleted nothing because the policy is
// missing or would delete every backup; --force overrides it.
var ErrRetentionRefused = errors.New("retention refused")

// ErrRetentionPolicy marks an invalid retention setting.
var ErrRetentionPolicy = errors.New("invalid retention policy")

// Validate checks the policy. An empty policy (every rule off) keeps
// nothing and is refused unless force.
func (p RetentionPolicy) Validate(force bool) error {
	var errs []error
	if p.KeepFull < 0 {
		errs = append(errs, fmt.Errorf("%w: keep-full %d is negative", ErrRetentionPolicy, p.KeepFull))
	}
	if p.KeepWithin < 0 {
		errs = append(errs, fmt.Errorf("%w: keep-days %s is negative", ErrRetentionPolicy, p.KeepWithin))
	}
	if p.PITRWindow < 0 {
		errs = append(errs, fmt.Errorf("%w: pitr-window %s is negative", ErrRetentionPolicy, p.PITRWindow))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if p.KeepFull == 0 && p.KeepWithin == 0 && p.PITRWindow == 0 && !force {
		return fmt.Errorf("%w: no rule keeps anything (keep-full, keep-days and pitr-window are all zero or unset), so every backup would be deleted; set at least one, or use --force to really delete every backup", ErrRetentionRefused)
	}
	return nil
}

func (p RetentionPolicy) String() string {
	return fmt.Sprintf("keep-full %d, keep-days %s, pitr-window %s", p.KeepFull, FormatRetentionDuration(p.KeepWithin), FormatRetentionDuration(p.PITRWindow))
}

// maxRetention bounds a retention period (100 years).
const maxRetention = 100 * 366 * 24 * time.Hour

// ParseRetentionDuration parses a retention period: whole days "7d", a Go
// duration "36h", "90m", or both "1d12h". "0" and "" are zero (rule off).
// Negative values are refused.
func ParseRetentionDuration(s string) (time.Duration, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("%w: %q is not a period (want e.g. 7d, 36h or 1d12h, not negative)", ErrRetentionPolicy, orig)
	}
	var d time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 31)
		if err != nil || n > uint64(maxRetention/(24*time.Hour)) {
			return bad()
		}
		d = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
	}
	if s != "" {
		if s[0] == '-' || s[0] == '+' {
			return bad()
		}
		r, err := time.ParseDuration(s)
		if err != nil || r < 0 || r > maxRetention {
			return bad()
		}
		d += r
	}
	if d > maxRetention {
		return bad()
	}
	return d, nil
}

// FormatRetentionDuration prints a period as ParseRetentionDuration reads
// it ("off" for zero).
func FormatRetentionDuration(d time.Duration) string {
	if d == 0 {
		return "off"
	}
	day := 24 * time.Hour
	if d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	if d > day {
		return fmt.Sprintf("%dd%s", d/day, d%day)
	}
	return d.String()
}

// BackupVerdict is what retention decided for one backup.
type BackupVerdict struct {
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	Parent  string    `json:"parent,omitempty"`
	EndTime time.Time `json:"end_time"`
	Keep    bool      `json:"keep"`
	// Reasons lists every rule that keeps the backup, or why none does.
	Reasons []string `json:"reasons"`
	Deleted bool     `json:"deleted"`
	Error   string   `json:"error,omitempty"`

	m     *backup.Manifest
	depth int
}

// SegmentVerdict is what retention decided for one binlog segment.
type SegmentVerdict struct {
	Key     string    `json:"key"`
	Lineage string    `json:"lineage"`
	Domain  uint32    `json:"domain"`
	From    uint64    `json:"from"`
	To      uint64    `json:"to"`
	End     time.Time `json:"end_time"`
	Keep    bool      `json:"keep"`
	Reason  string    `json:"reason"`
	Deleted bool      `json:"deleted"`
	Error   string    `json:"error,omitempty"`

	seg *Segment
}

// RetentionPlan is the outcome of expire: what is kept and why, what is (or,
// in a dry run, would be) deleted and why.
type RetentionPlan struct {
	Now    time.Time       `json:"now"`
	Policy RetentionPolicy `json:"policy"`
	DryRun bool            `json:"dry_run"`
	// KeepSince and WindowStart are now-KeepWithin and now-PITRWindow
	// (absent when the rule is off).
	KeepSince   *time.Time        `json:"keep_since,omitempty"`
	WindowStart *time.Time        `json:"pitr_window_start,omitempty"`
	Backups     []*BackupVerdict  `json:"backups"`
	Segments    []*SegmentVerdict `json:"segments"`
	Notes       []string          `json:"notes"`

	keepSince, windowStart time.Time
}

// ExpireOptions configures Expire.
type ExpireOptions struct {
	Policy RetentionPolicy
	// Now is the reference time of the rules (zero: the current time).
	Now time.Time
	// DryRun plans and reports but deletes nothing.
	DryRun bool
	// Force allows an empty policy and a plan that deletes every backup.
	Force  bool
	Logger *slog.Logger
}

// Expire applies a retention policy to the backups and the binlog archive
// in cat's storage. It validates the policy, plans (see PlanRetention),
// refuses a plan that deletes every backup unless o.Force, and then deletes,
// one backup at a time, incrementals before the backups they build on: the
// manifest first (from then on the backup is not listed, and what is left of
// it is an interrupted backup), then its objects; then binlog segments
// oldest first, index first. The first failed deletion stops Expire. The
// plan is returned also with an error, marking what was deleted.
func Expire(ctx context.Context, cat *backup.Catalog, o ExpireOptions) (*RetentionPlan, error) {
	if err := o.Policy.Validate(o.Force); err != nil {
		return nil, err
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	plan, err := PlanRetention(ctx, cat, o.Policy, o.Now)
	if err != nil {
		return nil, err
	}
	plan.DryRun = o.DryRun
	kept, readable := 0, 0
	for _, v := range plan.Backups {
		if v.m != nil {
			readable++
			if v.Keep {
				kept++
			}
		}
	}
	if readable > 0 && kept == 0 && !o.Force {
		plan.DryRun = true // nothing is deleted: print it as a plan
		return plan, fmt.Errorf("%w: the policy (%s) would delete all %d backups; nothing was deleted. Check the policy, or use --force to really delete every backup", ErrRetentionRefused, o.Policy, readable)
	}
	if o.DryRun {
		return plan, nil
	}
	for _, v := range deleteOrder(plan.Backups) {
		if err := ctx.Err(); err != nil {
			return plan, err
		}
		if err := cat.Delete(ctx, v.m); err != nil {
			v.Error = err.Error()
			return plan, fmt.Errorf("expire stopped at backup %s; backups after it in the plan were not touched: %w", v.ID, err)
		}
		v.Deleted = true
		log.Info("deleted backup", "backup", v.ID, "type", v.Type, "why", strings.Join(v.Reasons, "; "))
	}
	for _, v := range plan.Segments {
		if v.Keep {
			continue
		}
		if err := ctx.Err(); err != nil {
			return plan, err
		}
		if err := deleteSegment(ctx, cat.Store, v.Key, v.seg); err != nil {
			v.Error = err.Error()
			return plan, fmt.Errorf("expire stopped at binlog segment %s; later segments were not touched: %w", v.Key, err)
		}
		v.Deleted = true
		log.Info("deleted binlog segment", "segment", v.Key, "why", v.Reason)
	}
	return plan, nil
}

// deleteOrder returns the backups to delete, every incremental before the
// backup it builds on (deepest in its chain first, newest first).
func deleteOrder(all []*BackupVerdict) []*BackupVerdict {
	var del []*BackupVerdict
	for _, v := range all {
		if !v.Keep && v.m != nil {
			del = append(del, v)
		}
	}
	sort.SliceStable(del, func(i, j int) bool {
		if del[i].depth != del[j].depth {
			return del[i].depth > del[j].depth
		}
		return del[i].ID > del[j].ID
	})
	return del
}

// deleteSegment removes the index first (the segment is then no longer part
// of the archive), then its data object and anything else under its key.
// s is nil for data without an index.
func deleteSegment(ctx context.Context, store backend.Backend, key string, s *Segment) error {
	prefix := key + "/"
	if err := store.Delete(ctx, prefix+"index.json"); err != nil {
		return fmt.Errorf("delete the index of %s (the segment is still archived): %w", key, err)
	}
	leftover := func(err error) error {
		return fmt.Errorf("segment %s is no longer archived, but its data object remains (the next expire removes it): %w", key, err)
	}
	if s != nil && strings.HasPrefix(s.Object.Key, prefix) {
		if err := store.Delete(ctx, s.Object.Key); err != nil {
			return leftover(err)
		}
	}
	var rest []string
	if err := store.List(ctx, prefix, func(oi backend.ObjectInfo) error {
		rest = append(rest, oi.Key)
		return nil
	}); err != nil {
		return leftover(err)
	}
	for _, k := range rest {
		if err := store.Delete(ctx, k); err != nil {
			return leftover(err)
		}
	}
	return nil
}

// PlanRetention decides, without changing anything, which backups and
// binlog segments the policy keeps at time now, and why:
//
//   - keep-full N: the N newest full backups (by id, i.e. start time) and
//     every incremental whose chain starts at one of them;
//   - keep-days: every backup whose EndTime is not before now-KeepWithin;
//   - pitr-window: for each restorable window (see Archive.Coverage) that
//     reaches past now-PITRWindow, the newest backup in it that finished at
//     or before now-PITRWindow, truncated to the second (or, if none did,
//     its earliest backup);
//     binlog segments are kept if they end at or after that backup's GTID
//     position, or if they closed at or after now-PITRWindow;
//   - a kept backup keeps every backup it builds on;
//   - a backup whose manifest is unreadable (corrupt) is kept, and so is
//     every incremental built on it; an unreadable segment index is kept.
//
// A manifest that cannot be read for another reason (a storage error) stops
// the plan: deciding without it could delete what it needs.
func PlanRetention(ctx context.Context, cat *backup.Catalog, p RetentionPolicy, now time.Time) (*RetentionPlan, error) {
	if err := p.Validate(true); err != nil {
		return nil, err
	}
	plan := &RetentionPlan{Now: now.UTC(), Policy: p, Backups: []*BackupVerdict{}, Segments: []*SegmentVerdict{}, Notes: []string{}}
	list, bad, err := cat.List(ctx)
	if err != nil {
		return nil, err
	}
	badIDs := make([]string, 0, len(bad))
	for id, e := range bad {
		if !errors.Is(e, backup.ErrManifest) {
			return nil, fmt.Errorf("read the manifest of backup %s (retention needs every manifest to know which backups others build on; nothing was deleted): %w", id, e)
		}
		badIDs = append(badIDs, id)
	}
	sort.Strings(badIDs)

	r := &retentionPlanner{plan: plan, p: p, byID: map[string]*BackupVerdict{}, roots: map[string]string{},
		cutoff: map[segGroup]uint64{}, cutoffBy: map[segGroup]string{}}
	for _, m := range list {
		v := &BackupVerdict{ID: m.ID, Type: m.Type, Parent: m.Parent, EndTime: m.EndTime, Reasons: []string{}, m: m}
		r.byID[m.ID] = v
		plan.Backups = append(plan.Backups, v)
	}
	for _, id := range badIDs {
		v := &BackupVerdict{ID: id, Keep: true, Reasons: []string{"manifest unreadable: never deleted by retention (" + retOneLine(bad[id].Error()) + ")"}}
		r.byID[id] = v
		plan.Backups = append(plan.Backups, v)
		plan.Notes = append(plan.Notes, fmt.Sprintf("backup %s has an unreadable manifest: kept; check it by hand", id))
	}
	sort.Slice(plan.Backups, func(i, j int) bool { return plan.Backups[i].ID < plan.Backups[j].ID })
	r.findRoots()
	r.keepFull()
	r.keepDays()
	if p.PITRWindow > 0 {
		if err := r.keepPITRBases(ctx, cat); err != nil {
			return nil, err
		}
	}
	r.keepChains()
	r.explainDeletes()

	if p.PITRWindow == 0 {
		return plan, nil
	}
	if err := r.planSegments(ctx, cat); err != nil {
		return nil, err
	}
	return plan, nil
}

// segGroup is one lineage's GTID domain: the binlog segments of one
// sequence.
type segGroup struct {
	lineage string
	domain  uint32
}

// retentionPlanner is PlanRetention's working state.
type retentionPlanner struct {
	plan  *RetentionPlan
	p     RetentionPolicy
	byID  map[string]*BackupVerdict
	roots map[string]string // backup → the readable full its chain reaches, or ""
	// pitr: keep segments ending at or after this sequence number, and
	// the base backup that set it.
	cutoff   map[segGroup]uint64
	cutoffBy map[segGroup]string
}

// ancestors walks the chain of m towards its full: the ids it builds
// on, nearest first, and whether the chain reaches a readable full.
func (r *retentionPlanner) ancestors(v *BackupVerdict) (ids []string, root string) {
	cur := v
	for i := 0; cur.m != nil && cur.m.Type == backup.TypeIncremental && i <= 1000; i++ {
		p, ok := r.byID[cur.m.Parent]
		if !ok {
			return ids, ""
		}
		ids = append(ids, p.ID)
		cur = p
	}
	if cur.m != nil && cur.m.Type == backup.TypeFull {
		return ids, cur.ID
	}
	return ids, ""
}

func retKeep(v *BackupVerdict, why string) {
	v.Keep = true
	for _, r := range v.Reasons {
		if r == why {
			return
		}
	}
	v.Reasons = append(v.Reasons, why)
}

func (r *retentionPlanner) findRoots() {
	for _, v := range r.plan.Backups {
		if v.m == nil {
			continue
		}
		anc, root := r.ancestors(v)
		v.depth, r.roots[v.ID] = len(anc), root
		if root == "" && v.m.Type == backup.TypeIncremental {
			r.plan.Notes = append(r.plan.Notes, fmt.Sprintf("incremental %s does not lead to a readable full backup (parent %s missing or unreadable): it cannot be restored", v.ID, v.Parent))
		}
	}
}

// keepFull applies keep-full.
func (r *retentionPlanner) keepFull() {
	p := r.p
	if p.KeepFull <= 0 {
		return
	}
	var fulls []string
	for _, v := range r.plan.Backups {
		if v.m != nil && v.Type == backup.TypeFull {
			fulls = append(fulls, v.ID)
		}
	}
	if len(fulls) > p.KeepFull {
		fulls = fulls[len(fulls)-p.KeepFull:]
	}
	keptRoot := map[string]bool{}
	for _, id := range fulls {
		keptRoot[id] = true
	}
	for _, v := range r.plan.Backups {
		if root := r.roots[v.ID]; root != "" && keptRoot[root] {
			if root == v.ID {
				retKeep(v, fmt.Sprintf("keep-full: one of the %d newest full backups", p.KeepFull))
			} else {
				retKeep(v, fmt.Sprintf("keep-full: in the chain of full backup %s, one of the %d newest", root, p.KeepFull))
			}
		}
	}
}

// keepDays applies keep-days.
func (r *retentionPlanner) keepDays() {
	plan, p := r.plan, r.p
	if p.KeepWithin <= 0 {
		return
	}
	plan.keepSince = plan.Now.Add(-p.KeepWithin)
	plan.KeepSince = &plan.keepSince
	for _, v := range plan.Backups {
		if v.m != nil && !v.EndTime.Before(plan.keepSince) {
			retKeep(v, fmt.Sprintf("keep-days: finished %s, within %s", v.EndTime.UTC().Format(time.RFC3339), FormatRetentionDuration(p.KeepWithin)))
		}
	}
}

// keepPITRBases applies pitr-window to the backups: the base of each
// restorable window that reaches into it, and the cutoff for segments.
func (r *retentionPlanner) keepPITRBases(ctx context.Context, cat *backup.Catalog) error {
	plan := r.plan
	plan.windowStart = plan.Now.Add(-r.p.PITRWindow)
	plan.WindowStart = &plan.windowStart
	cov, err := (&Archive{Store: cat.Store}).Coverage(ctx, cat)
	if err != nil {
		return fmt.Errorf("compute the restorable windows: %w", err)
	}
	plan.Notes = append(plan.Notes, cov.Notes...)
	for _, g := range cov.Gaps {
		plan.Notes = append(plan.Notes, "gap in the binlog archive: "+g.String())
	}
	reaches := false
	for _, w := range cov.Windows {
		if w.ToTime.Before(plan.windowStart) {
			continue
		}
		reaches = true
		r.keepWindowBase(w)
	}
	if !reaches {
		plan.Notes = append(plan.Notes, fmt.Sprintf("no restorable window reaches the PITR window start %s: is binlog archiving running, and is there a backup it can start from?", plan.windowStart.Format(time.RFC3339)))
	}
	return nil
}

// keepWindowBase keeps the base backup for restoring window w from the
// start of the PITR window.
func (r *retentionPlanner) keepWindowBase(w Window) {
	plan := r.plan
	// A time target restores what committed before its whole
	// second, so the base must have finished by the second the
	// window starts in. An incremental whose chain is broken
	// cannot be restored, so it is no base.
	startSec := plan.windowStart.Truncate(time.Second)
	var base, earliest *backup.Manifest
	for _, m := range w.Backups {
		if _, known := r.byID[m.ID]; known && r.roots[m.ID] == "" {
			continue
		}
		if earliest == nil {
			earliest = m
		}
		if !m.EndTime.After(startSec) {
			base = m
		}
	}
	if base == nil {
		base = earliest
	}
	if base == nil {
		plan.Notes = append(plan.Notes, fmt.Sprintf("lineage %s domain %d: no backup in the restorable window %s can be restored (broken chains): nothing to keep for it",
			w.Lineage, w.Domain, w))
		return
	}
	if base.EndTime.After(startSec) {
		plan.Notes = append(plan.Notes, fmt.Sprintf("the PITR window starts at %s, but lineage %s domain %d is restorable only from %s (backup %s): nothing older exists to keep",
			plan.windowStart.Format(time.RFC3339), w.Lineage, w.Domain, base.EndTime.UTC().Format(time.RFC3339), base.ID))
	}
	seq, _ := backupSeq(base, w.Domain)
	gr := segGroup{w.Lineage, w.Domain}
	if c, ok := r.cutoff[gr]; !ok || seq < c {
		r.cutoff[gr], r.cutoffBy[gr] = seq, base.ID
	}
	why := fmt.Sprintf("pitr-window: base backup for restoring %s … %s (GTID %d-*-%d on)",
		retMaxTime(plan.windowStart, base.EndTime).UTC().Format(time.RFC3339), w.ToTime.UTC().Format(time.RFC3339), w.Domain, seq+1)
	if v, ok := r.byID[base.ID]; ok {
		retKeep(v, why)
	} else {
		// Listed by Coverage after our listing: a backup that just
		// finished. Nothing of it is in the plan, so it is kept.
		plan.Notes = append(plan.Notes, fmt.Sprintf("backup %s appeared while planning: kept", base.ID))
	}
}

// keepChains: a kept backup keeps the chain it builds on; a backup built
// on an unreadable manifest is kept too.
func (r *retentionPlanner) keepChains() {
	for _, v := range r.plan.Backups {
		if v.m == nil {
			continue
		}
		anc, _ := r.ancestors(v)
		for _, id := range anc {
			if a := r.byID[id]; a.m == nil {
				retKeep(v, fmt.Sprintf("builds on %s, whose manifest is unreadable", id))
			}
		}
	}
	for _, v := range r.plan.Backups {
		if !v.Keep {
			continue
		}
		anc, _ := r.ancestors(v)
		for _, id := range anc {
			retKeep(r.byID[id], "needed by kept incremental "+v.ID)
		}
	}
}

// explainDeletes says of each backup no rule keeps why each rule lets it go.
func (r *retentionPlanner) explainDeletes() {
	p := r.p
	for _, v := range r.plan.Backups {
		if v.Keep {
			continue
		}
		var why []string
		if p.KeepFull > 0 {
			if r.roots[v.ID] == "" {
				why = append(why, "not in any full backup's chain")
			} else {
				why = append(why, fmt.Sprintf("not in the chain of one of the %d newest full backups", p.KeepFull))
			}
		}
		if p.KeepWithin > 0 {
			why = append(why, fmt.Sprintf("finished %s, before %s", v.EndTime.UTC().Format(time.RFC3339), r.plan.keepSince.Format(time.RFC3339)))
		}
		if p.PITRWindow > 0 {
			why = append(why, "not needed to restore the PITR window")
		}
		if len(why) == 0 {
			why = append(why, "no retention rule is set (--force)")
		}
		v.Reasons = append(v.Reasons, "no rule keeps it: "+strings.Join(why, "; "))
	}
}

// planSegments applies pitr-window to the binlog segments and to data
// left without an index.
func (r *retentionPlanner) planSegments(ctx context.Context, cat *backup.Catalog) error {
	plan := r.plan
	segs, badSegs, err := (&Archive{Store: cat.Store}).Segments(ctx)
	if err != nil {
		return err
	}
	for k, e := range badSegs {
		plan.Notes = append(plan.Notes, fmt.Sprintf("binlog index %s is unreadable: kept (%v)", k, retOneLine(e.Error())))
	}
	for _, s := range segs {
		v := &SegmentVerdict{Key: s.Key(), Lineage: s.Lineage, Domain: s.Domain, From: s.From, To: s.To, End: s.EndTime(), seg: s}
		gr := segGroup{s.Lineage, s.Domain}
		c, hasBase := r.cutoff[gr]
		switch {
		case !s.EndTime().Before(plan.windowStart):
			v.Keep, v.Reason = true, fmt.Sprintf("pitr-window: closed %s, inside the window", s.EndTime().UTC().Format(time.RFC3339))
		case hasBase && s.To >= c:
			v.Keep, v.Reason = true, fmt.Sprintf("pitr-window: replayed from base backup %s (GTID %d-*-%d)", r.cutoffBy[gr], s.Domain, c)
		case hasBase:
			v.Reason = fmt.Sprintf("no rule keeps it: closed %s, before the window start %s, and ends before base backup %s (GTID %d-*-%d)",
				s.EndTime().UTC().Format(time.RFC3339), plan.windowStart.Format(time.RFC3339), r.cutoffBy[gr], s.Domain, c)
		default:
			v.Reason = fmt.Sprintf("no rule keeps it: closed %s, before the window start %s",
				s.EndTime().UTC().Format(time.RFC3339), plan.windowStart.Format(time.RFC3339))
		}
		plan.Segments = append(plan.Segments, v)
	}
	// Data without an index (an interrupted expire, or an archive pass that
	// stopped between data and index) is removed once it ends before the
	// base backup: an upload in progress always lies after the last archived
	// transaction, so it is never touched.
	orphans, err := segmentOrphans(ctx, cat.Store)
	if err != nil {
		return err
	}
	for _, o := range orphans {
		gr := segGroup{o.lineage, o.domain}
		if c, ok := r.cutoff[gr]; ok && o.to < c {
			plan.Segments = append(plan.Segments, &SegmentVerdict{Key: o.key, Lineage: o.lineage, Domain: o.domain, From: o.from, To: o.to,
				Reason: fmt.Sprintf("no rule keeps it: data without an index (an interrupted expire or archive pass), ends before base backup %s (GTID %d-*-%d)", r.cutoffBy[gr], o.domain, c)})
		}
	}
	return nil
}

type segmentOrphan struct {
	key, lineage string
	domain       uint32
	from, to     uint64
}

// segmentOrphans lists the segment keys that hold objects but no
// index.json.
func segmentOrphans(ctx context.Context, store backend.Backend) ([]segmentOrphan, error) {
	dirs := map[string]bool{} // segment key → has an index
	err := store.List(ctx, binlogsPrefix, func(oi backend.ObjectInfo) error {
		i := strings.LastIndexByte(oi.Key, '/')
		if i < 0 {
			return nil
		}
		dir, file := oi.Key[:i], oi.Key[i+1:]
		dirs[dir] = dirs[dir] || file == "index.json"
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the binlog archive: %w", err)
	}
	var out []segmentOrphan
	for dir, indexed := range dirs {
		if indexed {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(dir, binlogsPrefix), "/")
		if len(parts) != 3 {
			continue
		}
		fromS, toS, ok := strings.Cut(parts[2], "-")
		d, err1 := strconv.ParseUint(parts[1], 10, 32)
		from, err2 := strconv.ParseUint(fromS, 10, 64)
		to, err3 := strconv.ParseUint(toS, 10, 64)
		if !ok || err1 != nil || err2 != nil || err3 != nil || segmentKey(parts[0], uint32(d), from, to) != dir {
			continue // not a segment key: not ours to delete
		}
		out = append(out, segmentOrphan{key: dir, lineage: parts[0], domain: uint32(d), from: from, to: to})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, nil
}

func retMaxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func retOneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Counts returns how many backups and segments are kept and deleted (or to
// be deleted, in a dry run).
func (p *RetentionPlan) Counts() (keptBackups, delBackups, keptSegs, delSegs int) {
	for _, v := range p.Backups {
		if v.Keep {
			keptBackups++
		} else {
			delBackups++
		}
	}
	for _, v := range p.Segments {
		if v.Keep {
			keptSegs++
		} else {
			delSegs++
		}
	}
	return
}

// verb is the action Describe shows for a backup or segment.
func (p *RetentionPlan) verb(keep, deleted bool, errText string) string {
	switch {
	case keep:
		return "keep"
	case errText != "":
		return "FAILED"
	case deleted:
		return "deleted"
	case p.DryRun:
		return "would delete"
	default:
		return "delete"
	}
}

// describeSegments writes Describe's binlog segments section.
func (p *RetentionPlan) describeSegments(b *strings.Builder) {
	b.WriteString("binlog segments:\n")
	if len(p.Segments) == 0 {
		b.WriteString("  none\n")
	}
	// Kept segments are many (one per binlog file): one line per run
	// of them; --json has each with its reason.
	for i := 0; i < len(p.Segments); i++ {
		v := p.Segments[i]
		if !v.Keep {
			fmt.Fprintf(b, "  %-12s %d-*-%d … %d-*-%d (%s) %s\n", p.verb(v.Keep, v.Deleted, v.Error), v.Domain, v.From+1, v.Domain, v.To, v.Key, v.Reason)
			if v.Error != "" {
				fmt.Fprintf(b, "               error: %s\n", retOneLine(v.Error))
			}
			continue
		}
		j := i
		last := v.To
		for j+1 < len(p.Segments) && p.Segments[j+1].Keep && p.Segments[j+1].Lineage == v.Lineage && p.Segments[j+1].Domain == v.Domain {
			j++
			last = max(last, p.Segments[j].To)
		}
		fmt.Fprintf(b, "  %-12s %d segments %d-*-%d … %d-*-%d (lineage %s): pitr-window\n", "keep", j-i+1, v.Domain, v.From+1, v.Domain, last, v.Lineage)
		i = j
	}
}

// Describe prints the plan for an operator: every backup and segment with
// keep or delete and the reasons.
func (p *RetentionPlan) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "retention policy: %s (now %s)\n", p.Policy, p.Now.Format(time.RFC3339))
	verb := p.verb
	b.WriteString("backups:\n")
	if len(p.Backups) == 0 {
		b.WriteString("  none\n")
	}
	for _, v := range p.Backups {
		typ := v.Type
		if typ == "" {
			typ = "?"
		}
		fmt.Fprintf(&b, "  %-12s %s %-11s %s\n", verb(v.Keep, v.Deleted, v.Error), v.ID, typ, strings.Join(v.Reasons, "; "))
		if v.Error != "" {
			fmt.Fprintf(&b, "               error: %s\n", retOneLine(v.Error))
		}
	}
	if p.Policy.PITRWindow > 0 {
		p.describeSegments(&b)
	} else {
		b.WriteString("binlog segments: not managed (no --pitr-window)\n")
	}
	for _, n := range p.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	kb, db, ks, ds := p.Counts()
	if p.DryRun {
		fmt.Fprintf(&b, "summary (dry run, nothing deleted): %d backups kept, %d to delete; %d binlog segments kept, %d to delete", kb, db, ks, ds)
		return b.String()
	}
	gone := func(n int, deleted func(i int) bool) int {
		c := 0
		for i := 0; i < n; i++ {
			if deleted(i) {
				c++
			}
		}
		return c
	}
	xb := gone(len(p.Backups), func(i int) bool { return p.Backups[i].Deleted })
	xs := gone(len(p.Segments), func(i int) bool { return p.Segments[i].Deleted })
	fmt.Fprintf(&b, "summary: %d backups kept, %d deleted", kb, xb)
	if xb < db {
		fmt.Fprintf(&b, " (%d not deleted: stopped at an error)", db-xb)
	}
	fmt.Fprintf(&b, "; %d binlog segments kept, %d deleted", ks, xs)
	if xs < ds {
		fmt.Fprintf(&b, " (%d not deleted: stopped at an error)", ds-xs)
	}
	return b.String()
}
