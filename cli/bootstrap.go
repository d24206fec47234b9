package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gosst/gosst/internal/fsutil"
	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/mariadb"
)

type bootstrapOptions struct {
	DataDirs      []string
	DefaultsFiles []string
	From          []string
	ExpectNodes   int
	Apply         bool
	Mariadbd      string
	Timeout       time.Duration
	JSON          bool
	Nodes         []string // live mode: running nodes that lost quorum
	LoginFile     string
	User          string
	ConnTimeout   time.Duration
}

func newBootstrapCommand(g *Globals) *cobra.Command {
	o := &bootstrapOptions{}
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "After a full outage, name the node to bootstrap the cluster from, with the commands",
		Long: `bootstrap reads every stopped node's saved position (the same as 'recover')
and names the node to bootstrap the cluster from: the most advanced one. It
prints the evidence and the exact commands. It changes nothing unless --apply
is given; then, on the chosen node's host, it sets safe_to_bootstrap: 1 in
that node's grastate.dat (durably: new file, fsync, rename, fsync of the
directory) so that galera_new_cluster is accepted.

Nodes on this host: --datadir DIR and/or --defaults-file FILE (both
repeatable; the i-th option file belongs to the i-th datadir, a single option
file serves every datadir, and an option file alone names its datadir).
Nodes on other hosts: --from FILE, the output of 'recover --json' there (one
object or an array).

It refuses, showing every node's position, when a node's position is unknown,
when the nodes belong to different histories (cluster state UUIDs), when a
node marked safe_to_bootstrap is behind another, and when fewer nodes are
given than the cluster has (--expect-nodes, default: the members listed in
wsrep_cluster_address) unless the most advanced given node left the cluster
last and cleanly. It also refuses to touch a datadir a server is running on.

A running cluster that lost quorum (no node Primary, e.g. after two of three
nodes died): give every node with --node DSN. It names the node with the
highest wsrep_last_committed and prints the pc.bootstrap=YES statement to run
there. It refuses when a node does not answer, fewer nodes are given than
wsrep_cluster_address lists (--expect-nodes), any node is still Primary, or
histories differ: a node it cannot see may be part of a primary component,
and a second one would split the cluster. In this mode it never changes
anything.`,
		Example: `  # on each node: galera-backup recover --json > /tmp/$(hostname).json ; copy the files to one host
  galera-backup bootstrap --from db1.json --from db2.json --from db3.json
  # then on the chosen host, if the output says so:
  galera-backup bootstrap --datadir /var/lib/mysql --from db2.json --from db3.json --apply
  galera_new_cluster`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBootstrap(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.DataDirs, "datadir", nil, "datadir of a stopped node on this host (repeatable)")
	f.StringArrayVar(&o.DefaultsFiles, "defaults-file", nil, "option file of a node on this host (repeatable, see above)")
	f.StringArrayVar(&o.From, "from", nil, "JSON written by 'galera-backup recover --json' on another host (repeatable)")
	f.IntVar(&o.ExpectNodes, "expect-nodes", 0, "number of nodes in the cluster (default: members in wsrep_cluster_address)")
	f.BoolVar(&o.Apply, "apply", false, "set safe_to_bootstrap: 1 on the chosen node (must be a --datadir node on this host; its own --from file may stay in the list)")
	f.StringVar(&o.Mariadbd, "mariadbd", "/usr/sbin/mariadbd", "server binary used for --wsrep-recover")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "time limit for each --wsrep-recover")
	f.BoolVar(&o.JSON, "json", false, "print the decision as JSON")
	f.StringArrayVar(&o.Nodes, "node", nil, "running node that lost quorum, as a DSN 'user@tcp(host:3306)/' (repeatable; all nodes; password via MYSQL_PWD or --login-file)")
	f.StringVar(&o.LoginFile, "login-file", "", "with --node: option file with [client] user and password (mode 0600)")
	f.StringVar(&o.User, "user", "", "with --node: user name")
	f.DurationVar(&o.ConnTimeout, "connect-timeout", 10*time.Second, "with --node: per-node time limit")
	return cmd
}

type localNode struct{ datadir, defaultsFile string }

