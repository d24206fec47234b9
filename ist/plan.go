package ist

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Galera's view of a member's state (gcs_node_state), in its order: a
// donor must be Synced.
const (
	MemberNonPrimary = iota
	MemberPrimary
	MemberJoiner
	MemberDonor
	MemberJoined
	MemberSynced
)

// MemberStateFromComment maps wsrep_local_state_comment to Galera's member
// state.
func MemberStateFromComment(s string) int {
	switch {
	case s == "Synced":
		return MemberSynced
	case strings.HasPrefix(s, "Donor"):
		return MemberDonor
	case s == "Joined":
		return MemberJoined
	case strings.HasPrefix(s, "Joining"), s == "Joiner":
		return MemberJoiner
	}
	return MemberPrimary
}

// Member is a running cluster member as plan sees it.
type Member struct {
	Name          string // wsrep_node_name
	Index         int    // wsrep_local_index: Galera's member order
	State         int    // Member* constant
	StateComment  string // wsrep_local_state_comment
	Segment       int    // gmcast.segment
	ClusterUUID   string // wsrep_cluster_state_uuid
	LastCommitted int64  // wsrep_last_committed
	CachedDownto  int64  // wsrep_local_cached_downto; -1 unknown/empty
	Arbitrator    bool
	// AvgWriteSetBytes and DataBytes feed the size estimate (0: unknown).
	AvgWriteSetBytes int64
	DataBytes        int64
}

// Joiner is the node about to (re)start.
type Joiner struct {
	Position Position // saved or recovered; Seqno -1 when none
	Segment  int
	// DonorList is the joiner's wsrep_sst_donor, verbatim.
	DonorList string
}

// Plan is the predicted state transfer.
type Plan struct {
	Transfer string `json:"transfer"` // "IST", "SST", "none", or "wait" (no donor yet)
	Donor    string `json:"donor,omitempty"`
	// Wait is set when Galera would keep the joiner waiting for a donor
	// (a named donor is busy, or no member can donate yet).
	Wait   bool   `json:"wait,omitempty"`
	Reason string `json:"reason"`
	// Bytes estimates the transfer: for IST the missing write-sets times
	// the donor's average write-set size, for SST the donor's data size.
	Bytes int64 `json:"bytes"`
}

// ErrNoDonor means Galera would find no donor at all (a named donor is
// missing and the list has no trailing comma).
var ErrNoDonor = errors.New("no state transfer donor")

