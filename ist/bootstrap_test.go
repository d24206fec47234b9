package ist

import (
	"errors"
	"strings"
	"testing"
)

const (
	uA = "6b94087a-e947-11f1-b506-2f33047b60b8"
	uB = "0c779d86-e950-11f1-8b2a-1e2f3a4b5c6d"
)

func node(name string, uuid string, seqno int64, safe bool, src string) NodeState {
	return NodeState{Name: name, DataDir: "/var/lib/mysql", Host: name, UUID: uuid, Seqno: seqno, SafeToBootstrap: safe, Source: src}
}

func TestChooseBootstrap(t *testing.T) {
	g, r := SourceGrastate, SourceWsrepRecover
	tests := []struct {
		name       string
		nodes      []NodeState
		expected   int
		want       string // chosen node name
		needsFlag  bool
		refuseWith string // substring of the refusal
	}{
		{"clean stop in sequence: last one is safe",
			[]NodeState{node("n1", uA, 10, false, g), node("n2", uA, 30, true, g), node("n3", uA, 20, false, g)}, 3, "n2", false, ""},
		{"all killed: most advanced, needs the flag",
			[]NodeState{node("n1", uA, 41, false, r), node("n2", uA, 30, false, r), node("n3", uA, 41, false, r)}, 3, "n1", true, ""},
		{"tie prefers the safe node",
			[]NodeState{node("n1", uA, 41, false, r), node("n2", uA, 41, true, g)}, 2, "n2", false, ""},
		{"missing node, the given ones crashed",
			[]NodeState{node("n1", uA, 41, false, r), node("n2", uA, 30, false, r)}, 3, "", false, "2 of 3 nodes given"},
		{"missing node, but the last one to leave cleanly is given",
			[]NodeState{node("n1", uA, 41, true, g), node("n2", uA, 30, false, g)}, 3, "n1", false, ""},
		{"missing node and a safe flag not from a clean grastate",
			[]NodeState{node("n1", uA, 41, true, r), node("n2", uA, 30, false, r)}, 3, "", false, "a missing node could be the most advanced"},
		{"different histories",
			[]NodeState{node("n1", uA, 41, false, r), node("n2", uB, 50, true, g)}, 2, "", false, "different histories"},
		{"safe node behind another",
			[]NodeState{node("n1", uA, 41, false, r), node("n2", uA, 30, true, g)}, 2, "", false, "a node ahead that is not marked safe"},
		{"unknown position",
			[]NodeState{node("n1", uA, 41, false, r), node("n2", ZeroUUID, -1, false, r)}, 2, "", false, "n2 (n2:/var/lib/mysql) has no known position"},
		{"state marked unsafe in grastate.dat",
			[]NodeState{node("n1", uA, 41, false, r), {Name: "n2", DataDir: "/d", UUID: uA, Seqno: 50, Source: r, StateUnsafe: true}}, 2, "", false, "marked its state unsafe"},
		{"seqno -1 with a uuid",
			[]NodeState{node("n1", uA, -1, false, r)}, 1, "", false, "no known position"},
		{"same node twice",
			[]NodeState{node("n1", uA, 4, true, g), node("n1", uA, 4, true, g)}, 2, "", false, "given twice"},
		{"nothing", nil, 0, "", false, "no node given"},
		{"single node cluster, expected unknown",
			[]NodeState{node("n1", uA, 4, false, r)}, 0, "n1", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ChooseBootstrap(tt.nodes, tt.expected)
			if tt.refuseWith != "" {
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.refuseWith) {
					t.Fatalf("want refusal with %q, got %v", tt.refuseWith, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.nodes[d.Chosen].Name; got != tt.want || d.NeedsSafeFlag != tt.needsFlag {
				t.Fatalf("chose %s (needs flag %v), want %s (%v); notes %q", got, d.NeedsSafeFlag, tt.want, tt.needsFlag, d.Notes)
			}
		})
	}
}

func TestChooseBootstrapEvidence(t *testing.T) {
	_, err := ChooseBootstrap([]NodeState{node("n1", uA, 41, false, SourceWsrepRecover), node("n2", uB, 7, true, SourceGrastate)}, 2)
	for _, want := range []string{uA + ":41", uB + ":7", "safe_to_bootstrap 1, from grastate"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %v lacks %q", err, want)
		}
	}
}

