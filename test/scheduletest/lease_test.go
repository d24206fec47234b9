package scheduletest

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
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
	// Start from a cluster whose members are all Synced, as the service
	// itself requires (Eligible). This test runs first in the package,
	// seconds after nodes 2 and 3 joined by SST.
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
		// Exactly one winner. Before claims were read back, a full run saw
		// two: MariaDB can answer COMMIT with OK for a claim that lost
		// (rolled back by the winner's replicated write), and Claim now
		// counts a claim only once the row read back names it. On failure,
		// say what each node holds and whether the fence still holds.
		if len(won) != 1 {
			renewed := 0
			for _, w := range won {
				for _, l := range ls {
					if l.Node == w.Holder && l.Renew(ctx, w, time.Minute) == nil {
						renewed++
					}
				}
			}
			t.Fatalf("round %d: %d winners, want exactly 1 (%s; %d of them can renew); rows:%s",
				round, len(won), describeLeases(won), renewed, leaseRows(ctx, "test-mutex"))
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

// describeLeases names each lease's holder and epoch, for a failure message.
func describeLeases(ls []*schedule.Lease) string {
	var out []string
	for _, l := range ls {
		out = append(out, fmt.Sprintf("%s@%d", l.Holder, l.Epoch))
	}
	return strings.Join(out, " ")
}

// leaseRows reads job's row causally on every node, with the node's wsrep
// state, so that a double claim leaves what is needed to explain it.
func leaseRows(ctx context.Context, job string) string {
	var b strings.Builder
	for _, n := range clu.Nodes {
		row, err := causalRow(ctx, n, job)
		st, _ := n.Status(ctx, "wsrep_local_state_comment")
		lc, _ := n.Status(ctx, "wsrep_last_committed")
		fmt.Fprintf(&b, " %s=%s (%v; %s, last committed %s)", n.Name, row, err, st, lc)
	}
	return b.String()
}
