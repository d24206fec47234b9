package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/gosst/gosst/storage/backend"
)

// Key layout in the storage backend (no key is a "directory" of another):
//
//	backups/<id>/data.xbstream.<codec>[.age]   the backup stream
//	backups/<id>/lease.json                    while the run is alive (lease.go)
//	backups/<id>/manifest.json                 written last: the backup exists
const backupsPrefix = "backups/"

func dataKey(id, ext string) string { return backupsPrefix + id + "/data.xbstream" + ext }
func manifestKey(id string) string  { return backupsPrefix + id + "/manifest.json" }

// Catalog lists and loads the backups in one storage backend.
type Catalog struct {
	Store backend.Backend
}

// ErrNoBackup is returned when an id or "latest" names no complete backup.
var ErrNoBackup = errors.New("no such backup")

// List returns every complete backup (one with a readable manifest),
// oldest first. Manifests that cannot be read are returned in bad, keyed by
// id, so an operator sees them instead of losing them silently.
func (c *Catalog) List(ctx context.Context) (list []*Manifest, bad map[string]error, err error) {
	var ids []string
	err = c.Store.List(ctx, backupsPrefix, func(oi backend.ObjectInfo) error {
		rest := strings.TrimPrefix(oi.Key, backupsPrefix)
		id, file, ok := strings.Cut(rest, "/")
		if ok && file == "manifest.json" && ValidID(id) {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list backups: %w", err)
	}
	list, bad = LoadEach(ctx, ids, c.Load)
	return list, bad, nil
}

// LoadEach sorts keys and loads each with load: what loads is returned in
// key order, what does not in bad under its key (bad is never nil). The
// listings of backups and of archived binlogs read their objects this way,
// so one unreadable object is reported and never hides the others.
func LoadEach[T any](ctx context.Context, keys []string, load func(context.Context, string) (T, error)) (list []T, bad map[string]error) {
	sort.Strings(keys)
	bad = map[string]error{}
	for _, k := range keys {
		v, err := load(ctx, k)
		if err != nil {
			bad[k] = err
			continue
		}
		list = append(list, v)
	}
	return list, bad
}

// Load reads and validates one manifest.
func (c *Catalog) Load(ctx context.Context, id string) (*Manifest, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q is not a backup id (like 20261126T052000Z-a1b2c3)", ErrNoBackup, id)
	}
	rc, err := c.Store.Get(ctx, manifestKey(id), 0, -1)
	if errors.Is(err, backend.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoBackup, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest of %s: %w", id, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 16<<20+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest of %s: %w", id, err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, err
	}
	if m.ID != id {
		return nil, fmt.Errorf("%w: manifest under %s says id %s", ErrManifest, id, m.ID)
	}
	return m, nil
}

// Resolve turns "latest" or an id into a manifest.
func (c *Catalog) Resolve(ctx context.Context, ref string) (*Manifest, error) {
	if ref != "latest" {
		return c.Load(ctx, ref)
	}
	list, _, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%w: the storage holds no complete backup", ErrNoBackup)
	}
	return list[len(list)-1], nil
}