func (o *bootstrapOptions) localNodes() ([]localNode, error) {
	nd, nf := len(o.DataDirs), len(o.DefaultsFiles)
	if nd > 1 && nf > 1 && nd != nf {
		return nil, fmt.Errorf("%d --datadir and %d --defaults-file: give one option file per datadir, or a single one for all", nd, nf)
	}
	n := max(nd, nf)
	out := make([]localNode, n)
	for i := range out {
		if nd > 0 {
			out[i].datadir = o.DataDirs[min(i, nd-1)]
		}
		if nf > 0 {
			out[i].defaultsFile = o.DefaultsFiles[min(i, nf-1)]
		}
	}
	return out, nil
}

// BootstrapResult is the --json output of bootstrap.
type BootstrapResult struct {
	Nodes         []ist.NodeState `json:"nodes"`
	ExpectNodes   int             `json:"expect_nodes"`
	Chosen        *ist.NodeState  `json:"chosen,omitempty"`
	NeedsSafeFlag bool            `json:"needs_safe_to_bootstrap"`
	Notes         []string        `json:"notes,omitempty"`
	Applied       bool            `json:"applied"`
}

func runBootstrap(ctx context.Context, g *Globals, o *bootstrapOptions) error {
	if len(o.Nodes) > 0 {
		if len(o.DataDirs)+len(o.DefaultsFiles)+len(o.From) > 0 || o.Apply {
			return &ExitError{Code: ExitUsage, Err: errors.New("--node (a running cluster that lost quorum) does not mix with --datadir, --defaults-file, --from or --apply (stopped nodes)")}
		}
		return runQuorumBootstrap(ctx, g, o)
	}
	locals, err := o.localNodes()
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	if len(locals)+len(o.From) == 0 {
		return &ExitError{Code: ExitUsage, Err: errors.New("no node given: use --datadir/--defaults-file for nodes on this host and --from for the others")}
	}
	nodes, err := gatherNodes(ctx, g, o, locals)
	if err != nil {
		return err
	}
	expect := o.ExpectNodes
	if expect == 0 {
		for _, n := range nodes {
			expect = max(expect, clusterSize(n.ClusterAddress))
		}
	}
	res := BootstrapResult{Nodes: nodes, ExpectNodes: expect}
	d, err := ist.ChooseBootstrap(nodes, expect)
	if err != nil {
		if o.JSON {
			_ = writeJSON(g, res)
		}
		return err
	}
	chosen := nodes[d.Chosen]
	res.Chosen, res.NeedsSafeFlag, res.Notes = &chosen, d.NeedsSafeFlag, d.Notes
	if o.Apply && d.NeedsSafeFlag {
		if d.Chosen >= len(locals) {
			return fmt.Errorf("--apply: the node to bootstrap is %s, not a --datadir on this host; run --apply on its host", chosen.Label())
		}
		if err := applySafeToBootstrap(chosen, locals[d.Chosen]); err != nil {
			return err
		}
		res.Applied = true
		g.Logger.Info("safe_to_bootstrap set", "node", chosen.Label())
	}
	if o.JSON {
		return writeJSON(g, res)
	}
	printBootstrap(g, o, res, d, len(locals))
	return nil
}

// gatherNodes recovers the position of each node on this host and adds
// the nodes of the --from files; a node both local and in a file must
// read the same in both.
func gatherNodes(ctx context.Context, g *Globals, o *bootstrapOptions, locals []localNode) ([]ist.NodeState, error) {
	var nodes []ist.NodeState
	for _, l := range locals {
		st, err := recoverNode(ctx, g, l.datadir, l.defaultsFile, o.Mariadbd, o.Timeout)
		if err != nil {
			return nil, fmt.Errorf("every node's position is needed to choose safely: %w", err)
		}
		nodes = append(nodes, st)
	}
	for _, p := range o.From {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("--from: %w", err)
		}
		more, err := ist.ParseNodeStates(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--from %s: %w", p, err)
		}
		for _, m := range more {
			// The chosen node's own JSON next to its --datadir (the --apply
			// run on its host): the fresh local reading wins, if it agrees.
			dup := false
			for _, l := range nodes[:len(locals)] {
				if l.Host == m.Host && l.DataDir == m.DataDir {
					if l.Position() != m.Position() || l.SafeToBootstrap != m.SafeToBootstrap {
						return nil, fmt.Errorf("--from %s: %s now reads %s (safe_to_bootstrap %s), the file says %s (%s): the node changed since the file was written; recover it again",
							p, l.Label(), l.Position(), boolFlag(l.SafeToBootstrap), m.Position(), boolFlag(m.SafeToBootstrap))
					}
					dup = true
				}
			}
			if !dup {
				nodes = append(nodes, m)
			}
		}
	}
	return nodes, nil
}

