// Package cluster starts real MariaDB + Galera clusters on loopback for
// integration tests, benchmarks and the demo.
//
// Each node gets its own directory under Options.Dir (datadir, my.cnf,
// socket, error log), its own free 127.0.0.1 ports (SQL, gcomm, IST, SST),
// and runs the installed mariadbd with the galera-4 provider as the
// current user (--user=root when run as root). Node 1 bootstraps the
// cluster with --wsrep-new-cluster; the others join it and take a state
// transfer with the configured wsrep_sst_method.
//
// The harness only ever signals processes it started itself, by PID.
// Every failure it reports carries the tail of the node's error log.
package cluster

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/test/testport"
)

// Installed binaries and paths of the Debian packages.
const (
	DefaultProvider  = "/usr/lib/galera/libgalera_smm.so"
	defaultPluginDir = "/usr/lib/mysql/plugin"
	defaultMessages  = "/usr/share/mysql"
)

// SST account created on the bootstrap node; the stock methods and gosst
// read it from wsrep_sst_auth.
const (
	SSTUser     = "sst"
	SSTPassword = "sst-Test-Pw-1"
)

// Options configures a cluster. Zero values are sensible defaults.
type Options struct {
	// Nodes is the number of nodes, 1..5 (default 3).
	Nodes int
	// Dir is the parent directory for all node directories. Required.
	Dir string
	// SSTMethod is wsrep_sst_method (default "mariabackup").
	SSTMethod string
	// BinDir, when set, holds SST scripts under test (wsrep_sst_gosst).
	// mysqld puts <basedir>/bin in front of PATH, so the harness gives
	// each node a private basedir whose bin/ links to BinDir's files; an
	// installed /usr/bin/wsrep_sst_gosst then cannot shadow the build.
	BinDir string
	// ExtraConfig lines are appended to the [mysqld] group of every node.
	ExtraConfig []string
	// NodeConfig lines are appended to the [mysqld] group of one node
	// (key: 1-based index), after ExtraConfig.
	NodeConfig map[int][]string
	// SSTConfig lines go into the [sst] group of every node.
	SSTConfig []string
	// GcacheSize is gcache.size (default "64M").
	GcacheSize string
	// SyncTimeout bounds how long a node may take to reach Synced
	// (default 3 minutes; a full SST on 2 busy cores takes a while).
	SyncTimeout time.Duration
	// Logf receives progress messages (default: discarded).
	Logf func(format string, args ...any)
	// Netlab runs the nodes in two network namespaces joined by one
	// shaped veth pair (Cluster.Link): nodes 1..N-1 in side A, node N in
	// side B, so all of node N's Galera traffic (gcomm, IST, SST) crosses
	// the link. Needs root and iproute2; at least 2 nodes.
	Netlab bool
	// LinkRate is the link's rate when Netlab is set ("1gbit",
	// "100mbit"; default unshaped). Link.SetRate changes it later.
	LinkRate string
	// ProviderOptions are appended to every node's
	// wsrep_provider_options (e.g. "evs.suspect_timeout=PT30S"); a key
	// given here overrides the harness's own value of it.
	ProviderOptions []string
}