// PlanTransfer predicts what Galera does when the joiner starts while
// members run, following gcs_group.cpp (galera-4 26.4): an IST-aware donor
// pick (names in wsrep_sst_donor first, then by segment, each preferring
// the highest wsrep_local_cached_downto that still covers the joiner), else
// the SST pick (names in order; a busy named member makes the joiner wait;
// an empty list or a trailing comma allows any Synced member, same segment
// first, by member index). The chosen donor then serves IST iff its gcache
// still holds seqno joiner+1, else a full SST.
func PlanTransfer(j Joiner, members []Member) (Plan, error) {
	if len(members) == 0 {
		return Plan{}, errors.New("no running member: the node cannot join; if the whole cluster is down, see 'galera-backup bootstrap'")
	}
	group := members[0].ClusterUUID
	var groupSeqno int64 = -1
	for _, m := range members {
		if m.ClusterUUID != group {
			return Plan{}, fmt.Errorf("members report different cluster state UUIDs (%s: %s, %s: %s): they are not one cluster", members[0].Name, group, m.Name, m.ClusterUUID)
		}
		groupSeqno = max(groupSeqno, m.LastCommitted)
	}
	pos := j.Position
	sameHistory := pos.Known() && pos.UUID == group
	if sameHistory && pos.Seqno >= groupSeqno {
		return Plan{Transfer: "none", Reason: fmt.Sprintf("this node is at %d, the cluster at %d: nothing to transfer", pos.Seqno, groupSeqno)}, nil
	}
	donor, wait, how, err := pickDonor(j, members, sameHistory)
	if err != nil {
		return Plan{}, err
	}
	if wait {
		return Plan{Transfer: "wait", Wait: true, Reason: how}, nil
	}
	d := members[donor]
	p := Plan{Donor: d.Name}
	switch {
	case !pos.Known() && pos.UUID != "" && pos.UUID != ZeroUUID:
		p.Transfer, p.Reason = "SST", fmt.Sprintf("this node has no usable position (%s): Galera asks for a full SST", pos)
	case !pos.Known():
		p.Transfer, p.Reason = "SST", "this node has no data or no saved position (seqno -1): Galera asks for a full SST"
	case pos.UUID != group:
		p.Transfer, p.Reason = "SST", fmt.Sprintf("this node's history %s is not the cluster's %s: only a full SST can replace it", pos.UUID, group)
	case d.CachedDownto < 0:
		p.Transfer, p.Reason = "SST", fmt.Sprintf("donor %s reports no gcache range: IST impossible", d.Name)
	case d.CachedDownto <= pos.Seqno+1:
		p.Transfer = "IST"
		p.Reason = fmt.Sprintf("donor %s's gcache holds %d..%d and this node is at %d: it needs %d write-sets", d.Name, d.CachedDownto, d.LastCommitted, pos.Seqno, d.LastCommitted-pos.Seqno)
	default:
		p.Transfer = "SST"
		p.Reason = fmt.Sprintf("donor %s's gcache starts at %d, this node is at %d: write-sets %d..%d are gone", d.Name, d.CachedDownto, pos.Seqno, pos.Seqno+1, d.CachedDownto-1)
	}
	if how != "" {
		p.Reason += "; " + how
	}
	switch p.Transfer {
	case "IST":
		p.Bytes = (d.LastCommitted - pos.Seqno) * d.AvgWriteSetBytes
	case "SST":
		p.Bytes = d.DataBytes
	}
	return p, nil
}

// donorEntries splits wsrep_sst_donor at commas, as Galera does; an empty
// entry (an empty list, a trailing comma, ",,") stands for "any member".
func donorEntries(list string) []string { return strings.Split(list, ",") }

// nameMatches compares as Galera does: the member's name must start with
// the requested name (strncmp over the requested length).
func nameMatches(member, requested string) bool { return strings.HasPrefix(member, requested) }

// byIndex returns the members' positions in Galera's member order.
func byIndex(members []Member) []int {
	order := make([]int, len(members))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return members[a].Index - members[b].Index })
	return order
}

const (
	pickWait        = -1 // EAGAIN: a donor will become available
	pickUnreachable = -2 // EHOSTUNREACH: a named donor is not there
)

func synced(m Member) bool { return m.State >= MemberSynced && !m.Arbitrator }

func pickDonor(j Joiner, members []Member, sameHistory bool) (idx int, wait bool, how string, err error) {
	if sameHistory {
		if i, how, ok := istPick(j, members); ok {
			return i, false, how, nil
		}
	}
	// group_for_each_donor_in_string: names in order; an empty entry means
	// any member, except that after a busy named member only a trailing
	// comma lets Galera look further.
	list := j.DonorList
	dcomma := strings.HasSuffix(list, ",")
	res := pickUnreachable
	for _, e := range donorEntries(list) {
		var i int
		if e != "" {
			i = findByName(members, e)
		} else if res == pickWait && !dcomma {
			i = pickWait
		} else {
			i = findBySegment(j, members)
		}
		if i >= 0 {
			switch {
			case list == "":
				how = "any Synced member (the first in this node's segment)"
			case e == "":
				how = fmt.Sprintf("no member named in wsrep_sst_donor %q is Synced; the empty entry (trailing comma) allows any", list)
			default:
				how = fmt.Sprintf("wsrep_sst_donor %q names it", list)
			}
			return i, false, how, nil
		}
		if res != pickWait {
			res = i
		}
	}
	if res == pickWait {
		return 0, true, fmt.Sprintf("no donor is available now (wsrep_sst_donor %q): Galera keeps the node waiting until one is Synced", list), nil
	}
	return 0, false, "", fmt.Errorf("%w: wsrep_sst_donor %q names no member of the cluster that can donate, and has no trailing comma to allow any other: Galera refuses the state transfer and the node does not join", ErrNoDonor, list)
}