// printBootstrap prints the nodes, the choice and the commands to run;
// nLocal nodes (the first) are on this host.
func printBootstrap(g *Globals, o *bootstrapOptions, res BootstrapResult, d ist.Decision, nLocal int) {
	chosen := *res.Chosen
	printNodes(g, res.Nodes, d.Chosen)
	fmt.Fprintf(g.Out, "\nBootstrap from %s at %s.\n", chosen.Label(), chosen.Position())
	for _, n := range d.Notes {
		fmt.Fprintf(g.Out, "Note: %s.\n", n)
	}
	fmt.Fprintf(g.Out, "\nOn %s:\n", chosen.Label())
	switch {
	case res.Applied:
		fmt.Fprintf(g.Out, "  # done: safe_to_bootstrap: 1 set in %s\n", filepath.Join(chosen.DataDir, "grastate.dat"))
	case d.NeedsSafeFlag && d.Chosen < nLocal:
		fmt.Fprintf(g.Out, "  galera-backup bootstrap %s --apply   # sets safe_to_bootstrap: 1 in %s\n", o.rerunArgs(), filepath.Join(chosen.DataDir, "grastate.dat"))
	case d.NeedsSafeFlag:
		fmt.Fprintf(g.Out, "  galera-backup bootstrap --datadir %s %s --apply   # sets safe_to_bootstrap: 1 in %s\n", chosen.DataDir, o.rerunArgs(), filepath.Join(chosen.DataDir, "grastate.dat"))
	}
	fmt.Fprintf(g.Out, "  galera_new_cluster\n")
	if chosen.Source == ist.SourceWsrepRecover {
		fmt.Fprintf(g.Out, "  # (without systemd: mariadbd --wsrep-new-cluster --wsrep_start_position=%s)\n", chosen.Position())
	} else {
		fmt.Fprintf(g.Out, "  # (without systemd: mariadbd --wsrep-new-cluster)\n")
	}
	fmt.Fprintf(g.Out, "Then on each other node, one at a time, once it reports wsrep_local_state_comment Synced:\n  systemctl start mariadb\n")
}

// rerunArgs repeats the node arguments for the --apply command line.
func (o *bootstrapOptions) rerunArgs() string {
	var b []string
	for _, d := range o.DataDirs {
		b = append(b, "--datadir "+d)
	}
	for _, f := range o.DefaultsFiles {
		b = append(b, "--defaults-file "+f)
	}
	for _, f := range o.From {
		b = append(b, "--from "+f)
	}
	return strings.Join(b, " ")
}