func (o *Options) defaults() error {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 || o.Nodes > 5 {
		return fmt.Errorf("cluster: %d nodes requested, supported are 1 to 5", o.Nodes)
	}
	if o.Dir == "" {
		return errors.New("cluster: Options.Dir is required")
	}
	if o.SSTMethod == "" {
		o.SSTMethod = "mariabackup"
	}
	if o.GcacheSize == "" {
		o.GcacheSize = "64M"
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = 3 * time.Minute
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Netlab && o.Nodes < 2 {
		return errors.New("cluster: Netlab needs at least 2 nodes (one on each side of the link)")
	}
	if o.LinkRate != "" {
		if !o.Netlab {
			return errors.New("cluster: LinkRate is set but Netlab is not")
		}
		if _, err := ParseRate(o.LinkRate); err != nil {
			return err
		}
	}
	return nil
}

// Cluster is a set of nodes started by this harness.
type Cluster struct {
	opts  Options
	Nodes []*Node
	// Link is the shaped link between the namespaces when
	// Options.Netlab is set, else nil.
	Link *Link
}

// Node is one mariadbd process with its own directory and ports.
type Node struct {
	c *Cluster
	// Index is 1-based.
	Index                             int
	Name                              string
	Dir, DataDir, Socket, ConfigFile  string
	ErrorLog                          string
	Port, GcommPort, ISTPort, SSTPort int
	mu                                sync.Mutex
	cmd                               *exec.Cmd
	exited                            chan struct{}
	exitErr                           error
	db                                *sql.DB
	bootstrap                         bool

	// Addr is the address of the node's Galera traffic (gcomm, IST,
	// SST): 127.0.0.1, or its namespace's address under Netlab. Its SQL
	// port listens on 127.0.0.1 of its own network namespace; use the
	// unix socket (DB, Exec) from the test.
	Addr string
	// Side is the node's side of the link under Netlab (SideA or SideB).
	Side int
}

// Start creates and starts a cluster and waits until every node is Synced.
// On error, nodes already started are stopped.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if err := CheckInstalled(); err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts}
	ports, err := testport.Reserve(4 * opts.Nodes)
	if err != nil {
		return nil, err
	}
	if opts.Netlab {
		if c.Link, err = NewLink(ctx); err != nil {
			return nil, err
		}
		if err := c.Link.SetRate(ctx, opts.LinkRate); err != nil {
			c.Close()
			return nil, err
		}
	}
	for i := 0; i < opts.Nodes; i++ {
		n := &Node{
			c:         c,
			Index:     i + 1,
			Name:      fmt.Sprintf("node%d", i+1),
			Port:      ports[4*i],
			GcommPort: ports[4*i+1],
			ISTPort:   ports[4*i+2],
			SSTPort:   ports[4*i+3],
			Addr:      "127.0.0.1",
		}
		if c.Link != nil {
			if i == opts.Nodes-1 {
				n.Side = SideB
			}
			n.Addr = c.Link.Addr[n.Side]
		}
		n.Dir = filepath.Join(opts.Dir, n.Name)
		n.DataDir = filepath.Join(n.Dir, "data")
		n.Socket = filepath.Join(n.Dir, "mysqld.sock")
		n.ConfigFile = filepath.Join(n.Dir, "my.cnf")
		n.ErrorLog = filepath.Join(n.Dir, "error.log")
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		if err := n.prepare(ctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	first := c.Nodes[0]
	if err := first.initDatadir(ctx); err != nil {
		c.Close()
		return nil, err
	}
	first.bootstrap = true
	if err := first.Start(ctx); err != nil {
		c.Close()
		return nil, err
	}
	first.bootstrap = false
	if err := first.createSSTUser(ctx); err != nil {
		c.Close()
		return nil, err
	}
	for _, n := range c.Nodes[1:] {
		if err := n.Start(ctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// CheckInstalled reports missing packages with the command that installs them.
func CheckInstalled() error {
	var missing []string
	for _, p := range []string{"mariadbd", "mariadb-install-db", "mariabackup", "mbstream"} {
		if _, err := exec.LookPath(p); err != nil {
			if _, err2 := os.Stat("/usr/sbin/" + p); err2 != nil {
				missing = append(missing, p)
			}
		}
	}
	if _, err := os.Stat(DefaultProvider); err != nil {
		missing = append(missing, DefaultProvider)
	}
	if len(missing) > 0 {
		return fmt.Errorf("cluster: missing %s; run `make deps` (apt-get install mariadb-server galera-4 mariadb-backup)", strings.Join(missing, ", "))
	}
	return nil
}

// Close stops every node the harness started (clean shutdown, then SIGKILL
// after a grace period), then removes the network lab's namespaces. It
// never touches other processes.
func (c *Cluster) Close() error {
	var errs []error
	for i := len(c.Nodes) - 1; i >= 0; i-- {
		n := c.Nodes[i]
		if n.Running() {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			if err := n.Stop(ctx); err != nil {
				errs = append(errs, err)
				_ = n.Kill()
			}
			cancel()
		}
	}
	if c.Link != nil {
		errs = append(errs, c.Link.Close())
	}
	return errors.Join(errs...)
}

// Node returns node i (1-based).
func (c *Cluster) Node(i int) *Node { return c.Nodes[i-1] }

// Tails returns the error-log tails of all nodes, for failure messages.
func (c *Cluster) Tails(lines int) string {
	var b strings.Builder
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "--- %s error log (last %d lines) ---\n%s\n", n.Name, lines, n.ErrorLogTail(lines))
	}
	return b.String()
}

func (n *Node) logf(format string, args ...any) {
	n.c.opts.Logf("%s: "+format, append([]any{n.Name}, args...)...)
}

// clusterAddress lists every node's gcomm address.
func (c *Cluster) clusterAddress() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = fmt.Sprintf("%s:%d", n.Addr, n.GcommPort)
	}
	return "gcomm://" + strings.Join(addrs, ",")
}

// baseDir is the private basedir used when BinDir is set.
func (n *Node) baseDir() string { return filepath.Join(n.Dir, "basedir") }

func (n *Node) prepare(ctx context.Context) error {
	if err := os.MkdirAll(n.DataDir, 0o750); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	if err := os.MkdirAll(n.tmpDir(), 0o750); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	o := n.c.opts
	if o.BinDir != "" {
		bin := filepath.Join(n.baseDir(), "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			return err
		}
		entries, err := os.ReadDir(o.BinDir)
		if err != nil {
			return fmt.Errorf("cluster: BinDir: %w", err)
		}
		for _, e := range entries {
			src, _ := filepath.Abs(filepath.Join(o.BinDir, e.Name()))
			if err := os.Symlink(src, filepath.Join(bin, e.Name())); err != nil && !os.IsExist(err) {
				return err
			}
		}
	}
	return os.WriteFile(n.ConfigFile, []byte(n.config()), 0o600)
}

func (n *Node) config() string {
	o := n.c.opts
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# generated by gosst test/cluster for %s", n.Name)
	w("[client]")
	w("socket=%s", n.Socket)
	w("user=root")
	w("")
	w("[mysqld]")
	w("datadir=%s", n.DataDir)
	w("socket=%s", n.Socket)
	w("port=%d", n.Port)
	w("bind-address=127.0.0.1")
	w("pid-file=%s", filepath.Join(n.Dir, "mysqld.pid"))
	w("log-error=%s", n.ErrorLog)
	w("tmpdir=%s", n.Dir)
	w("server_id=%d", 10+n.Index)
	if o.BinDir != "" {
		w("basedir=%s", n.baseDir())
		w("plugin-dir=%s", defaultPluginDir)
		w("lc-messages-dir=%s", defaultMessages)
	}
	w("log_bin=mysql-bin")
	w("log_slave_updates=ON")
	w("binlog_format=ROW")
	w("default_storage_engine=InnoDB")
	w("innodb_autoinc_lock_mode=2")
	w("innodb_buffer_pool_size=32M")
	w("innodb_log_file_size=32M")
	w("innodb_flush_log_at_trx_commit=2")
	w("key_buffer_size=1M")
	w("aria_pagecache_buffer_size=8M")
	w("performance_schema=OFF")
	w("max_connections=50")
	w("skip-name-resolve")
	w("wsrep_on=ON")
	w("wsrep_provider=%s", DefaultProvider)
	w("wsrep_cluster_name=gosst-test")
	w("wsrep_cluster_address=%s", n.c.clusterAddress())
	w("wsrep_node_name=%s", n.Name)
	w("wsrep_node_address=%s:%d", n.Addr, n.GcommPort)
	w("wsrep_sst_receive_address=%s:%d", n.Addr, n.SSTPort)
	w("wsrep_sst_method=%s", o.SSTMethod)
	w("wsrep_sst_auth=%s:%s", SSTUser, SSTPassword)
	w("wsrep_gtid_mode=ON")
	w("wsrep_gtid_domain_id=7")
	w("wsrep_slave_threads=2")
	extra := ""
	for _, po := range o.ProviderOptions {
		extra += ";" + po
	}
	w(`wsrep_provider_options="base_port=%d;gmcast.listen_addr=tcp://%s:%d;ist.recv_addr=%s:%d;gcache.size=%s;gcache.page_size=16M;evs.suspect_timeout=PT5S;evs.inactive_timeout=PT10S;pc.wait_prim_timeout=PT30S%s"`,
		n.GcommPort, n.Addr, n.GcommPort, n.Addr, n.ISTPort, o.GcacheSize, extra)
	for _, l := range o.ExtraConfig {
		w("%s", l)
	}
	for _, l := range o.NodeConfig[n.Index] {
		w("%s", l)
	}
	w("")
	w("[sst]")
	// Both SST methods archive their old mariabackup logs (default
	// /tmp/sst_log_archive): keep a test node's with the node.
	w("sst-log-archive-dir=%s", filepath.Join(n.Dir, "sst_log_archive"))
	for _, l := range o.SSTConfig {
		w("%s", l)
	}
	return b.String()
}

// initDatadir runs mariadb-install-db (bootstrap node only; joiners start
// empty and take an SST).
func (n *Node) initDatadir(ctx context.Context) error {
	args := []string{
		"--defaults-file=" + n.ConfigFile,
		"--user=" + currentUser(),
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
	}
	if n.c.opts.BinDir != "" {
		// The private basedir only holds bin/; the system tables' SQL
		// scripts are under the real one.
		args = append(args, "--basedir=/usr")
	}
	cmd := exec.CommandContext(ctx, "mariadb-install-db", args...)
	cmd.Env = n.env()
	cmd.Dir = n.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: mariadb-install-db: %w\n%s\n--- %s error log tail ---\n%s", n.Name, err, tail(string(out), 10), n.Name, n.ErrorLogTail(30))
	}
	return nil
}

func currentUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return fmt.Sprint(os.Geteuid())
}

func (n *Node) env() []string {
	path := "/usr/sbin:/usr/bin:/sbin:/bin"
	if d := n.c.opts.BinDir; d != "" {
		abs, _ := filepath.Abs(d)
		path = abs + ":" + path
	}
	// TMPDIR inside the node's directory: scratch directories of SST
	// scripts that a fault test kills go away with the cluster.
	env := []string{"PATH=" + path, "HOME=" + n.Dir, "TMPDIR=" + n.tmpDir(), "LANG=C", "TZ=UTC"}
	return env
}

// tmpDir is the TMPDIR of the node's processes.
func (n *Node) tmpDir() string { return filepath.Join(n.Dir, "tmp") }

// Running reports whether the node's mariadbd process is alive.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// PID is the node's mariadbd process id, or 0 when it is not running.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Start starts mariadbd and waits until it is Synced. A node whose last
// run crashed (grastate seqno -1 over an existing datadir) first runs
// --wsrep-recover and starts from the recovered position, as the Debian
// galera_recovery wrapper does.
func (n *Node) Start(ctx context.Context) error {
	if err := n.StartNoWait(ctx); err != nil {
		return err
	}
	return n.WaitSynced(ctx, n.c.opts.SyncTimeout)
}

