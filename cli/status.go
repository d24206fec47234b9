package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gosst/gosst/mariadb"
)

type statusOptions struct {
	Nodes        []string
	Sockets      []string
	Hosts        []string
	Port         int
	DefaultsFile string
	User         string
	JSON         bool
	Timeout      time.Duration
}

// StatusRow is one node's line of `galera-backup status`.
type StatusRow struct {
	Node string `json:"node"`
	*mariadb.NodeStatus
	Error string `json:"error,omitempty"`
}

func newStatusCommand(g *Globals) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the Galera state of one or more nodes",
		Long: `status connects to each node and prints one row per node: cluster size,
local state (Synced, Donor/Desynced, Joiner, ...), cluster status (Primary or
not), last committed seqno, the lowest seqno still in gcache (the IST window
starts there), flow-control pause fraction, receive queue and the binlog GTID
position. A node that cannot be reached gets a row with its error.

Nodes are given as --host HOST[:PORT] (repeatable, like the mariadb client;
--port is the default port), --socket PATH (repeatable) or --node DSN
(go-sql-driver form, repeatable). Without any, the option files' [client]
socket= or host=, else Debian's /run/mysqld/mysqld.sock is used. The password
comes from an option file ([client] password=, file mode 0600) or the
MYSQL_PWD environment variable; never put it on the command line.

Exit status: 0 when every node answered, 3 when some did not, 1 when none did.`,
		Example: `  # all three nodes of a loopback test cluster
  MYSQL_PWD=... galera-backup status --node 'monitor@tcp(10.0.0.1:3306)/' \
      --node 'monitor@tcp(10.0.0.2:3306)/' --node 'monitor@tcp(10.0.0.3:3306)/'

  # the same with mariadb-style addresses, user and password from ~/.my.cnf
  galera-backup status --host 10.0.0.1 --host 10.0.0.2 --host 10.0.0.3:3307

  # the local node, credentials from a private option file, as JSON
  galera-backup status --defaults-file /etc/mysql/debian.cnf --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatus(cmd.Context(), g, o)
		},
	}
	o.addNodeListFlags(cmd, "per-node time limit for connecting and querying")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON (one array of rows) instead of a table")
	return cmd
}

// addNodeListFlags adds the flags that name several running nodes (status,
// advise) and the per-node time limit.
func (o *statusOptions) addNodeListFlags(cmd *cobra.Command, timeoutHelp string) {
	f := cmd.Flags()
	f.StringArrayVar(&o.Nodes, "node", nil, "node DSN, e.g. 'user@tcp(host:3306)/' (repeatable; password via MYSQL_PWD or --defaults-file)")
	f.StringArrayVar(&o.Sockets, "socket", nil, "unix socket of a local node (repeatable)")
	f.StringArrayVar(&o.Hosts, "host", nil, "node host name or address, HOST or HOST:PORT ([v6]:PORT) (repeatable)")
	f.IntVar(&o.Port, "port", 3306, "TCP port for --host entries without one")
	f.StringVar(&o.DefaultsFile, "defaults-file", "", "read only this option file ([client] user, password, socket/host, port; [galera-backup]); mode 0600 if it holds a password")
	f.StringVar(&o.User, "user", "", "user name (default: from the DSN or defaults file, else the login name)")
	f.DurationVar(&o.Timeout, "timeout", 10*time.Second, timeoutHelp)
}

func (o *statusOptions) targets() ([]mariadb.Target, error) {
	var ts []mariadb.Target
	for _, h := range o.Hosts {
		t, err := hostTarget(h, o.Port)
		if err != nil {
			return nil, err
		}
		t.DefaultsFile, t.User = o.DefaultsFile, o.User
		ts = append(ts, t)
	}
	for _, n := range o.Nodes {
		ts = append(ts, mariadb.Target{DSN: n, DefaultsFile: o.DefaultsFile, User: o.User})
	}
	for _, s := range o.Sockets {
		ts = append(ts, mariadb.Target{Socket: s, DefaultsFile: o.DefaultsFile, User: o.User})
	}
	if len(ts) == 0 {
		t := mariadb.Target{DefaultsFile: o.DefaultsFile, User: o.User}
		if _, err := t.Config(); errors.Is(err, mariadb.ErrNoAddress) {
			t.Socket = defaultSocket
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// hostTarget reads --host HOST, HOST:PORT or [V6]:PORT; port is used when
// the entry has none.
func hostTarget(h string, port int) (mariadb.Target, error) {
	host := h
	if hh, p, err := net.SplitHostPort(h); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return mariadb.Target{}, &ExitError{Code: ExitUsage, Err: fmt.Errorf("--host %q: bad port %q", h, p)}
		}
		host, port = hh, n
	} else if strings.Count(h, ":") == 1 {
		return mariadb.Target{}, &ExitError{Code: ExitUsage, Err: fmt.Errorf("--host %q: want HOST, HOST:PORT or [IPv6]:PORT", h)}
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return mariadb.Target{}, &ExitError{Code: ExitUsage, Err: fmt.Errorf("--host %q: empty host name", h)}
	}
	return mariadb.Target{Host: host, Port: port}, nil
}

func runStatus(ctx context.Context, g *Globals, o *statusOptions) error {
	targets, err := o.targets()
	if err != nil {
		return err
	}
	for i := range targets {
		targets[i] = g.withPassword(targets[i])
	}
	for _, n := range o.Nodes {
		if strings.Contains(strings.SplitN(n, "@", 2)[0], ":") {
			g.Logger.Warn("a password in --node is visible to every user of this machine (ps, /proc); use MYSQL_PWD or --defaults-file")
			break
		}
	}
	rows := make([]StatusRow, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows[i] = statusOf(ctx, t, o.Timeout)
		}()
	}
	wg.Wait()

	failed := 0
	for _, r := range rows {
		if r.Error != "" {
			failed++
		}
	}
	if o.JSON {
		if err := writeJSON(g, rows); err != nil {
			return err
		}
	} else if err := printStatusTable(g, rows); err != nil {
		return err
	}
	switch {
	case failed == 0:
		return nil
	case failed == len(rows):
		return &ExitError{Code: ExitFailure, Err: errors.New("no node answered")}
	default:
		return &ExitError{Code: ExitPartial, Err: fmt.Errorf("%d of %d nodes did not answer", failed, len(rows))}
	}
}

func statusOf(ctx context.Context, t mariadb.Target, timeout time.Duration) StatusRow {
	row := StatusRow{Node: t.Label()}
	err := withNode(ctx, t, timeout, func(ctx context.Context, db *sql.DB) error {
		st, err := mariadb.ReadStatus(ctx, db)
		if err != nil {
			return err
		}
		row.NodeStatus = &st
		return nil
	})
	if err != nil {
		row.Error = err.Error()
	}
	return row
}

// withNode connects to t and runs q on the connection, both within
// timeout; the connection is closed when q returns.
func withNode(ctx context.Context, t mariadb.Target, timeout time.Duration, q func(ctx context.Context, db *sql.DB) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	db, err := mariadb.Open(ctx, t)
	if err != nil {
		return err
	}
	defer db.Close()
	return q(ctx, db)
}

func printStatusTable(g *Globals, rows []StatusRow) error {
	tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNAME\tSIZE\tSTATE\tCLUSTER\tLAST_COMMITTED\tCACHED_DOWNTO\tFC_PAUSED\tRECV_QUEUE\tGTID_BINLOG_POS")
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\tERROR: %s\n", r.Node, oneLine(r.Error))
			continue
		}
		st := *r.NodeStatus
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Node, dash(st.NodeName), num(st.ClusterSize),
			dash(st.LocalState), dash(st.ClusterStatus), num(st.LastCommitted), num(st.CachedDownto),
			fc(st.FlowControlPaused), num(st.RecvQueue), dash(st.GTIDBinlogPos))
	}
	return tw.Flush()
}

func num(v int64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprint(v)
}

func fc(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