func TestParseNodeStates(t *testing.T) {
	one := `{"name":"n1","host":"db1","datadir":"/var/lib/mysql","uuid":"` + strings.ToUpper(uA) + `","seqno":41,"gtid":"7-11-39","safe_to_bootstrap":false,"source":"wsrep-recover","future":1}`
	got, err := ParseNodeStates(strings.NewReader(one))
	if err != nil || len(got) != 1 || got[0].UUID != uA || got[0].Seqno != 41 || got[0].GTID != "7-11-39" {
		t.Fatalf("one: %+v %v", got, err)
	}
	got, err = ParseNodeStates(strings.NewReader("[" + one + "," + strings.Replace(one, "db1", "db2", 1) + "]"))
	if err != nil || len(got) != 2 || got[1].Host != "db2" {
		t.Fatalf("array: %+v %v", got, err)
	}
	for name, bad := range map[string]string{
		"empty":        "",
		"empty array":  "[]",
		"not json":     "uuid: x",
		"bad uuid":     strings.Replace(one, strings.ToUpper(uA), "x", 1),
		"bad seqno":    strings.Replace(one, `"seqno":41`, `"seqno":-7`, 1),
		"bad source":   strings.Replace(one, "wsrep-recover", "guess", 1),
		"no datadir":   strings.Replace(one, `"datadir":"/var/lib/mysql"`, `"datadir":""`, 1),
		"bad gtid":     strings.Replace(one, "7-11-39", "7-11", 1),
		"seqno string": strings.Replace(one, `"seqno":41`, `"seqno":"41"`, 1),
	} {
		if _, err := ParseNodeStates(strings.NewReader(bad)); !errors.Is(err, ErrNodeState) {
			t.Errorf("%s: want ErrNodeState, got %v", name, err)
		}
	}
}

func FuzzParseNodeStates(f *testing.F) {
	f.Add([]byte(`{"name":"n1","datadir":"/d","uuid":"` + uA + `","seqno":41,"safe_to_bootstrap":true,"source":"grastate"}`))
	f.Add([]byte(`[{"datadir":"/d","uuid":"` + ZeroUUID + `","seqno":-1,"source":"wsrep-recover","gtid":"0-0-0"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes, err := ParseNodeStates(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		for _, n := range nodes {
			if err := n.Validate(); err != nil {
				t.Fatalf("accepted invalid node: %v", err)
			}
		}
		_, _ = ChooseBootstrap(nodes, len(nodes))
	})
}

// A grastate.dat as galera 26.4.23 writes it on a clean shutdown.
const realGrastate = "# GALERA saved state\nversion: 2.1\nuuid:    6b94087a-e947-11f1-b506-2f33047b60b8\nseqno:   125\nsafe_to_bootstrap: 0\n"

func TestSetSafeToBootstrap(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"galera layout kept", realGrastate, strings.Replace(realGrastate, "safe_to_bootstrap: 0", "safe_to_bootstrap: 1", 1)},
		{"padding from an in-place rewrite dropped", realGrastate + "          ", strings.Replace(realGrastate, "safe_to_bootstrap: 0", "safe_to_bootstrap: 1", 1)},
		{"key appended when absent", "version: 2.1\nseqno: -1\n", "version: 2.1\nseqno: -1\nsafe_to_bootstrap: 1\n"},
		{"unknown keys kept", "future: x\nsafe_to_bootstrap:   0\n", "future: x\nsafe_to_bootstrap: 1\n"},
	}
	for _, tt := range tests {
		got, err := SetSafeToBootstrap([]byte(tt.in), true)
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if _, err := SetSafeToBootstrap([]byte("seqno: x\n"), true); !errors.Is(err, ErrGrastate) {
		t.Errorf("malformed input: got %v", err)
	}
}

func TestChooseQuorumBootstrap(t *testing.T) {
	np := func(l string, seq int64) LiveNode {
		return LiveNode{Label: l, ClusterStatus: "non-Primary", StateUUID: uA, LastCommitted: seq}
	}
	tests := []struct {
		name       string
		nodes      []LiveNode
		expected   int
		want       int
		refuseWith string
	}{
		{"highest last committed", []LiveNode{np("a", 5), np("b", 9), np("c", 9)}, 3, 1, ""},
		{"single survivor, operator lowered expect", []LiveNode{np("a", 5)}, 1, 0, ""},
		{"missing node", []LiveNode{np("a", 5)}, 3, 0, "1 of 3 nodes given"},
		{"unreachable node", []LiveNode{np("a", 5), {Label: "b", Err: "connection refused"}}, 2, 0, "b did not answer"},
		{"primary exists", []LiveNode{np("a", 5), {Label: "b", ClusterStatus: "Primary", StateUUID: uA, LastCommitted: 7}}, 2, 0, "has quorum"},
		{"different histories", []LiveNode{np("a", 5), {Label: "b", ClusterStatus: "non-Primary", StateUUID: uB, LastCommitted: 7}}, 2, 0, "different cluster state UUIDs"},
		{"nothing", nil, 0, 0, "no node given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ChooseQuorumBootstrap(tt.nodes, tt.expected)
			if tt.refuseWith != "" {
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.refuseWith) {
					t.Fatalf("want refusal with %q, got %v", tt.refuseWith, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}
