package ist

import (
	"errors"
	"strings"
	"testing"
)

const (
	grp   = "6b94087a-e947-11f1-b506-2f33047b60b8"
	other = "0c779d86-e947-11f1-b506-2f33047b60b8"
)

func mem(name string, idx, state, seg int, cached, last int64) Member {
	return Member{Name: name, Index: idx, State: state, Segment: seg, ClusterUUID: grp, CachedDownto: cached,
		LastCommitted: last, AvgWriteSetBytes: 100, DataBytes: 1 << 30}
}

func TestPlanTransfer(t *testing.T) {
	at := func(seqno int64) Position { return Position{UUID: grp, Seqno: seqno} }
	three := []Member{mem("node1", 0, MemberSynced, 0, 100, 1000), mem("node2", 1, MemberSynced, 0, 500, 1000)}
	for _, tc := range []struct {
		name       string
		j          Joiner
		members    []Member
		transfer   string
		donor      string
		wait       bool
		reason     []string
		bytes      int64
		errIs      error
		errContain string
	}{
		{name: "inside the window of both: highest cached_downto that covers wins",
			j: Joiner{Position: at(800)}, members: three, transfer: "IST", donor: "node2", bytes: 200 * 100,
			reason: []string{"gcache holds 500..1000", "at 800", "200 write-sets"}},
		{name: "only node1 covers", j: Joiner{Position: at(300)}, members: three, transfer: "IST", donor: "node1",
			reason: []string{"node1's gcache holds 100..1000"}},
		{name: "gcache rolled over everywhere: SST from the first Synced member",
			j: Joiner{Position: at(50)}, members: three, transfer: "SST", donor: "node1", bytes: 1 << 30,
			reason: []string{"gcache starts at 100, this node is at 50", "write-sets 51..99 are gone"}},
		{name: "exactly seqno+1 is still IST", j: Joiner{Position: at(99)}, members: three, transfer: "IST", donor: "node1"},
		{name: "empty node", j: Joiner{Position: Position{UUID: ZeroUUID, Seqno: -1}}, members: three,
			transfer: "SST", donor: "node1", reason: []string{"no data or no saved position"}},
		{name: "crashed, not recovered", j: Joiner{Position: Position{UUID: grp, Seqno: -1}}, members: three,
			transfer: "SST", donor: "node1", reason: []string{"no usable position"}},
		{name: "other cluster", j: Joiner{Position: Position{UUID: other, Seqno: 900}}, members: three,
			transfer: "SST", donor: "node1", reason: []string{"history " + other, "not the cluster's " + grp}},
		{name: "up to date", j: Joiner{Position: at(1000)}, members: three, transfer: "none"},
		{name: "named donor covers", j: Joiner{Position: at(800), DonorList: "node1"}, members: three,
			transfer: "IST", donor: "node1", reason: []string{`wsrep_sst_donor "node1" names it`}},
		{name: "named donor lacks the range: Galera takes another that has it, trailing comma or not",
			j: Joiner{Position: at(300), DonorList: "node2"}, members: three, transfer: "IST", donor: "node1",
			reason: []string{"no member named", "only a preference"}},
		{name: "nobody has the range, named donor gets the SST",
			j: Joiner{Position: at(50), DonorList: "node2"}, members: three, transfer: "SST", donor: "node2",
			reason: []string{`wsrep_sst_donor "node2" names it`}},
		{name: "name is a prefix match", j: Joiner{Position: at(50), DonorList: "node"}, members: three,
			transfer: "SST", donor: "node1"},
		{name: "named donor missing, no trailing comma", j: Joiner{Position: at(50), DonorList: "node9"}, members: three,
			errIs: ErrNoDonor, errContain: "trailing comma"},
		{name: "named donor missing, trailing comma", j: Joiner{Position: at(50), DonorList: "node9,"}, members: three,
			transfer: "SST", donor: "node1", reason: []string{"trailing comma"}},
		{name: "named donor busy: wait", j: Joiner{Position: at(50), DonorList: "node2"},
			members: []Member{mem("node1", 0, MemberSynced, 0, 100, 1000), mem("node2", 1, MemberDonor, 0, 500, 1000)}, wait: true, transfer: "wait"},
		{name: "named donor busy, trailing comma: any other", j: Joiner{Position: at(50), DonorList: "node2,"},
			members: []Member{mem("node1", 0, MemberSynced, 0, 100, 1000), mem("node2", 1, MemberDonor, 0, 500, 1000)}, transfer: "SST", donor: "node1"},
		{name: "a donor is not Synced, cannot give IST", j: Joiner{Position: at(800)},
			members: []Member{mem("node1", 0, MemberSynced, 0, 100, 1000), mem("node2", 1, MemberDonor, 0, 500, 1000)}, transfer: "IST", donor: "node1"},
		{name: "SST prefers the joiner's segment", j: Joiner{Position: at(50), Segment: 1},
			members: []Member{mem("a", 0, MemberSynced, 0, 100, 1000), mem("b", 1, MemberSynced, 1, 100, 1000)}, transfer: "SST", donor: "b"},
		{name: "IST prefers the joiner's segment over a higher cached seqno", j: Joiner{Position: at(800), Segment: 1},
			members: []Member{mem("a", 0, MemberSynced, 0, 700, 1000), mem("b", 1, MemberSynced, 1, 100, 1000)}, transfer: "IST", donor: "b"},
		{name: "segment without any possible donor: another segment's", j: Joiner{Position: at(50), Segment: 2},
			members: []Member{mem("a", 0, MemberSynced, 0, 100, 1000), mem("b", 1, MemberSynced, 1, 100, 1000)}, transfer: "SST", donor: "b"},
		{name: "segment whose member is still joining: wait", j: Joiner{Position: at(50), Segment: 1},
			members: []Member{mem("a", 0, MemberSynced, 0, 100, 1000), mem("b", 1, MemberJoiner, 1, -1, 1000)}, wait: true, transfer: "wait"},
		{name: "order is wsrep_local_index", j: Joiner{Position: at(50)},
			members: []Member{mem("x", 2, MemberSynced, 0, 100, 1000), mem("y", 1, MemberSynced, 0, 100, 1000)}, transfer: "SST", donor: "y"},
		{name: "within the safety gap the IST pick is skipped but the SST pick's donor still has the range",
			// lowest 100, conf 1001: gap 7; joiner 104 < 107 → SST-oriented pick (node1, first) → its gcache covers → IST
			j: Joiner{Position: at(104)}, members: three, transfer: "IST", donor: "node1"},
		{name: "no members", j: Joiner{Position: at(1)}, errContain: "no running member"},
		{name: "members disagree", j: Joiner{Position: at(1)}, members: []Member{mem("a", 0, MemberSynced, 0, 1, 2), {Name: "b", ClusterUUID: other}},
			errContain: "different cluster state UUIDs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := PlanTransfer(tc.j, tc.members)
			if tc.errContain != "" || tc.errIs != nil {
				if err == nil || !strings.Contains(err.Error(), tc.errContain) || (tc.errIs != nil && !errors.Is(err, tc.errIs)) {
					t.Fatalf("err = %v, want %q", err, tc.errContain)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Transfer != tc.transfer || p.Donor != tc.donor || p.Wait != tc.wait {
				t.Fatalf("plan %+v, want %s from %q wait=%v", p, tc.transfer, tc.donor, tc.wait)
			}
			for _, r := range tc.reason {
				if !strings.Contains(p.Reason, r) {
					t.Errorf("reason %q lacks %q", p.Reason, r)
				}
			}
			if tc.bytes != 0 && p.Bytes != tc.bytes {
				t.Errorf("bytes %d, want %d", p.Bytes, tc.bytes)
			}
		})
	}
}