// StartNewCluster starts the node with --wsrep-new-cluster, as
// galera_new_cluster does, and waits until it is Synced: after a full
// outage, the node chosen to bootstrap the cluster. A crashed node starts
// from its recovered position (like Debian's galera_recovery), so the
// history continues.
func (n *Node) StartNewCluster(ctx context.Context) error {
	n.bootstrap = true
	err := n.StartNoWait(ctx)
	n.bootstrap = false
	if err != nil {
		return err
	}
	return n.WaitSynced(ctx, n.c.opts.SyncTimeout)
}

// StartNoWait starts mariadbd and returns once the process is running.
func (n *Node) StartNoWait(ctx context.Context) error {
	if n.Running() {
		return fmt.Errorf("%s: already running (pid %d)", n.Name, n.PID())
	}
	args := []string{"--defaults-file=" + n.ConfigFile, "--user=" + currentUser()}
	if n.bootstrap {
		args = append(args, "--wsrep-new-cluster")
	}
	pos, err := n.recoverPosition(ctx)
	if err != nil {
		return err
	}
	if pos != "" {
		args = append(args, "--wsrep_start_position="+pos)
	}
	n.logf("starting mariadbd (ports sql %d gcomm %d ist %d sst %d)", n.Port, n.GcommPort, n.ISTPort, n.SSTPort)
	argv := append([]string{"/usr/sbin/mariadbd"}, args...)
	if l := n.c.Link; l != nil {
		argv = l.command(n.Side, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = n.env()
	cmd.Dir = n.Dir
	// Own process group: the stock SST scripts kill mysqld's whole group
	// when they think it died; that must never reach the test process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.OpenFile(filepath.Join(n.Dir, "mariadbd.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: start mariadbd: %w", n.Name, err)
	}
	exited := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.exited, n.exitErr = cmd, exited, nil
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		n.mu.Lock()
		n.exitErr = err
		n.mu.Unlock()
		close(exited)
	}()
	return nil
}

