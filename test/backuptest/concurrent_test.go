package backuptest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/storage"
)

// TestConcurrentBackupsFromTwoNodes: node 1's backup is held after its
// data is stored and before its manifest (the window in which it looks
// exactly like an interrupted run), while node 2 takes a whole backup into
// the same storage. Node 2's run must leave node 1's objects alone; both
// backups complete and verify.
func TestConcurrentBackupsFromTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	store := t.TempDir()
	be, err := storage.Open(ctx, store, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	cat := &backup.Catalog{Store: be}
	n1, n2 := clu.Node(1), clu.Node(2)

	held := make(chan *backup.Manifest)
	release := make(chan struct{})
	ended := make(chan struct{})
	var g errgroup.Group
	var m1 *backup.Manifest
	g.Go(func() error {
		defer close(ended)
		var err error
		m1, err = backup.Run(ctx, cat, backup.Options{
			Node: mariadb.Target{Socket: n1.Socket, User: "root"},
			BeforeManifest: func(ctx context.Context, m *backup.Manifest) error {
				held <- m
				<-release
				return nil
			},
		})
		return err
	})
	var inProgress *backup.Manifest
	select {
	case inProgress = <-held:
	case <-ended:
		t.Fatalf("node 1's backup ended before its manifest: %v", g.Wait())
	}
	key := inProgress.Objects[0].Key
	if _, err := be.Stat(ctx, key); err != nil {
		close(release)
		t.Fatalf("node 1's data object is not stored while held: %v", err)
	}

	// Node 2's whole backup runs while node 1's is in progress. Its id must
	// sort after node 1's (ids are UTC seconds plus a random suffix): the
	// old rule removed exactly the manifest-less ids older than its own.
	// The wait is for the id generator's clock to reach the next second.
	for !time.Now().UTC().Truncate(time.Second).After(inProgress.StartTime.Truncate(time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
	mustGB(t, "backup", "--storage", store, "--socket", n2.Socket, "--user", "root", "--log-level", "warn")
	_, statErr := be.Stat(ctx, key)
	close(release)
	if err := g.Wait(); err != nil {
		t.Fatalf("node 1's backup failed after node 2's ran: %v", err)
	}
	if statErr != nil {
		t.Fatalf("node 2's backup removed node 1's in-progress object %s: %v", key, statErr)
	}
	list := listBackups(t, store)
	if len(list) != 2 || list[0].ID != m1.ID || list[0].Node != n1.Name || list[1].Node != n2.Name {
		t.Fatalf("want node 1's backup %s, then node 2's: got %d backups", m1.ID, len(list))
	}
	for _, m := range list {
		if out, code := gb(t, "verify", m.ID, "--storage", store, "--log-level", "warn"); code != 0 {
			t.Fatalf("verify %s (node %s): exit %d\n%s", m.ID, m.Node, code, out)
		}
	}
	// Nothing is left over: the leases went with the manifests.
	if left, err := cat.Leftovers(ctx); err != nil || len(left) != 0 {
		t.Fatalf("leftovers after two complete backups: %v %v", left, err)
	}
}

// TestIncrementalBuildsOnOwnNode: an incremental never builds on another
// node's backup (its LSNs belong to another datadir).
func TestIncrementalBuildsOnOwnNode(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	store := t.TempDir()
	n1, n2 := clu.Node(1), clu.Node(2)
	args := func(socket string, extra ...string) []string {
		return append([]string{"backup", "--storage", store, "--socket", socket, "--user", "root", "--log-level", "warn"}, extra...)
	}
	mustGB(t, args(n1.Socket)...)
	full1 := listBackups(t, store)[0]

	// Node 2 has no backup of its own: refused, with the reason.
	out, code := gb(t, args(n2.Socket, "--incremental")...)
	if code == 0 || !strings.Contains(out, "no backup of node "+n2.Name) || !strings.Contains(out, "taken by node "+n1.Name) || !strings.Contains(out, "take a full backup of this node first") {
		t.Fatalf("incremental of node 2 after node 1's full: exit %d\n%s", code, out)
	}
	if list := listBackups(t, store); len(list) != 1 {
		t.Fatalf("a refused incremental stored a backup: %+v", list)
	}

	// With a full of its own, node 2's incremental is fine; node 1's
	// incremental then builds on node 1's full, not on the storage's latest.
	mustGB(t, args(n2.Socket)...)
	mustGB(t, args(n1.Socket, "--incremental")...)
	list := listBackups(t, store)
	if len(list) != 3 {
		t.Fatalf("want 3 backups, got %+v", list)
	}
	// Ids have one-second resolution: backups of the same second list in
	// either order, so pick them by node and type.
	var inc1, full2 *backup.Manifest
	for _, m := range list {
		switch {
		case m.Type == backup.TypeIncremental:
			inc1 = m
		case m.Node == n2.Name:
			full2 = m
		}
	}
	if inc1 == nil || full2 == nil {
		t.Fatalf("want node 2's full and node 1's incremental: %+v", list)
	}
	if inc1.Node != n1.Name || inc1.Parent != full1.ID {
		t.Fatalf("node 1's incremental: type %s node %s parent %s, want parent %s (node 1's full, not node 2's %s)",
			inc1.Type, inc1.Node, inc1.Parent, full1.ID, full2.ID)
	}
	if inc1.ID <= full1.ID {
		t.Fatalf("the incremental %s does not sort after its parent %s", inc1.ID, full1.ID)
	}
	if full1.Lineage == "" || full1.Lineage == full2.Lineage {
		t.Fatalf("datadir lineages: node 1 %q, node 2 %q", full1.Lineage, full2.Lineage)
	}
	// The base check compares the server's Innodb_lsn_current with the
	// base's end LSN: the status variable must exist for it to run.
	lsn, err := n1.QueryString(context.Background(), "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'INNODB_LSN_CURRENT'")
	if cur, perr := strconv.ParseInt(lsn, 10, 64); err != nil || perr != nil || cur < inc1.LSN.To {
		t.Fatalf("Innodb_lsn_current %q (%v) is not a number at or after the incremental's end LSN %d", lsn, err, inc1.LSN.To)
	}
	if out, code := gb(t, "verify", inc1.ID, "--storage", store, "--log-level", "warn"); code != 0 {
		t.Fatalf("verify the incremental: exit %d\n%s", code, out)
	}
}

// TestFailedBackupRemovesItsObjects: a run that fails after its data is
// stored (here: the hook before the manifest fails) removes its data
// object and its lease at once; nothing waits for a later run.
func TestFailedBackupRemovesItsObjects(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	store := t.TempDir()
	be, err := storage.Open(ctx, store, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	cat := &backup.Catalog{Store: be}
	var key string
	_, err = backup.Run(ctx, cat, backup.Options{
		Node: mariadb.Target{Socket: clu.Node(1).Socket, User: "root"},
		BeforeManifest: func(ctx context.Context, m *backup.Manifest) error {
			key = m.Objects[0].Key
			if _, err := be.Stat(ctx, key); err != nil {
				t.Errorf("data object not stored before the manifest: %v", err)
			}
			return errors.New("injected failure before the manifest")
		},
	})
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("backup with a failing hook: %v", err)
	}
	if left, err := cat.Leftovers(ctx); err != nil || len(left) != 0 {
		t.Fatalf("the failed run left objects: %v %v", left, err)
	}
	if list := listBackups(t, store); len(list) != 0 {
		t.Fatalf("a failed backup is listed: %+v", list)
	}
}
