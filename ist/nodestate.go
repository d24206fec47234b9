package ist

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Where a NodeState's position came from.
const (
	SourceGrastate     = "grastate"      // a clean shutdown's grastate.dat
	SourceWsrepRecover = "wsrep-recover" // mariadbd --wsrep-recover (crash, or no grastate.dat)
)

// NodeState is the saved state of one stopped node: what `galera-backup
// recover --json` prints and `galera-backup bootstrap --from` reads.
type NodeState struct {
	Name           string `json:"name,omitempty"`            // wsrep_node_name
	Address        string `json:"address,omitempty"`         // wsrep_node_address
	Host           string `json:"host,omitempty"`            // host name where it was recovered
	ClusterAddress string `json:"cluster_address,omitempty"` // wsrep_cluster_address
	DataDir        string `json:"datadir"`
	UUID           string `json:"uuid"`
	Seqno          int64  `json:"seqno"`
	GTID           string `json:"gtid,omitempty"`
	// SafeToBootstrap is grastate.dat's flag as Galera reads it (a missing
	// file counts as 1).
	SafeToBootstrap bool   `json:"safe_to_bootstrap"`
	Source          string `json:"source"`
	// StateUnsafe is set when grastate.dat holds the all-zero UUID: Galera
	// marked the node's data untrusted (a crash during a DDL/TOI operation,
	// or a detected inconsistency) and it will take a full SST, whatever
	// InnoDB says.
	StateUnsafe bool `json:"state_unsafe,omitempty"`
}

// Position returns the node's position.
func (n NodeState) Position() Position { return Position{UUID: n.UUID, Seqno: n.Seqno, GTID: n.GTID} }

// Label names the node for an operator: name, else host:datadir.
func (n NodeState) Label() string {
	switch {
	case n.Name != "" && n.Host != "":
		return n.Name + " (" + n.Host + ":" + n.DataDir + ")"
	case n.Name != "":
		return n.Name + " (" + n.DataDir + ")"
	case n.Host != "":
		return n.Host + ":" + n.DataDir
	}
	return n.DataDir
}

// ErrNodeState marks a malformed node-state document.
var ErrNodeState = errors.New("node state")

// Validate checks the fields a bootstrap decision relies on.
func (n NodeState) Validate() error {
	if n.DataDir == "" {
		return fmt.Errorf("%w: no datadir", ErrNodeState)
	}
	if !uuidRE.MatchString(n.UUID) {
		return fmt.Errorf("%w %s: bad uuid %q", ErrNodeState, n.Label(), n.UUID)
	}
	if n.Seqno < -1 {
		return fmt.Errorf("%w %s: bad seqno %d", ErrNodeState, n.Label(), n.Seqno)
	}
	if n.GTID != "" && !gtidRE.MatchString(n.GTID) {
		return fmt.Errorf("%w %s: bad gtid %q", ErrNodeState, n.Label(), n.GTID)
	}
	if n.Source != SourceGrastate && n.Source != SourceWsrepRecover {
		return fmt.Errorf("%w %s: source %q, want %q or %q", ErrNodeState, n.Label(), n.Source, SourceGrastate, SourceWsrepRecover)
	}
	return nil
}

// maxNodeStates bounds a --from document (a JSON object per node).
const maxNodeStates = 1 << 20

// ParseNodeStates reads the JSON that `recover --json` prints: one object,
// or an array of them (several nodes collected into one file). Unknown
// fields are ignored so newer writers stay readable; every node is
// validated.
func ParseNodeStates(r io.Reader) ([]NodeState, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxNodeStates+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNodeState, err)
	}
	if len(data) > maxNodeStates {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrNodeState, maxNodeStates)
	}
	data = bytes.TrimSpace(data)
	var nodes []NodeState
	if strings.HasPrefix(string(data), "[") {
		err = json.Unmarshal(data, &nodes)
	} else {
		var n NodeState
		err = json.Unmarshal(data, &n)
		nodes = []NodeState{n}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNodeState, err)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: no node in the document", ErrNodeState)
	}
	for i := range nodes {
		if err := nodes[i].Validate(); err != nil {
			return nil, err
		}
		nodes[i].UUID = strings.ToLower(nodes[i].UUID)
	}
	return nodes, nil
}
