package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/storage/local"
)

// A backup that is still uploading has objects but no manifest, exactly
// like one whose process was killed. To tell them apart every run writes a
// lease, backups/<id>/lease.json, before its first data byte and rewrites
// it (its heartbeat) while it runs; the lease goes after the manifest is
// written. Objects of an id without a manifest are removed only when the
// run is provably abandoned:
//
//   - its lease names this machine (host name and boot id) and its process
//     (pid and process start time) no longer exists; or
//   - the owner is not on this machine (or its lease is unreadable), and
//     nothing under the id was written for longer than the grace period
//     (no heartbeat) and the id's own time is older than the grace period.
//
// Everything else is left alone: a run whose process is alive on this
// machine, a backup running on another node, or one whose owner cannot be
// checked and is not yet past the grace period.

// DefaultLeftoverGrace is how long an interrupted backup's objects are kept
// when its owner cannot be proven gone.
const DefaultLeftoverGrace = time.Hour

// RunLease identifies the process taking a backup (lease.json).
type RunLease struct {
	ID     string `json:"id"`
	Node   string `json:"node,omitempty"`
	Host   string `json:"host"`
	BootID string `json:"boot_id,omitempty"`
	PID    int    `json:"pid"`
	// PIDStart is the process start time (clock ticks since boot, from
	// /proc/<pid>/stat): a reused pid has another start time.
	PIDStart  uint64    `json:"pid_start,omitempty"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
}

func leaseObjectKey(id string) string { return backupsPrefix + id + "/lease.json" }

// self describes this process; fields that cannot be read stay empty, and
// an empty field never proves anything.
type self struct {
	host, bootID string
	pid          int
	start        uint64
}

func thisProcess() self {
	h, _ := os.Hostname()
	s := self{host: h, bootID: bootID(), pid: os.Getpid()}
	s.start, _ = processStart(s.pid)
	return s
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// processStart returns field 22 (starttime) of /proc/<pid>/stat.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// comm (field 2) is in parentheses and may hold spaces or ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// processGone reports whether the process pid with start time start
// provably no longer exists on this machine. A process that cannot be
// checked is not gone.
func processGone(pid int, start uint64) bool {
	if pid <= 0 || start == 0 {
		return false
	}
	got, err := processStart(pid)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	return got != start
}

// writeLease writes or refreshes the run's lease.
func (c *Catalog) writeLease(ctx context.Context, l RunLease) error {
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return c.Store.Put(ctx, leaseObjectKey(l.ID), bytes.NewReader(data), int64(len(data)))
}

func (c *Catalog) readLease(ctx context.Context, id string) (*RunLease, error) {
	rc, err := c.Store.Get(ctx, leaseObjectKey(id), 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var l RunLease
	if err := json.NewDecoder(io.LimitReader(rc, 1<<16)).Decode(&l); err != nil {
		return nil, fmt.Errorf("lease of %s: %w", id, err)
	}
	if l.ID != id {
		return nil, fmt.Errorf("lease under %s names %q", id, l.ID)
	}
	return &l, nil
}

// LeftoverPolicy decides which interrupted backups may be removed.
type LeftoverPolicy struct {
	// Grace: objects of an id whose owner cannot be proven gone are kept
	// until nothing under the id was written for this long and the id's
	// time is this old (default DefaultLeftoverGrace).
	Grace time.Duration
	// Keep is never touched (the caller's own id).
	Keep string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger says what is kept and why.
	Logger *slog.Logger

	me self // default thisProcess()
	// gone checks a process on this machine (default processGone).
	gone func(pid int, start uint64) bool
}

// Leftover is an interrupted (or still running) backup: objects without a
// manifest.
type Leftover struct {
	ID        string
	Keys      []string
	LastWrite time.Time // newest object
	Lease     *RunLease // nil when absent or unreadable
	// Abandoned is set when the policy proves the run is gone; Reason
	// says why it is, or why it is kept.
	Abandoned bool
	Reason    string
}

// Abandoned returns the ids that have objects but no manifest, sorted, each
// with the policy's verdict.
func (c *Catalog) Abandoned(ctx context.Context, p LeftoverPolicy) ([]*Leftover, error) {
	if p.Grace <= 0 {
		p.Grace = DefaultLeftoverGrace
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.gone == nil {
		p.gone = processGone
	}
	if p.me == (self{}) {
		p.me = thisProcess()
	}
	byID, err := c.leftovers(ctx)
	if err != nil {
		return nil, err
	}
	now := p.Now()
	var out []*Leftover
	for _, l := range byID {
		out = append(out, l)
		c.judgeLeftover(ctx, l, p, now)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// judgeLeftover sets l's verdict under policy p at time now.
func (c *Catalog) judgeLeftover(ctx context.Context, l *Leftover, p LeftoverPolicy, now time.Time) {
	id := l.ID
	switch {
	case id == p.Keep:
		l.Reason = "this run"
		return
	case !ValidID(id):
		l.Reason = "not a backup id: left for the operator"
		return
	}
	if lease, err := c.readLease(ctx, id); err == nil {
		l.Lease = lease
		if lease.Host != "" && lease.Host == p.me.host && lease.BootID != "" && lease.BootID == p.me.bootID && lease.PIDStart != 0 {
			if p.gone(lease.PID, lease.PIDStart) {
				l.Abandoned = true
				l.Reason = fmt.Sprintf("its process (pid %d on this host) is gone", lease.PID)
			} else {
				l.Reason = fmt.Sprintf("its process (pid %d on this host) is still running", lease.PID)
			}
			return
		}
	}
	idTime, _ := time.Parse("20060102T150405Z", id[:16])
	switch {
	case now.Sub(l.LastWrite) <= p.Grace:
		owner := "an unknown process"
		if l.Lease != nil {
			owner = fmt.Sprintf("pid %d on %s (node %s)", l.Lease.PID, l.Lease.Host, l.Lease.Node)
		}
		l.Reason = fmt.Sprintf("written %s ago by %s, within the grace period %s: in progress, or not yet provably abandoned",
			now.Sub(l.LastWrite).Round(time.Second), owner, p.Grace)
	case now.Sub(idTime) <= p.Grace:
		l.Reason = fmt.Sprintf("started %s ago, within the grace period %s", now.Sub(idTime).Round(time.Second), p.Grace)
	default:
		l.Abandoned = true
		l.Reason = fmt.Sprintf("no heartbeat for %s (grace period %s)", now.Sub(l.LastWrite).Round(time.Second), p.Grace)
	}
}

// DeleteLeftovers removes the objects of provably abandoned backups (see
// LeftoverPolicy) and, on local storage, the staging files their killed
// uploads left; it returns how many objects it removed.
func (c *Catalog) DeleteLeftovers(ctx context.Context, p LeftoverPolicy) (int, error) {
	left, err := c.Abandoned(ctx, p)
	if err != nil {
		return 0, err
	}
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := 0
	for _, l := range left {
		if !l.Abandoned {
			if l.ID != p.Keep {
				log.Info("keeping objects of a backup without a manifest", "backup", l.ID, "objects", len(l.Keys), "why", l.Reason)
			}
			continue
		}
		log.Info("removing an abandoned backup's objects", "backup", l.ID, "objects", len(l.Keys), "why", l.Reason)
		// The lease goes last: a removal cut short is retried by the next
		// run with the same verdict.
		sort.Slice(l.Keys, func(i, j int) bool {
			return l.Keys[j] == leaseObjectKey(l.ID) && l.Keys[i] != l.Keys[j]
		})
		for _, k := range l.Keys {
			if err := c.Store.Delete(ctx, k); err != nil {
				return n, fmt.Errorf("delete leftover %s: %w", k, err)
			}
			n++
		}
		if lb, ok := backend.As[*local.Backend](c.Store); ok {
			removeStaging(filepath.Join(lb.Root(), filepath.FromSlash(backupsPrefix+l.ID)), log)
		}
	}
	return n, nil
}

// removeStaging removes the local backend's staging files (an upload cut
// short by a kill) in an abandoned backup's directory, then the directory
// if it is empty.
func removeStaging(dir string, log *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), backend.TempPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				log.Warn("could not remove a staging file of an abandoned backup", "file", filepath.Join(dir, e.Name()), "err", err)
			}
		}
	}
	_ = os.Remove(dir) // only succeeds when empty
}

// scratchPrefix starts the name of mariabackup's local scratch directory;
// the owner's boot id, pid and start time follow, so that the next run can
// tell a killed run's directory from a running one.
const scratchPrefix = "gosst-mariabackup-"

var scratchRE = regexp.MustCompile(`^` + scratchPrefix + `([0-9a-f]{8})-([0-9]+)-([0-9]+)-[0-9]+$`)

func scratchPattern(me self) string {
	b := strings.ReplaceAll(me.bootID, "-", "")
	if len(b) < 8 {
		b = "00000000"
	}
	return fmt.Sprintf("%s%s-%d-%d-*", scratchPrefix, b[:8], me.pid, me.start)
}

// removeDeadScratch removes the scratch directories in dir that were
// created by processes of this boot that no longer exist (killed runs).
func removeDeadScratch(dir string, me self, gone func(int, uint64) bool, log *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	b := strings.ReplaceAll(me.bootID, "-", "")
	for _, e := range entries {
		m := scratchRE.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() || len(b) < 8 || m[1] != b[:8] {
			continue
		}
		pid, _ := strconv.Atoi(m[2])
		start, _ := strconv.ParseUint(m[3], 10, 64)
		if pid == me.pid || !gone(pid, start) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.RemoveAll(p); err != nil {
			log.Warn("could not remove a killed backup's scratch directory", "dir", p, "err", err)
			continue
		}
		log.Info("removed a killed backup's scratch directory", "dir", p, "pid", pid)
	}
}