// recoverPosition runs mariadbd --wsrep-recover when the saved state does
// not carry a position but the datadir holds data.
func (n *Node) recoverPosition(ctx context.Context) (string, error) {
	if n.bootstrap {
		if _, err := os.Stat(filepath.Join(n.DataDir, "grastate.dat")); err != nil {
			return "", nil
		}
	}
	gs, err := n.Grastate()
	if err != nil || gs.Seqno >= 0 {
		return "", nil // fresh node or clean shutdown: nothing to recover
	}
	if _, err := os.Stat(filepath.Join(n.DataDir, "ibdata1")); err != nil {
		return "", nil
	}
	log := filepath.Join(n.Dir, "wsrep-recover.log")
	_ = os.Remove(log)
	cmd := exec.CommandContext(ctx, "/usr/sbin/mariadbd", "--defaults-file="+n.ConfigFile, "--user="+currentUser(),
		"--wsrep-recover", "--log-error="+log)
	cmd.Env = n.env()
	cmd.Dir = n.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: mariadbd --wsrep-recover: %w\n%s\n%s", n.Name, err, out, tailFile(log, 30))
	}
	data, _ := os.ReadFile(log)
	const marker = "WSREP: Recovered position: "
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.Index(line, marker); i >= 0 {
			pos := strings.TrimSpace(line[i+len(marker):])
			n.logf("recovered position %s", pos)
			return pos, nil
		}
	}
	return "", nil
}

// WaitSynced polls the node until wsrep_local_state_comment is Synced in a
// primary component. It fails at once, with the error-log tail, if
// mariadbd exits.
func (n *Node) WaitSynced(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "no answer yet"
	// 100 ms: benchmarks time node starts with this loop (sstbench).
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		n.mu.Lock()
		exited, cmd := n.exited, n.cmd
		n.mu.Unlock()
		if cmd == nil {
			return fmt.Errorf("%s: not started", n.Name)
		}
		select {
		case <-exited:
			n.mu.Lock()
			err := n.exitErr
			n.mu.Unlock()
			return fmt.Errorf("%s: mariadbd exited before reaching Synced (%v)\n--- %s error log tail ---\n%s", n.Name, err, n.Name, n.ErrorLogTail(40))
		case <-ctx.Done():
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s: waiting for Synced: %w (last state: %s)", n.Name, ctx.Err(), last)
			}
			return fmt.Errorf("%s: not Synced after %s (last state: %s)\n--- %s error log tail ---\n%s", n.Name, timeout, last, n.Name, n.ErrorLogTail(40))
		case <-tick.C:
		}
		db, err := n.openDB()
		if err != nil {
			last = err.Error()
			continue
		}
		qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
		var name, state, status string
		err = db.QueryRowContext(qctx, "SHOW GLOBAL STATUS LIKE 'wsrep_local_state_comment'").Scan(&name, &state)
		if err == nil {
			err = db.QueryRowContext(qctx, "SHOW GLOBAL STATUS LIKE 'wsrep_cluster_status'").Scan(&name, &status)
		}
		qcancel()
		if err != nil {
			last = err.Error()
			continue
		}
		last = state + "/" + status
		if state == "Synced" && status == "Primary" {
			n.logf("Synced")
			return nil
		}
	}
}