// findByName is group_find_node_by_name: the first member (by index)
// whose name starts with name; Synced → it, Joiner/Donor/Joined → wait,
// otherwise unreachable.
func findByName(members []Member, name string) int {
	for _, i := range byIndex(members) {
		m := members[i]
		if !nameMatches(m.Name, name) {
			continue
		}
		switch {
		case synced(m):
			return i
		case m.State >= MemberJoiner:
			return pickWait
		}
		return pickUnreachable
	}
	return pickUnreachable
}

// istPick is group_find_ist_donor: skipped when the joiner is within the
// safety gap (1/128 of the cached range, at most 2^20) above the lowest
// cached seqno, else named members that cover the joiner (highest cached
// seqno wins), else any covering Synced member, same segment first.
func istPick(j Joiner, members []Member) (int, string, bool) {
	var lowest int64 = -1
	var conf int64 = -1
	for _, m := range members {
		if m.CachedDownto >= 0 && (lowest < 0 || m.CachedDownto < lowest) {
			lowest = m.CachedDownto
		}
		conf = max(conf, m.LastCommitted)
	}
	if lowest < 0 {
		return 0, "", false
	}
	conf++ // the configuration change of the join itself
	gap := min((conf-lowest)>>7, 1<<20)
	seq := j.Position.Seqno
	if seq < lowest+gap {
		return 0, "", false
	}
	covers := func(m Member) bool { return synced(m) && m.CachedDownto >= 0 && m.CachedDownto <= seq+1 }
	best := -1
	named := false
	if j.DonorList != "" {
		for _, n := range donorEntries(j.DonorList) {
			if n == "" {
				break
			}
			named = true
			for _, i := range byIndex(members) {
				if m := members[i]; nameMatches(m.Name, n) && covers(m) {
					if best < 0 || m.CachedDownto >= members[best].CachedDownto {
						best = i
					}
					break
				}
			}
		}
	}
	if best >= 0 {
		return best, fmt.Sprintf("wsrep_sst_donor %q names it and its gcache covers this node", j.DonorList), true
	}
	local, remote := -1, -1
	for _, i := range byIndex(members) {
		m := members[i]
		if !covers(m) {
			continue
		}
		p := &remote
		if m.Segment == j.Segment {
			p = &local
		}
		if *p < 0 || m.CachedDownto >= members[*p].CachedDownto {
			*p = i
		}
	}
	how := "Galera prefers a member whose gcache covers this node"
	if named {
		how = fmt.Sprintf("no member named in wsrep_sst_donor %q covers this node, and Galera then takes any member that does (for IST the list is only a preference)", j.DonorList)
	}
	if local >= 0 {
		return local, how, true
	}
	if remote >= 0 {
		return remote, how + ", from another segment", true
	}
	return 0, "", false
}

// findBySegment is group_find_node_by_state: the first Synced member of
// the joiner's segment by member index; if that segment has no member that
// could ever donate, the last Synced member elsewhere; else wait.
func findBySegment(j Joiner, members []Member) int {
	donor := -1
	hnss := false
	for _, i := range byIndex(members) {
		m := members[i]
		if synced(m) {
			donor = i
		}
		if m.Segment == j.Segment {
			if donor == i {
				return i
			}
			if m.State >= MemberJoiner {
				hnss = true
			}
		}
	}
	if !hnss && donor >= 0 {
		return donor
	}
	return pickWait
}
