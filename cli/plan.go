package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/gosst/gosst/internal/text"
	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/sst"
)

type planOptions struct {
	DataDir      string
	DefaultsFile string
	Mariadbd     string
	Nodes        []string
	Sockets      []string
	Hosts        []string
	Port         int
	User         string
	Timeout      time.Duration
	JSON         bool
}

// PlanResult is what `galera-backup plan --json` prints.
type PlanResult struct {
	ist.Plan
	// ETASeconds is the SST's size divided by the median throughput of
	// this node's last gosst SSTs (their history in the datadir); null
	// without history, and for IST.
	ETASeconds *float64 `json:"eta_seconds"`
	// ETABasis says where the ETA comes from.
	ETABasis string         `json:"eta_basis,omitempty"`
	Node     ist.NodeState  `json:"node"`
	Members  []PlanMemberJS `json:"members"`
}

// PlanMemberJS is one running member as plan read it.
type PlanMemberJS struct {
	Target        string `json:"target"`
	Name          string `json:"name"`
	Index         int    `json:"index"`
	State         string `json:"state"`
	Segment       int    `json:"segment"`
	LastCommitted int64  `json:"last_committed"`
	CachedDownto  int64  `json:"cached_downto"`
	DataBytes     int64  `json:"data_bytes"`
}

func newPlanCommand(g *Globals) *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Predict IST or SST, and the donor, for a stopped node before it is started",
		Long: `plan reads the stopped node's position (as 'recover' does: grastate.dat, else
mariadbd --wsrep-recover; an empty datadir has none), its wsrep_sst_donor and
gmcast.segment from its option file, and asks the running members for their
state, wsrep_local_cached_downto, wsrep_last_committed, segment and member
index. It then applies Galera's own donor selection and the donor's gcache
test and says: IST or SST, from which donor, why, and about how many bytes.

The prediction holds for the moment it was made: the IST window moves with
every write, so start the node soon after, or pin the donor with
wsrep_sst_donor=<name>, (trailing comma keeps the fallback).

--node/--host/--socket name the running members (all of them: Galera may
choose any). Credentials come from MYSQL_PWD or the [client] group of the
option files, never from the command line.`,
		Example: `  galera-backup plan --defaults-file /etc/mysql/my.cnf \
      --host db1 --host db2 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runPlan(cmd.Context(), g, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "datadir", "", "the stopped node's datadir (default: datadir from its option file, else /var/lib/mysql)")
	f.StringVar(&o.DefaultsFile, "defaults-file", "", "the stopped node's option file (default /etc/mysql/my.cnf): datadir, wsrep_sst_donor, gmcast.segment")
	f.StringVar(&o.Mariadbd, "mariadbd", "/usr/sbin/mariadbd", "server binary used for --wsrep-recover after a crash")
	f.StringArrayVar(&o.Nodes, "node", nil, "running member DSN, e.g. 'monitor@tcp(10.0.0.1:3306)/' (repeatable)")
	f.StringArrayVar(&o.Sockets, "socket", nil, "unix socket of a running member on this host (repeatable)")
	f.StringArrayVar(&o.Hosts, "host", nil, "running member HOST or HOST:PORT (repeatable)")
	f.IntVar(&o.Port, "port", 3306, "port for --host entries without one")
	f.StringVar(&o.User, "user", "", "user for the members (default: [client] user, else the login name)")
	f.DurationVar(&o.Timeout, "timeout", 10*time.Second, "per-member time limit for connecting and querying")
	f.BoolVar(&o.JSON, "json", false, "print JSON: transfer, donor, reason, bytes, eta_seconds, the node's position and the members read")
	return cmd
}

func runPlan(ctx context.Context, g *Globals, o *planOptions) error {
	so := statusOptions{Nodes: o.Nodes, Sockets: o.Sockets, Hosts: o.Hosts, Port: o.Port, User: o.User}
	if len(o.Nodes)+len(o.Sockets)+len(o.Hosts) == 0 {
		return &ExitError{Code: ExitUsage, Err: errors.New("plan: name the running members with --node, --host or --socket")}
	}
	targets, err := so.targets()
	if err != nil {
		return err
	}
	node, joiner, err := planJoiner(ctx, g, o)
	if err != nil {
		return err
	}
	members := make([]ist.Member, len(targets))
	shown := make([]PlanMemberJS, len(targets))
	eg, ectx := errgroup.WithContext(ctx)
	for i, t := range targets {
		t = g.withPassword(t)
		eg.Go(func() error {
			m, err := readMember(ectx, t, o.Timeout)
			if err != nil {
				return fmt.Errorf("member %s: %w", t.Label(), err)
			}
			members[i] = m
			shown[i] = PlanMemberJS{Target: t.Label(), Name: m.Name, Index: m.Index, State: m.StateComment, Segment: m.Segment,
				LastCommitted: m.LastCommitted, CachedDownto: m.CachedDownto, DataBytes: m.DataBytes}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return fmt.Errorf("plan: every running member must answer (Galera may pick any of them): %w", err)
	}
	var running []ist.Member
	for _, m := range members {
		if m.Name == node.Name && node.Name != "" {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("plan: member %s is the node being planned, and it is running", m.Name)}
		}
		if strings.EqualFold(m.StateComment, "Initialized") || m.ClusterUUID == "" {
			continue // not in a primary component: cannot donate, not part of the decision
		}
		running = append(running, m)
	}
	p, err := ist.PlanTransfer(joiner, running)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	res := PlanResult{Plan: p, Node: node, Members: shown}
	if p.Transfer == "SST" && p.Bytes > 0 {
		recs, err := sst.ReadHistory(node.DataDir)
		if err != nil {
			g.Logger.Warn("plan: cannot read the SST history; no ETA", "err", err)
		}
		if rate, ok := sst.Throughput(recs); ok {
			eta := float64(p.Bytes) / rate
			res.ETASeconds = &eta
			n := min(len(recs), 5)
			res.ETABasis = fmt.Sprintf("median of this node's last %d gosst SSTs: %s/s", n, humanBytes(int64(rate)))
		} else {
			res.ETABasis = "no earlier gosst SST recorded in this datadir (" + sst.HistoryFile + ")"
		}
	}
	if o.JSON {
		return writeJSON(g, res)
	}
	who := node.Label()
	switch p.Transfer {
	case "none":
		fmt.Fprintf(g.Out, "%s: no state transfer: %s\n", who, p.Reason)
	case "wait":
		fmt.Fprintf(g.Out, "%s: no donor now: %s\n", who, p.Reason)
	default:
		fmt.Fprintf(g.Out, "%s: %s from %s, about %s\n  why: %s\n", who, p.Transfer, p.Donor, humanBytes(p.Bytes), p.Reason)
		if res.ETASeconds != nil {
			fmt.Fprintf(g.Out, "  ETA: about %s (%s)\n", time.Duration(*res.ETASeconds*float64(time.Second)).Round(time.Second), res.ETABasis)
		} else if res.ETABasis != "" {
			fmt.Fprintf(g.Out, "  ETA: unknown (%s)\n", res.ETABasis)
		}
	}
	return nil
}

// humanBytes is text.Bytes, with "unknown size" for a size not known.
func humanBytes(n int64) string {
	if n <= 0 {
		return "unknown size"
	}
	return text.Bytes(n)
}

// planJoiner reads the stopped node: position and its own settings.
func planJoiner(ctx context.Context, g *Globals, o *planOptions) (ist.NodeState, ist.Joiner, error) {
	get, datadir, err := serverSettings(o.DefaultsFile, o.DataDir)
	if err != nil {
		return ist.NodeState{}, ist.Joiner{}, err
	}
	j := ist.Joiner{DonorList: strings.Trim(get("wsrep-sst-donor"), `"'`), Segment: providerSegment(get("wsrep-provider-options"))}
	// A new node: no grastate.dat and no InnoDB data. Galera sends no
	// position and takes a full SST.
	if !fileExists(filepath.Join(datadir, "grastate.dat")) && !fileExists(filepath.Join(datadir, "ibdata1")) {
		if _, err := os.Stat(datadir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return ist.NodeState{}, j, fmt.Errorf("plan: datadir: %w", err)
		}
		host, _ := os.Hostname()
		st := ist.NodeState{Name: get("wsrep-node-name"), Host: host, DataDir: datadir, UUID: ist.ZeroUUID, Seqno: -1, SafeToBootstrap: true}
		j.Position = st.Position()
		return st, j, nil
	}
	st, err := recoverNode(ctx, g, datadir, o.DefaultsFile, o.Mariadbd, 30*time.Minute)
	if err != nil {
		return st, j, err
	}
	j.Position = st.Position()
	if st.StateUnsafe {
		j.Position = ist.Position{UUID: ist.ZeroUUID, Seqno: -1} // Galera will not offer it for IST
	}
	return st, j, nil
}