// quietDriver stops go-sql-driver from logging about pooled connections
// that a node restart broke; the pool reconnects by itself.
var quietDriver sync.Once

// openDB returns a pooled connection to the node over its unix socket.
func (n *Node) openDB() (*sql.DB, error) {
	quietDriver.Do(func() { _ = mysql.SetLogger(log.New(io.Discard, "", 0)) })
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.db != nil {
		return n.db, nil
	}
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "unix"
	cfg.Addr = n.Socket
	cfg.Timeout = 3 * time.Second
	cfg.ReadTimeout = 60 * time.Second
	cfg.WriteTimeout = 60 * time.Second
	cfg.MultiStatements = true
	cfg.ParseTime = true
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(8)
	db.SetConnMaxIdleTime(30 * time.Second)
	n.db = db
	return db, nil
}

// DB returns a *sql.DB connected to the node as root over its socket.
// The pool survives restarts of the node.
func (n *Node) DB() *sql.DB {
	db, err := n.openDB()
	if err != nil {
		panic(err) // NewConnector fails only on a malformed config built above
	}
	return db
}

// DSN is a go-sql-driver DSN for the node (root over TCP, no password).
func (n *Node) DSN() string { return fmt.Sprintf("root@tcp(127.0.0.1:%d)/", n.Port) }

// Exec runs statements on the node.
func (n *Node) Exec(ctx context.Context, query string, args ...any) error {
	if _, err := n.DB().ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("%s: %q: %w", n.Name, abbreviate(query), err)
	}
	return nil
}

// erDeadlock is MariaDB's ER_LOCK_DEADLOCK (SQLSTATE 40001), which Galera
// also returns for a certification conflict or a transaction aborted by a
// replicated write ("Deadlock found when trying to get lock").
const erDeadlock = 1213

// causalAttempts bounds ExecCausal's retries of a certification conflict.
const causalAttempts = 5

// ExecCausal runs query on the node as an application that writes to
// several nodes must. It first waits until this node has applied every
// write the cluster committed before it (wsrep_sync_wait=15 for the
// statement's session: reads, UPDATE/DELETE, INSERT/REPLACE and SHOW), so
// a write right after DDL or writes on another node sees them instead of
// colliding with their replay; and it retries a certification conflict
// (error 1213) a few times, as Galera's documentation tells applications
// to. A 1213 rolls back the whole failed statement (autocommit) or
// transaction, so query must be one statement or one transaction. Use it
// for every write that follows DDL or writes on another node.
func (n *Node) ExecCausal(ctx context.Context, query string, args ...any) error {
	var err error
	for attempt := 1; attempt <= causalAttempts; attempt++ {
		err = n.execCausal(ctx, query, args...)
		var me *mysql.MySQLError
		if err == nil || !errors.As(err, &me) || me.Number != erDeadlock || ctx.Err() != nil {
			break
		}
		n.logf("%q: certification conflict (attempt %d of %d): %v", abbreviate(query), attempt, causalAttempts, err)
	}
	if err != nil {
		return fmt.Errorf("%s: %q: %w", n.Name, abbreviate(query), err)
	}
	return nil
}

func (n *Node) execCausal(ctx context.Context, query string, args ...any) error {
	conn, err := n.DB().Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION wsrep_sync_wait = 15"); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, query, args...)
	if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "SET SESSION wsrep_sync_wait = DEFAULT"); rerr != nil {
		// Never hand a causal session back to the pool.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	return err
}

// QueryString runs a query returning one value, as a string.
func (n *Node) QueryString(ctx context.Context, query string, args ...any) (string, error) {
	var v sql.NullString
	if err := n.DB().QueryRowContext(ctx, query, args...).Scan(&v); err != nil {
		return "", fmt.Errorf("%s: %q: %w", n.Name, abbreviate(query), err)
	}
	return v.String, nil
}