func printNodes(g *Globals, nodes []ist.NodeState, chosen int) {
	tw := tabwriter.NewWriter(g.Out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tNODE\tUUID\tSEQNO\tGTID\tSAFE_TO_BOOTSTRAP\tSOURCE")
	for i, n := range nodes {
		mark := ""
		if i == chosen {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", mark, n.Label(), n.UUID, n.Seqno, dash(n.GTID), boolFlag(n.SafeToBootstrap), n.Source)
	}
	tw.Flush()
}

// applySafeToBootstrap sets safe_to_bootstrap: 1 in the chosen node's
// grastate.dat after checking that no server runs on the datadir and that
// the file still says what the decision was based on.
func applySafeToBootstrap(chosen ist.NodeState, l localNode) error {
	var dataHome string
	if l.defaultsFile != "" {
		if opts, err := mariadb.ReadOptionFile(l.defaultsFile); err == nil {
			dataHome, _ = opts.Get("innodb-data-home-dir", serverGroups...)
		}
	}
	if err := mariadb.ServerRunning(chosen.DataDir, dataHome); err != nil {
		return fmt.Errorf("--apply on %s: %w", chosen.Label(), err)
	}
	path := filepath.Join(chosen.DataDir, "grastate.dat")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // no file: Galera treats the node as safe to bootstrap
	}
	if err != nil {
		return fmt.Errorf("--apply: %w", err)
	}
	gs, err := ist.ParseGrastate(data)
	if err != nil {
		return fmt.Errorf("--apply: %s: %w", path, err)
	}
	changed := gs.UUID != ist.ZeroUUID && gs.UUID != chosen.UUID ||
		chosen.Source == ist.SourceGrastate && gs.Seqno != chosen.Seqno ||
		chosen.Source == ist.SourceWsrepRecover && gs.Seqno >= 0
	if changed {
		return fmt.Errorf("--apply: %s changed since it was read (now %s): run bootstrap again", path, gs)
	}
	if gs.SafeToBootstrap {
		return nil
	}
	out, err := ist.SetSafeToBootstrap(data, true)
	if err != nil {
		return fmt.Errorf("--apply: %s: %w", path, err)
	}
	if err := fsutil.WriteFileDurable(path, out, 0o660); err != nil {
		return fmt.Errorf("--apply: %w", err)
	}
	if gs, err := ist.ReadGrastate(path); err != nil || !gs.SafeToBootstrap {
		return fmt.Errorf("--apply: %s does not read back as safe_to_bootstrap: 1 (%v)", path, err)
	}
	return nil
}

// QuorumResult is the --json output of bootstrap --node.
type QuorumResult struct {
	Nodes       []ist.LiveNode `json:"nodes"`
	ExpectNodes int            `json:"expect_nodes"`
	Chosen      string         `json:"chosen,omitempty"`
	Statement   string         `json:"statement,omitempty"`
}

const pcBootstrapSQL = "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES';"

func runQuorumBootstrap(ctx context.Context, g *Globals, o *bootstrapOptions) error {
	for _, n := range o.Nodes {
		if strings.Contains(strings.SplitN(n, "@", 2)[0], ":") {
			g.Logger.Warn("a password in --node is visible to every user of this machine (ps, /proc); use MYSQL_PWD or --login-file")
			break
		}
	}
	res := QuorumResult{Nodes: make([]ist.LiveNode, len(o.Nodes)), ExpectNodes: o.ExpectNodes}
	sizes := make([]int, len(o.Nodes))
	var wg sync.WaitGroup
	for i, dsn := range o.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Nodes[i], sizes[i] = liveNode(ctx, mariadb.Target{DSN: dsn, DefaultsFile: o.LoginFile, User: o.User}, o.ConnTimeout)
		}()
	}
	wg.Wait()
	if res.ExpectNodes == 0 {
		for _, n := range sizes {
			res.ExpectNodes = max(res.ExpectNodes, n)
		}
	}
	best, err := ist.ChooseQuorumBootstrap(res.Nodes, res.ExpectNodes)
	if err == nil {
		res.Chosen, res.Statement = res.Nodes[best].Label, pcBootstrapSQL
	}
	if o.JSON {
		if werr := writeJSON(g, res); werr != nil {
			return werr
		}
	} else if err == nil {
		fmt.Fprintf(g.Out, "No node is in a primary component; %s has the highest last committed seqno (%d).\n", res.Chosen, res.Nodes[best].LastCommitted)
		fmt.Fprintf(g.Out, "On %s run:\n  %s\nThe other nodes then join its primary component.\n", res.Chosen, pcBootstrapSQL)
	}
	return err
}

// liveNode asks one running node for its quorum state and the number of
// members in its wsrep_cluster_address.
func liveNode(ctx context.Context, t mariadb.Target, timeout time.Duration) (ist.LiveNode, int) {
	n := ist.LiveNode{Label: t.Label(), LastCommitted: -1}
	var addr string
	err := withNode(ctx, t, timeout, func(ctx context.Context, db *sql.DB) error {
		st, err := mariadb.ReadStatus(ctx, db)
		if err != nil {
			return err
		}
		n.ClusterStatus, n.StateUUID, n.LastCommitted = st.ClusterStatus, st.ClusterStateUUID, st.LastCommitted
		if st.NodeName != "" {
			n.Label = st.NodeName + " (" + n.Label + ")"
		}
		return db.QueryRowContext(ctx, "SELECT @@wsrep_cluster_address").Scan(&addr)
	})
	if err != nil {
		n.Err = err.Error()
		return n, 0
	}
	return n, clusterSize(addr)
}
