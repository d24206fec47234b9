package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/mariadb"
)

type recoverOptions struct {
	DataDir      string
	DefaultsFile string
	Mariadbd     string
	Timeout      time.Duration
	JSON         bool
}

func newRecoverCommand(g *Globals) *cobra.Command {
	o := &recoverOptions{}
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Show the saved Galera position of a stopped node (grastate.dat or mariadbd --wsrep-recover)",
		Long: `recover prints the position a stopped node would rejoin the cluster with:
cluster state UUID, seqno, MariaDB GTID when known, and safe_to_bootstrap.

After a clean shutdown grastate.dat holds the position and nothing is run.
After a crash (grastate.dat says seqno -1) or when there is no grastate.dat,
it runs mariadbd --wsrep-recover on the datadir with the node's own option
files, its own socket, pid file and error log in a temporary directory, no
networking, and as the datadir's owner; the server exits by itself and
nothing is left running. --wsrep-recover performs InnoDB crash recovery and
may create or advance binlog files, as the distribution's galera_recovery
does at every start; grastate.dat is not changed.

It refuses to run while a server uses the datadir (a lock on ibdata1,
aria_log_control or grastate.dat).

--json prints the input format of 'galera-backup bootstrap --from': collect
it from every node after a full outage.`,
		Example: `  galera-backup recover
  galera-backup recover --defaults-file /etc/mysql/my.cnf --datadir /var/lib/mysql --json > $(hostname).json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := recoverNode(cmd.Context(), g, o.DataDir, o.DefaultsFile, o.Mariadbd, o.Timeout)
			if err != nil {
				return err
			}
			if o.JSON {
				return writeJSON(g, st)
			}
			fmt.Fprintf(g.Out, "%s: position %s (from %s), safe_to_bootstrap %s\n", st.Label(), st.Position(), st.Source, boolFlag(st.SafeToBootstrap))
			if st.StateUnsafe {
				fmt.Fprintf(g.Out, "warning: grastate.dat has the all-zero UUID: Galera marked this node's state unsafe; it will need a full SST and must not bootstrap the cluster\n")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "datadir", "", "the node's datadir (default: datadir from the option files, else /var/lib/mysql)")
	f.StringVar(&o.DefaultsFile, "defaults-file", "", "the node's option file (default: the server's own option files, /etc/mysql/my.cnf)")
	f.StringVar(&o.Mariadbd, "mariadbd", "/usr/sbin/mariadbd", "server binary used for --wsrep-recover")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "time limit for --wsrep-recover (InnoDB crash recovery)")
	f.BoolVar(&o.JSON, "json", false, "print JSON (the input of bootstrap --from)")
	return cmd
}

// serverGroups are the option groups mariadbd reads, in order.
var serverGroups = []string{"mysqld", "server", "mariadb", "mariadbd", "galera"}

// defaultServerConfig is where Debian's server reads its options.
const defaultServerConfig = "/etc/mysql/my.cnf"

// serverSettings reads the server's option groups of a node on this host
// from defaultsFile (else Debian's /etc/mysql/my.cnf when it exists, else
// none) and returns a getter for them and the node's datadir: the given one,
// else the datadir option, else /var/lib/mysql.
func serverSettings(defaultsFile, datadir string) (get func(name string) string, dir string, err error) {
	cfgPath := defaultsFile
	if cfgPath == "" && fileExists(defaultServerConfig) {
		cfgPath = defaultServerConfig
	}
	opts := &mariadb.Options{}
	if cfgPath != "" {
		if opts, err = mariadb.ReadOptionFile(cfgPath); err != nil {
			return nil, "", err
		}
	}
	get = func(name string) string { v, _ := opts.Get(name, serverGroups...); return v }
	if datadir == "" {
		datadir = get("datadir")
	}
	if datadir == "" {
		datadir = "/var/lib/mysql"
	}
	return get, datadir, nil
}

// recoverNode returns the saved state of the stopped node on datadir.
func recoverNode(ctx context.Context, g *Globals, datadir, defaultsFile, mariadbd string, timeout time.Duration) (ist.NodeState, error) {
	get, datadir, err := serverSettings(defaultsFile, datadir)
	if err != nil {
		return ist.NodeState{}, err
	}
	datadir, err = filepath.Abs(datadir)
	if err != nil {
		return ist.NodeState{}, err
	}
	host, _ := os.Hostname()
	st := ist.NodeState{Name: get("wsrep-node-name"), Address: get("wsrep-node-address"), Host: host,
		ClusterAddress: get("wsrep-cluster-address"), DataDir: datadir}
	fi, err := os.Stat(datadir)
	if err != nil {
		return st, fmt.Errorf("node %s: datadir: %w", st.Label(), err)
	}
	if !fi.IsDir() {
		return st, fmt.Errorf("node %s: datadir %s is not a directory", st.Label(), datadir)
	}
	dataHome := get("innodb-data-home-dir")
	if err := mariadb.ServerRunning(datadir, dataHome); err != nil {
		return st, fmt.Errorf("node %s: %w", st.Label(), err)
	}
	gsPath := filepath.Join(datadir, "grastate.dat")
	gs, err := ist.ReadGrastate(gsPath)
	haveGrastate := err == nil
	switch {
	case errors.Is(err, os.ErrNotExist):
		gs = ist.Grastate{UUID: ist.ZeroUUID, Seqno: -1, SafeToBootstrap: true} // what Galera assumes
	case err != nil:
		return st, fmt.Errorf("node %s: %w", st.Label(), err)
	}
	st.SafeToBootstrap = gs.SafeToBootstrap
	st.StateUnsafe = haveGrastate && gs.UUID == ist.ZeroUUID
	if gs.HasPosition() {
		st.UUID, st.Seqno, st.Source = gs.UUID, gs.Seqno, ist.SourceGrastate
		return st, nil
	}
	home := dataHome
	if home == "" {
		home = datadir
	} else if !filepath.IsAbs(home) {
		home = filepath.Join(datadir, home)
	}
	if !fileExists(filepath.Join(home, "ibdata1")) {
		return st, fmt.Errorf("node %s: no InnoDB data (%s) and no position in grastate.dat: nothing to recover", st.Label(), filepath.Join(home, "ibdata1"))
	}
	g.Logger.Info("no position in grastate.dat; running mariadbd --wsrep-recover", "datadir", datadir, "grastate", haveGrastate)
	pos, err := mariadb.RecoverPosition(ctx, mariadb.RecoverOptions{DataDir: datadir, DefaultsFile: defaultsFile,
		DataHome: dataHome, Mariadbd: mariadbd, Timeout: timeout})
	if err != nil {
		return st, fmt.Errorf("node %s: %w", st.Label(), err)
	}
	if haveGrastate && gs.UUID != ist.ZeroUUID && pos.UUID != gs.UUID {
		g.Logger.Warn("recovered position belongs to another history than grastate.dat", "grastate_uuid", gs.UUID, "recovered", pos.String())
	}
	st.UUID, st.Seqno, st.GTID, st.Source = pos.UUID, pos.Seqno, pos.GTID, ist.SourceWsrepRecover
	return st, nil
}

func boolFlag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// clusterSize counts the members of a gcomm:// cluster address (0: none
// listed, e.g. "gcomm://" of a bootstrap configuration).
func clusterSize(addr string) int {
	rest, ok := strings.CutPrefix(strings.TrimSpace(addr), "gcomm://")
	if !ok {
		return 0
	}
	rest, _, _ = strings.Cut(rest, "?")
	n := 0
	for _, a := range strings.Split(rest, ",") {
		if strings.TrimSpace(a) != "" {
			n++
		}
	}
	return n
}