// providerSegment reads gmcast.segment from wsrep_provider_options (0 when
// unset).
func providerSegment(opts string) int {
	n, _ := strconv.Atoi(ist.ProviderOptions(strings.Trim(opts, `"'`))["gmcast.segment"])
	return n
}

var memberStatus = []string{"wsrep_local_index", "wsrep_local_state_comment", "wsrep_cluster_state_uuid",
	"wsrep_last_committed", "wsrep_local_cached_downto", "wsrep_cluster_status",
	"wsrep_replicated", "wsrep_replicated_bytes", "wsrep_received", "wsrep_received_bytes"}

func readMember(ctx context.Context, t mariadb.Target, timeout time.Duration) (m ist.Member, err error) {
	err = withNode(ctx, t, timeout, func(ctx context.Context, db *sql.DB) error {
		m, err = memberOf(ctx, db)
		return err
	})
	return m, err
}

// memberOf reads what plan needs of one running member.
func memberOf(ctx context.Context, db *sql.DB) (ist.Member, error) {
	vars, err := mariadb.GlobalStatus(ctx, db, memberStatus...)
	if err != nil {
		return ist.Member{}, err
	}
	num := func(name string) int64 {
		v, err := strconv.ParseInt(vars[name], 10, 64)
		if err != nil {
			return -1
		}
		return v
	}
	var name, provOpts sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT @@wsrep_node_name, @@wsrep_provider_options").Scan(&name, &provOpts); err != nil {
		return ist.Member{}, fmt.Errorf("read wsrep_node_name: %w", err)
	}
	m := ist.Member{Name: name.String, Index: int(num("wsrep_local_index")), StateComment: vars["wsrep_local_state_comment"],
		ClusterUUID: vars["wsrep_cluster_state_uuid"], LastCommitted: num("wsrep_last_committed"),
		CachedDownto: num("wsrep_local_cached_downto"), Segment: providerSegment(provOpts.String)}
	m.State = ist.MemberStateFromComment(m.StateComment)
	if vars["wsrep_cluster_status"] != "Primary" {
		m.State, m.ClusterUUID = ist.MemberNonPrimary, ""
	}
	if n := num("wsrep_replicated") + num("wsrep_received"); n > 0 {
		m.AvgWriteSetBytes = (num("wsrep_replicated_bytes") + num("wsrep_received_bytes")) / n
	}
	var data sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_type = 'BASE TABLE'").Scan(&data); err == nil {
		m.DataBytes = data.Int64
	}
	return m, nil
}