// Chain returns the backups needed to restore m: its full backup first,
// then each incremental up to and including m.
func (c *Catalog) Chain(ctx context.Context, m *Manifest) ([]*Manifest, error) {
	chain := []*Manifest{m}
	for cur := m; cur.Type == TypeIncremental; {
		if len(chain) > 1000 {
			return nil, fmt.Errorf("%w: incremental chain of %s longer than 1000", ErrManifest, m.ID)
		}
		p, err := c.Load(ctx, cur.Parent)
		if err != nil {
			return nil, fmt.Errorf("backup %s needs its parent %s: %w", cur.ID, cur.Parent, err)
		}
		// LSNs only order the changes of one datadir: an incremental on
		// another node's (or another datadir's) backup restores silently
		// inconsistent data. Older gosst versions could take such chains.
		if cur.Node != "" && p.Node != "" && cur.Node != p.Node {
			return nil, fmt.Errorf("%w: incremental %s of node %s builds on %s of node %s: its changes were found by another datadir's LSNs, so the chain cannot be restored consistently; restore %s or a later full backup", ErrManifest, cur.ID, cur.Node, p.ID, p.Node, p.ID)
		}
		if cur.Lineage != "" && p.Lineage != "" && cur.Lineage != p.Lineage {
			return nil, fmt.Errorf("%w: incremental %s builds on %s of another datadir (%q, then %q); restore %s or a later full backup", ErrManifest, cur.ID, p.ID, cur.Lineage, p.Lineage, p.ID)
		}
		if p.LSN.To != cur.LSN.From {
			return nil, fmt.Errorf("%w: %s starts at LSN %d but its parent %s ends at %d", ErrManifest, cur.ID, cur.LSN.From, p.ID, p.LSN.To)
		}
		chain = append(chain, p)
		cur = p
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain, nil
}

// Leftovers returns ids that have objects but no manifest: interrupted
// backups, or backups still running (see Abandoned). They are invisible to
// list and restore.
func (c *Catalog) Leftovers(ctx context.Context) (map[string][]string, error) {
	byID, err := c.leftovers(ctx)
	if err != nil {
		return nil, err
	}
	keys := make(map[string][]string, len(byID))
	for id, l := range byID {
		keys[id] = l.Keys
	}
	return keys, nil
}

// leftovers lists the ids under backups/ that have objects but no
// manifest, each with its keys (in listing order) and newest write; the
// policy fields are left for Abandoned.
func (c *Catalog) leftovers(ctx context.Context) (map[string]*Leftover, error) {
	byID := map[string]*Leftover{}
	withManifest := map[string]bool{}
	err := c.Store.List(ctx, backupsPrefix, func(oi backend.ObjectInfo) error {
		id, file, ok := strings.Cut(strings.TrimPrefix(oi.Key, backupsPrefix), "/")
		if !ok {
			return nil
		}
		if file == "manifest.json" {
			withManifest[id] = true
			return nil
		}
		l := byID[id]
		if l == nil {
			l = &Leftover{ID: id}
			byID[id] = l
		}
		l.Keys = append(l.Keys, oi.Key)
		if oi.ModTime.After(l.LastWrite) {
			l.LastWrite = oi.ModTime
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	for id := range withManifest {
		delete(byID, id)
	}
	return byID, nil
}

// Delete removes backup m: the manifest first, so that a deletion interrupted
// afterwards leaves an unlisted, interrupted backup and never a listed one
// with missing data; then the objects it names and anything else under its
// prefix.
func (c *Catalog) Delete(ctx context.Context, m *Manifest) error {
	store := c.Store
	prefix := backupsPrefix + m.ID + "/"
	if err := store.Delete(ctx, manifestKey(m.ID)); err != nil {
		return fmt.Errorf("delete the manifest of %s (the backup is still listed and complete): %w", m.ID, err)
	}
	leftover := func(err error) error {
		return fmt.Errorf("backup %s is no longer listed, but some of its objects remain (the next backup removes them as an interrupted backup): %w", m.ID, err)
	}
	for _, o := range m.Objects {
		if !strings.HasPrefix(o.Key, prefix) {
			continue // never delete outside the backup's own prefix
		}
		if err := store.Delete(ctx, o.Key); err != nil {
			return leftover(fmt.Errorf("delete %s: %w", o.Key, err))
		}
	}
	var rest []string
	if err := store.List(ctx, prefix, func(oi backend.ObjectInfo) error {
		rest = append(rest, oi.Key)
		return nil
	}); err != nil {
		return leftover(fmt.Errorf("list %s: %w", prefix, err))
	}
	for _, k := range rest {
		if err := store.Delete(ctx, k); err != nil {
			return leftover(fmt.Errorf("delete %s: %w", k, err))
		}
	}
	return nil
}
