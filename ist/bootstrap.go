package ist

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrRefused means the saved states do not prove which node is the most
// advanced; the error text carries the evidence.
var ErrRefused = errors.New("no safe bootstrap node")

// Decision is the outcome of ChooseBootstrap.
type Decision struct {
	Chosen int // index into the nodes given
	// NeedsSafeFlag is true when the chosen node's grastate.dat has
	// safe_to_bootstrap: 0, so Galera would refuse to bootstrap it until
	// the flag is set (bootstrap --apply).
	NeedsSafeFlag bool
	// Notes explain the choice (ties, nodes not given).
	Notes []string
}

// ChooseBootstrap names the node to bootstrap after a full outage from
// every node's saved state. expected is the cluster's size (0: unknown,
// taken as len(nodes)). It refuses, with the evidence, when:
//   - a node's grastate.dat marks its state unsafe (all-zero UUID);
//   - a node has no known position (it could be the most advanced);
//   - nodes belong to different histories (cluster state UUIDs);
//   - a node marked safe_to_bootstrap is behind another node (the
//     flag and the positions contradict each other);
//   - fewer nodes than expected are given and none of them is marked
//     safe_to_bootstrap by a clean shutdown (a missing node could be ahead).
func ChooseBootstrap(nodes []NodeState, expected int) (Decision, error) {
	if len(nodes) == 0 {
		return Decision{}, fmt.Errorf("%w: no node given", ErrRefused)
	}
	if err := checkDistinct(nodes); err != nil {
		return Decision{}, err
	}
	var evidence strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&evidence, "\n  %s: %s, safe_to_bootstrap %s, from %s", n.Label(), n.Position(), flag(n.SafeToBootstrap), n.Source)
	}
	refuse := func(format string, args ...any) (Decision, error) {
		return Decision{}, fmt.Errorf("%w: %s; positions:%s", ErrRefused, fmt.Sprintf(format, args...), evidence.String())
	}
	for _, n := range nodes {
		if n.StateUnsafe {
			return refuse("%s: grastate.dat has the all-zero UUID, so Galera marked its state unsafe (a crash during a DDL, or a detected inconsistency); its data must not seed the cluster and it will need a full SST. If another node is known to be ahead, leave this one out and lower --expect-nodes", n.Label())
		}
		if !n.Position().Known() {
			return refuse("%s has no known position (%s); it could be the most advanced node. Recover it with `galera-backup recover` on its host, or, if its data is known to be behind or lost, leave it out and lower --expect-nodes", n.Label(), n.Position())
		}
	}
	uuids := map[string][]string{}
	for _, n := range nodes {
		uuids[n.UUID] = append(uuids[n.UUID], n.Label())
	}
	if len(uuids) > 1 {
		var groups []string
		for u, ls := range uuids {
			groups = append(groups, u+": "+strings.Join(ls, ", "))
		}
		sort.Strings(groups)
		return refuse("the nodes belong to different histories (cluster state UUIDs): %s. Bootstrapping either history discards the other; decide which data to keep, then give only that history's nodes", strings.Join(groups, "; "))
	}
	top := nodes[0].Seqno
	for _, n := range nodes {
		top = max(top, n.Seqno)
	}
	for _, n := range nodes {
		if n.SafeToBootstrap && n.Seqno < top {
			return refuse("%s is marked safe_to_bootstrap at seqno %d but another node is ahead at seqno %d: the saved states contradict each other (a node ahead that is not marked safe); inspect the nodes before bootstrapping any", n.Label(), n.Seqno, top)
		}
	}
	var d Decision
	d.Chosen = -1
	var tied []string
	for i, n := range nodes {
		if n.Seqno != top {
			continue
		}
		tied = append(tied, n.Label())
		if d.Chosen < 0 || (n.SafeToBootstrap && !nodes[d.Chosen].SafeToBootstrap) {
			d.Chosen = i
		}
	}
	chosen := nodes[d.Chosen]
	if expected > len(nodes) {
		// Galera sets safe_to_bootstrap only on the last member of the last
		// primary component, on a clean shutdown: no node of this history
		// can have committed after it.
		if !(chosen.SafeToBootstrap && chosen.Source == SourceGrastate) {
			return refuse("%d of %d nodes given and none was the last to leave the cluster cleanly (safe_to_bootstrap: 1 in grastate.dat); a missing node could be the most advanced. Recover every node, or, if a node's data is lost, lower --expect-nodes", len(nodes), expected)
		}
		d.Notes = append(d.Notes, fmt.Sprintf("%d of %d nodes given; %s left the cluster last and cleanly, so no missing node can be ahead of it", len(nodes), expected, chosen.Label()))
	}
	if len(tied) > 1 {
		d.Notes = append(d.Notes, fmt.Sprintf("%s are equally advanced (seqno %d); %s was chosen (listed first)", strings.Join(tied, ", "), top, chosen.Label()))
	}
	d.NeedsSafeFlag = !chosen.SafeToBootstrap
	return d, nil
}

func checkDistinct(nodes []NodeState) error {
	seen := map[string]bool{}
	for _, n := range nodes {
		key := n.Host + "\x00" + n.DataDir
		if seen[key] {
			return fmt.Errorf("%w: %s is given twice", ErrRefused, n.Label())
		}
		seen[key] = true
	}
	return nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
