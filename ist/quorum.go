package ist

import (
	"fmt"
	"strings"
)

// LiveNode is what a running node reports, for ChooseQuorumBootstrap.
type LiveNode struct {
	Label         string `json:"node"`
	Err           string `json:"error,omitempty"`          // why it could not be asked
	ClusterStatus string `json:"wsrep_cluster_status"`     // Primary, non-Primary, Disconnected
	StateUUID     string `json:"wsrep_cluster_state_uuid"` // history
	LastCommitted int64  `json:"wsrep_last_committed"`
}

// ChooseQuorumBootstrap names the node on which to set pc.bootstrap=YES
// when a running cluster lost quorum: every node answered, none is in a
// primary component, all share one history, and the one with the highest
// wsrep_last_committed wins (the first listed on a tie). It refuses when a
// node did not answer or fewer than expected were given (the missing ones
// could form a primary component elsewhere: a second one would split the
// cluster), when any node is Primary (the cluster has quorum; the others
// rejoin it), and when histories differ.
func ChooseQuorumBootstrap(nodes []LiveNode, expected int) (int, error) {
	if len(nodes) == 0 {
		return 0, fmt.Errorf("%w: no node given", ErrRefused)
	}
	var ev strings.Builder
	for _, n := range nodes {
		if n.Err != "" {
			fmt.Fprintf(&ev, "\n  %s: no answer: %s", n.Label, n.Err)
			continue
		}
		fmt.Fprintf(&ev, "\n  %s: %s, %s:%d", n.Label, n.ClusterStatus, n.StateUUID, n.LastCommitted)
	}
	refuse := func(format string, args ...any) (int, error) {
		return 0, fmt.Errorf("%w: %s; nodes:%s", ErrRefused, fmt.Sprintf(format, args...), ev.String())
	}
	for _, n := range nodes {
		if n.Err != "" {
			return refuse("%s did not answer; it may be part of a primary component elsewhere, and a second primary component splits the cluster. If it is down, leave it out and lower --expect-nodes", n.Label)
		}
		if n.ClusterStatus == "Primary" {
			return refuse("%s is in a primary component: the cluster has quorum; restart or reconnect the other nodes instead", n.Label)
		}
	}
	if expected > len(nodes) {
		return refuse("%d of %d nodes given; a missing node may be part of a primary component elsewhere. If it is down, lower --expect-nodes", len(nodes), expected)
	}
	best := 0
	for i, n := range nodes {
		if n.StateUUID != nodes[0].StateUUID {
			return refuse("the nodes report different cluster state UUIDs")
		}
		if n.LastCommitted > nodes[best].LastCommitted {
			best = i
		}
	}
	if nodes[best].LastCommitted < 0 {
		return refuse("no node reports a committed seqno")
	}
	return best, nil
}