// Status returns one global status variable.
func (n *Node) Status(ctx context.Context, name string) (string, error) {
	var v string
	if err := n.DB().QueryRowContext(ctx,
		"SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = UPPER(?)", name).Scan(&v); err != nil {
		return "", fmt.Errorf("%s: status %s: %w", n.Name, name, err)
	}
	return v, nil
}

// stopGrace bounds a clean shutdown before SIGKILL.
const stopGrace = 90 * time.Second

// Stop shuts the node down cleanly (SIGTERM) and waits for the process to
// exit; after stopGrace or when ctx ends it is killed.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	n.logf("stopping (SIGTERM to pid %d)", cmd.Process.Pid)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	// A test-sized node stops in seconds. galera-4 26.4.23 can deadlock in
	// its own abort after a failed SST (two threads both joining the gcomm
	// thread); such a process never exits on SIGTERM, so the grace period is
	// bounded whatever ctx allows.
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%s: did not stop cleanly, killed: %w\n%s", n.Name, ctx.Err(), n.ErrorLogTail(20))
	case <-grace.C:
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%s: did not stop within %s of SIGTERM, killed\n%s", n.Name, stopGrace, n.ErrorLogTail(20))
	}
}

// Kill sends SIGKILL to the node's mariadbd and waits for it to die.
func (n *Node) Kill() error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	n.logf("killing pid %d", cmd.Process.Pid)
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: kill: %w", n.Name, err)
	}
	<-exited
	return nil
}

// Wipe empties the node's datadir so the next Start takes a full SST. The
// directory itself stays: it may be a mount point (test/bench/sstbench).
// The node must be stopped.
func (n *Node) Wipe() error {
	if n.Running() {
		return fmt.Errorf("%s: wipe of a running node refused", n.Name)
	}
	if err := os.MkdirAll(n.DataDir, 0o750); err != nil {
		return err
	}
	entries, err := os.ReadDir(n.DataDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(n.DataDir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// ErrorLogTail returns the last lines of the node's error log.
func (n *Node) ErrorLogTail(lines int) string { return tailFile(n.ErrorLog, lines) }

// Grastate reads the node's grastate.dat.
func (n *Node) Grastate() (ist.Grastate, error) {
	return ist.ReadGrastate(filepath.Join(n.DataDir, "grastate.dat"))
}

func tailFile(path string, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	const max = 64 << 10
	fi, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	off := fi.Size() - max
	if off < 0 {
		off = 0
	}
	buf := make([]byte, fi.Size()-off)
	n, _ := f.ReadAt(buf, off)
	return tail(string(buf[:n]), lines)
}

// LogSize returns the size of n's error log (0 if it has none yet): an
// offset for LogSince.
func (n *Node) LogSize() int64 {
	fi, err := os.Stat(n.ErrorLog)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// LogSince returns what was appended to n's error log after offset. It
// reads from offset only: tests poll it, on logs of many megabytes.
func (n *Node) LogSince(offset int64) string {
	f, err := os.Open(n.ErrorLog)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < offset {
		return ""
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, offset, fi.Size()-offset))
	return string(b)
}

// GrepLines returns the lines of s that contain sub.
func GrepLines(s, sub string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// Tail returns the last lines of s.
func Tail(s string, lines int) string { return tail(s, lines) }

func tail(s string, lines int) string {
	s = strings.TrimRight(s, "\n")
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func abbreviate(q string) string {
	if len(q) > 80 {
		return q[:77] + "..."
	}
	return q
}

func (n *Node) createSSTUser(ctx context.Context) error {
	return n.Exec(ctx, fmt.Sprintf(
		"CREATE USER IF NOT EXISTS '%s'@'localhost' IDENTIFIED BY '%s'; "+
			"GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR ON *.* TO '%s'@'localhost'",
		SSTUser, SSTPassword, SSTUser))
}

// SetSSTMethod changes wsrep_sst_method in every node's my.cnf. A running
// node keeps its method until it is restarted; the joiner's method is the
// one a state transfer uses.
func (c *Cluster) SetSSTMethod(method string) error {
	c.opts.SSTMethod = method
	for _, n := range c.Nodes {
		if err := os.WriteFile(n.ConfigFile, []byte(n.config()), 0o600); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	return nil
}
