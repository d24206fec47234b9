package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// NodeStatus is the part of a Galera node's state an operator looks at
// first. Numeric fields are -1 when the server did not report them (for
// example wsrep is off).
type NodeStatus struct {
	ClusterSize       int64   `json:"cluster_size"`
	LocalState        string  `json:"wsrep_local_state_comment"`
	ClusterStatus     string  `json:"wsrep_cluster_status"`
	LastCommitted     int64   `json:"wsrep_last_committed"`
	CachedDownto      int64   `json:"wsrep_local_cached_downto"`
	FlowControlPaused float64 `json:"wsrep_flow_control_paused"`
	RecvQueue         int64   `json:"wsrep_local_recv_queue"`
	ClusterStateUUID  string  `json:"wsrep_cluster_state_uuid"`
	NodeName          string  `json:"wsrep_node_name"`
	GTIDBinlogPos     string  `json:"gtid_binlog_pos"`
	Version           string  `json:"version"`
}

// Synced reports whether the node is a synced member of a primary component.
func (s NodeStatus) Synced() bool {
	return s.LocalState == "Synced" && s.ClusterStatus == "Primary"
}

var statusNames = []string{
	"wsrep_cluster_size", "wsrep_local_state_comment", "wsrep_cluster_status",
	"wsrep_last_committed", "wsrep_local_cached_downto", "wsrep_flow_control_paused",
	"wsrep_local_recv_queue", "wsrep_cluster_state_uuid",
}

// ReadStatus queries the node's wsrep status variables and GTID position.
func ReadStatus(ctx context.Context, db *sql.DB) (NodeStatus, error) {
	st := NodeStatus{ClusterSize: -1, LastCommitted: -1, CachedDownto: -1, RecvQueue: -1, FlowControlPaused: -1}
	vars, err := GlobalStatus(ctx, db, statusNames...)
	if err != nil {
		return st, err
	}
	num := func(name string) int64 {
		v, err := strconv.ParseInt(vars[name], 10, 64)
		if err != nil {
			return -1
		}
		return v
	}
	st.ClusterSize = num("wsrep_cluster_size")
	st.LastCommitted = num("wsrep_last_committed")
	st.CachedDownto = num("wsrep_local_cached_downto")
	st.RecvQueue = num("wsrep_local_recv_queue")
	if f, err := strconv.ParseFloat(vars["wsrep_flow_control_paused"], 64); err == nil {
		st.FlowControlPaused = f
	}
	st.LocalState = vars["wsrep_local_state_comment"]
	st.ClusterStatus = vars["wsrep_cluster_status"]
	st.ClusterStateUUID = vars["wsrep_cluster_state_uuid"]
	row := db.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos, @@version, @@wsrep_node_name")
	var name sql.NullString
	if err := row.Scan(&st.GTIDBinlogPos, &st.Version, &name); err != nil {
		return st, fmt.Errorf("read gtid_binlog_pos: %w", err)
	}
	st.NodeName = name.String
	return st, nil
}

// GlobalStatus returns the named global status variables (names are
// matched case-insensitively; the map is keyed by lower-case name).
func GlobalStatus(ctx context.Context, db *sql.DB, names ...string) (map[string]string, error) {
	// information_schema rather than SHOW: SHOW cannot take placeholders
	// in a server-side prepared statement.
	q := "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
	args := make([]any, len(names))
	if len(names) > 0 {
		q += " WHERE VARIABLE_NAME IN (?" + strings.Repeat(",?", len(names)-1) + ")"
		for i, n := range names {
			args[i] = strings.ToUpper(n)
		}
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read global status: %w", err)
	}
	defer rows.Close()
	out := make(map[string]string, len(names))
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("read global status: %w", err)
		}
		out[strings.ToLower(k)] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read global status: %w", err)
	}
	return out, nil
}
