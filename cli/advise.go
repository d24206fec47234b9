package cli

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/mariadb"
)

type adviseOptions struct {
	statusOptions
	Sample   time.Duration
	Downtime time.Duration
}

// AdviseResult is what `galera-backup advise --json` prints.
type AdviseResult struct {
	ist.Advice
}

func newAdviseCommand(g *Globals) *cobra.Command {
	o := &adviseOptions{}
	cmd := &cobra.Command{
		Use:   "advise",
		Short: "Measure the write load and say how long a node may be down and still rejoin by IST",
		Long: `advise reads each node's Galera counters twice, --sample apart, and from the
difference computes:

  * the write-set rate: wsrep_replicated_bytes + wsrep_received_bytes per
    second (every node caches every write-set, its own and the others'), the
    actions and seqnos per second;
  * the IST horizon: how long a node can be down and still find the
    write-sets it misses in a donor's gcache. When the gcache ring is full
    and discarding during the sample (wsrep_local_cached_downto advances),
    it is the seqnos the cache holds divided by the rate the oldest one
    advances (method "seqno", the most faithful). Otherwise it is gcache.size
    divided by the byte rate plus 28 bytes per cached action for Galera's
    buffer header and padding (method "bytes"). No writes in the sample:
    unbounded (method "idle"). With several nodes, the horizon printed is the
    worst case over which node goes down, the others donating;
  * with --downtime: the gcache.size that would hold that long at this rate
    (+25% headroom);
  * whether wsrep_slave_threads can usefully grow: wsrep_cert_deps_distance
    is how many write-sets could apply in parallel; growing helps only when
    the appliers lag (receive queue, flow-control pauses);
  * flow control: the fraction of the sample the cluster was paused
    (wsrep_flow_control_paused_ns), whether this node caused it
    (wsrep_flow_control_sent), and whether gcs.fc_limit is worth raising.

The horizon is only as good as the sample: measure during a typical busy
period, long enough for several hundred write-sets (the default 60s is a
minimum for a quiet cluster). A bulk load, a schema change or a large
transaction moves it at once.

Nodes are named as for 'status' (--node, --host, --socket; the user and
password from the option files or MYSQL_PWD, never the command line). Give
every member: each is a possible donor.`,
		Example: `  # how long may a node be down? and what gcache for a 2-hour maintenance?
  galera-backup advise --host db1 --host db2 --host db3 --downtime 2h

  # the local node, a 5-minute sample, as JSON for a monitoring system
  galera-backup advise --socket /run/mysqld/mysqld.sock --sample 5m --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runAdvise(cmd.Context(), g, o) },
	}
	o.addNodeListFlags(cmd, "per-node time limit for connecting and for each reading")
	f := cmd.Flags()
	f.DurationVar(&o.Sample, "sample", time.Minute, "time between the two readings (at least 1s; longer is steadier)")
	f.DurationVar(&o.Downtime, "downtime", 0, "also compute the gcache.size for a node to be down this long, e.g. 2h")
	f.BoolVar(&o.JSON, "json", false, "print JSON: ist_horizon_seconds, method, gcache_size_for_downtime, and per node the rates, the advice and both readings")
	return cmd
}

func runAdvise(ctx context.Context, g *Globals, o *adviseOptions) error {
	if o.Sample < time.Second {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("advise: --sample %s: want at least 1s", o.Sample)}
	}
	if o.Downtime < 0 {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("advise: --downtime %s is negative", o.Downtime)}
	}
	targets, err := o.targets()
	if err != nil {
		return err
	}
	samples := make([]ist.Sampled, len(targets))
	eg, ectx := errgroup.WithContext(ctx)
	for i, t := range targets {
		t = g.withPassword(t)
		eg.Go(func() error {
			s, err := sampleNode(ectx, t, o.Timeout, o.Sample)
			if err != nil {
				return fmt.Errorf("node %s: %w", t.Label(), err)
			}
			samples[i] = s
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return fmt.Errorf("advise: every node must answer both readings: %w", err)
	}
	a, err := ist.Advise(samples, o.Downtime)
	if err != nil {
		return fmt.Errorf("advise: %w", err)
	}
	if o.JSON {
		return writeJSON(g, AdviseResult{Advice: a})
	}
	printAdvice(g, a, o.Downtime)
	return nil
}

// sampleNode reads a node twice, every apart, on one connection.
func sampleNode(ctx context.Context, t mariadb.Target, timeout, every time.Duration) (ist.Sampled, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	db, err := mariadb.Open(cctx, t)
	cancel()
	if err != nil {
		return ist.Sampled{}, err
	}
	defer db.Close()
	var name string
	s := ist.Sampled{}
	read := func() (ist.StatusSample, error) {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		st, n, err := readAdviseSample(rctx, db)
		name = n
		return st, err
	}
	if s.T0, err = read(); err != nil {
		return s, err
	}
	select {
	case <-time.After(every):
	case <-ctx.Done():
		return s, ctx.Err()
	}
	if s.T1, err = read(); err != nil {
		return s, err
	}
	s.Node = name
	if s.Node == "" {
		s.Node = t.Label()
	}
	return s, nil
}

// readAdviseSample reads one advise sample and the node's name.
func readAdviseSample(ctx context.Context, db *sql.DB) (ist.StatusSample, string, error) {
	vars, err := mariadb.GlobalStatus(ctx, db, ist.AdviseStatusNames...)
	if err != nil {
		return ist.StatusSample{}, "", err
	}
	at := time.Now()
	var name, opts sql.NullString
	var threads sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT @@wsrep_node_name, @@wsrep_provider_options, @@wsrep_slave_threads").Scan(&name, &opts, &threads); err != nil {
		return ist.StatusSample{}, "", fmt.Errorf("read wsrep settings: %w", err)
	}
	s, err := ist.SampleFromStatus(vars, opts.String, int(threads.Int64), at)
	return s, name.String, err
}

// ReadISTSample reads one sample from the node db is connected to (for
// schedule's ist_horizon_seconds).
func ReadISTSample(ctx context.Context, db *sql.DB) (ist.StatusSample, error) {
	s, _, err := readAdviseSample(ctx, db)
	return s, err
}

func printAdvice(g *Globals, a ist.Advice, downtime time.Duration) {
	w := g.Out
	secs := func(s float64) string { return time.Duration(s * float64(time.Second)).Round(time.Second).String() }
	if a.HorizonSeconds == nil {
		fmt.Fprintf(w, "IST horizon: unbounded: no write-sets during the sample (method %s); sample again while the cluster is busy\n", a.Method)
	} else {
		fmt.Fprintf(w, "IST horizon: a node can be down about %s and still rejoin by IST (method %s", secs(*a.HorizonSeconds), a.Method)
		if len(a.Nodes) > 1 {
			fmt.Fprint(w, ", worst case over which node is down")
		}
		fmt.Fprintln(w, ")")
	}
	if downtime > 0 {
		if a.GcacheForDowntime > 0 {
			fmt.Fprintf(w, "For a downtime of %s: gcache.size = %dM on every node (the measured rate plus 25%%); gcache.size is read at start: set it in wsrep_provider_options and restart the nodes one at a time\n",
				downtime, a.GcacheForDowntime>>20)
		} else {
			fmt.Fprintf(w, "For a downtime of %s: no write-sets during the sample, no size to compute\n", downtime)
		}
	}
	for _, n := range a.Nodes {
		fmt.Fprintf(w, "\n%s (sample %s):\n", n.Node, secs(n.SampleSeconds))
		fmt.Fprintf(w, "  write-sets: %s/s counted, %.1f actions/s, %.1f seqnos/s; in gcache with %d B per action: %s/s\n",
			humanBytes(int64(n.ByteRate)), n.ActionRate, n.SeqnoRate, ist.BufferOverhead, humanBytes(int64(n.RingBytesRate)))
		fmt.Fprintf(w, "  gcache: %s, seqnos %d..%d cached", humanBytes(n.End.GcacheSize), n.End.CachedDownto, n.End.LastCommitted)
		if n.Wrapped {
			fmt.Fprintf(w, ", oldest advancing %.1f/s (full, discarding)", n.DiscardRate)
		} else {
			fmt.Fprint(w, ", oldest did not move (not full yet)")
		}
		fmt.Fprintln(w)
		var hs []string
		if n.SeqnoHorizonSeconds != nil {
			hs = append(hs, "seqno "+secs(*n.SeqnoHorizonSeconds))
		}
		if n.BytesHorizonSeconds != nil {
			hs = append(hs, "bytes "+secs(*n.BytesHorizonSeconds))
		}
		if n.OverheadFactor != nil {
			hs = append(hs, fmt.Sprintf("gcache spends %.2f bytes per counted byte", *n.OverheadFactor))
		}
		if len(hs) == 0 {
			hs = append(hs, "unbounded (idle)")
		}
		fmt.Fprintf(w, "  horizon as a donor: %s (used: %s)\n", strings.Join(hs, ", "), n.Method)
		fmt.Fprintf(w, "  wsrep_slave_threads: %s (%d -> %d): %s\n", n.SlaveThreads.Change, n.SlaveThreads.Current, n.SlaveThreads.Suggested, n.SlaveThreads.Why)
		fc := n.FlowControl
		fmt.Fprintf(w, "  flow control: %s gcs.fc_limit (%s): %s\n", fc.Change, fcLimitText(fc.Current, fc.Suggested), fc.Why)
	}
}

func fcLimitText(cur, suggested int64) string {
	c := "not shown"
	if cur >= 0 {
		c = fmt.Sprint(cur)
	}
	if suggested == cur {
		return c
	}
	return fmt.Sprintf("%s -> %d", c, suggested)
}
