// Command demo runs gosst end to end on this machine: a real 3-node
// MariaDB Galera cluster on loopback, then the galera-backup commands
// against it (`make demo`), or `galera-backup schedule` on all three nodes
// (`make demo-schedule`, the -schedule flag). Nothing outside its own
// temporary directory is touched, and only processes it started are
// stopped.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/test/cluster"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding the built galera-backup and wsrep_sst_gosst")
	keep := flag.Bool("keep", false, "leave the cluster running at the end until Ctrl-C")
	sst := flag.String("sst", "gosst", "wsrep_sst_method of the demo cluster: gosst or mariabackup")
	sched := flag.Bool("schedule", false, "run galera-backup schedule on all three nodes instead of the command tour")
	flag.Parse()
	if err := run(*bin, *keep, *sst, *sched); err != nil {
		fmt.Fprintf(os.Stderr, "demo failed: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

// demo is the running cluster and how to call galera-backup against it.
type demo struct {
	ctx       context.Context
	gbPath    string
	dir       string
	sstMethod string
	c         *cluster.Cluster
	seen      []*backup.Manifest // every backup the schedule demo has listed
}

func run(bin string, keep bool, sstMethod string, sched bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := startDemo(ctx, bin, sstMethod)
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the demo cluster")
		d.c.Close()
		if !keep {
			os.RemoveAll(d.dir)
		}
	}()
	if sched {
		err = d.scheduleTour()
	} else {
		err = d.tour()
	}
	if err != nil {
		return err
	}
	if keep {
		step("cluster left running; connect with: mariadb -S %s -u root   (Ctrl-C to stop)", d.c.Node(1).Socket)
		<-ctx.Done()
	}
	step("demo finished")
	return nil
}

// startDemo starts the 3-node cluster in a new temporary directory. On
// error nothing is left running.
func startDemo(ctx context.Context, bin, sstMethod string) (*demo, error) {
	gbPath, err := filepath.Abs(filepath.Join(bin, "galera-backup"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(gbPath); err != nil {
		return nil, fmt.Errorf("%s not built; run `make build` first", gbPath)
	}
	dir, err := os.MkdirTemp("", "gosst-demo-")
	if err != nil {
		return nil, err
	}
	binAbs, _ := filepath.Abs(bin)
	step("starting a 3-node MariaDB Galera cluster on 127.0.0.1 under %s (wsrep_sst_method=%s)", dir, sstMethod)
	start := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{
		Nodes:     3,
		Dir:       dir,
		SSTMethod: sstMethod,
		BinDir:    binAbs,
		Logf:      func(f string, a ...any) { fmt.Printf("    "+f+"\n", a...) },
	})
	if err != nil {
		return nil, err
	}
	fmt.Printf("    cluster formed in %s (node 2 and 3 joined by full %s SST)\n", time.Since(start).Round(time.Second), sstMethod)
	return &demo{ctx: ctx, gbPath: gbPath, dir: dir, sstMethod: sstMethod, c: c}, nil
}

// gb runs galera-backup with its output on stdout.
func (d *demo) gb(args ...string) error {
	fmt.Printf("$ galera-backup %s\n", shellJoin(args))
	cmd := exec.CommandContext(d.ctx, d.gbPath, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	return cmd.Run()
}

// status runs galera-backup status against every node.
func (d *demo) status() error {
	args := []string{"status"}
	for _, n := range d.c.Nodes {
		args = append(args, "--socket", n.Socket)
	}
	err := d.gb(args...)
	if err != nil {
		fmt.Printf("(exit status: %v)\n", err)
	}
	return err
}

// tour is `make demo`: status, IST, SST, backup, verify, restore, PITR.
func (d *demo) tour() error {
	step("galera-backup status: every node should be Synced")
	if err := d.status(); err != nil {
		return fmt.Errorf("status on a healthy cluster failed: %w", err)
	}
	if err := d.c.Node(1).Exec(d.ctx, "CREATE DATABASE demo; CREATE TABLE demo.t (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(64))"); err != nil {
		return err
	}
	for _, part := range []func() error{d.rejoinByIST, d.rejoinBySST, d.backupAndRestore, d.pointInTime} {
		if err := part(); err != nil {
			return err
		}
	}
	return nil
}

// insert writes n rows with note on node1.
func (d *demo) insert(n int, note string) error {
	for i := 0; i < n; i++ {
		if err := d.c.Node(1).Exec(d.ctx, "INSERT INTO demo.t (note) VALUES ('"+note+"')"); err != nil {
			return err
		}
	}
	return nil
}

// rejoinByIST stops node3, writes while it is away, and restarts it.
func (d *demo) rejoinByIST() error {
	ctx, n3 := d.ctx, d.c.Node(3)
	step("stopping node3 cleanly, then writing on node1 while it is away")
	if err := n3.Stop(ctx); err != nil {
		return err
	}
	if err := d.insert(20, "written while node3 was down"); err != nil {
		return err
	}
	step("galera-backup status with node3 down: its row shows the error, exit status 3")
	if err := d.status(); err == nil {
		return fmt.Errorf("status succeeded although node3 is down")
	}
	step("restarting node3: it catches up by IST from a donor's gcache (gosst's --bypass path)")
	from := n3.LogSize()
	if err := n3.Start(ctx); err != nil {
		return err
	}
	sstLines(n3, from)
	rows, err := n3.QueryString(ctx, "SELECT COUNT(*) FROM demo.t")
	if err != nil {
		return err
	}
	fmt.Printf("    node3 has %s rows written while it was down\n", rows)
	return d.status()
}

// rejoinBySST wipes node3's datadir and restarts it.
func (d *demo) rejoinBySST() error {
	ctx, n3 := d.ctx, d.c.Node(3)
	step("wiping node3's datadir: it rejoins by a full %s SST", d.sstMethod)
	if err := n3.Stop(ctx); err != nil {
		return err
	}
	if err := n3.Wipe(); err != nil {
		return err
	}
	from := n3.LogSize()
	t0 := time.Now()
	if err := n3.Start(ctx); err != nil {
		return err
	}
	fmt.Printf("    node3 Synced again after %s\n", time.Since(t0).Round(100*time.Millisecond))
	sstLines(n3, from)
	return nil
}

// backupAndRestore takes a full and an incremental backup, verifies them,
// and restores the latest into node3 with --galera.
func (d *demo) backupAndRestore() error {
	ctx, n1, n3 := d.ctx, d.c.Node(1), d.c.Node(3)
	store := filepath.Join(d.dir, "backups")
	common := []string{"--storage", store, "--socket", n1.Socket, "--user", "root"}
	step("full backup of node1 to local storage (%s), then more writes and an incremental", store)
	if err := d.gb(append([]string{"backup"}, common...)...); err != nil {
		return err
	}
	if err := d.insert(20, "after the full backup"); err != nil {
		return err
	}
	if err := d.gb(append([]string{"backup", "--incremental"}, common...)...); err != nil {
		return err
	}
	step("listing and verifying the backups (restore into a scratch dir, CHECK TABLE)")
	if err := d.gb("list", "--storage", store); err != nil {
		return err
	}
	if err := d.gb("verify", "--all", "--restore-test", "--storage", store, "--log-level", "warn"); err != nil {
		return err
	}
	step("restoring the latest backup into node3's datadir with --galera: node3 rejoins by IST")
	if err := n3.Stop(ctx); err != nil {
		return err
	}
	if err := n3.Wipe(); err != nil {
		return err
	}
	if err := d.gb("restore", "latest", "--target-dir", n3.DataDir, "--galera", "--storage", store, "--log-level", "warn"); err != nil {
		return err
	}
	from := n3.LogSize()
	if err := n3.Start(ctx); err != nil {
		return err
	}
	sstLines(n3, from)
	rows, err := n3.QueryString(ctx, "SELECT COUNT(*) FROM demo.t")
	if err != nil {
		return err
	}
	fmt.Printf("    node3 has %s rows after restore + IST\n", rows)
	return d.status()
}

// pointInTime makes a bad DELETE, archives the binlogs and restores to
// just before it.
func (d *demo) pointInTime() error {
	ctx, n1 := d.ctx, d.c.Node(1)
	store := filepath.Join(d.dir, "backups")
	step("point-in-time restore: a bad DELETE on node1, archived binlogs, restore to just before it")
	if err := d.insert(1, "last good row"); err != nil {
		return err
	}
	before, err := n1.QueryString(ctx, "SELECT COUNT(*) FROM demo.t")
	if err != nil {
		return err
	}
	if err := n1.Exec(ctx, "DELETE FROM demo.t WHERE id % 2 = 0"); err != nil {
		return err
	}
	badGTID, err := n1.QueryString(ctx, "SELECT @@last_gtid")
	if err != nil {
		return err
	}
	good, err := n1.QueryString(ctx, "SELECT COUNT(*) FROM demo.t")
	if err != nil {
		return err
	}
	fmt.Printf("    the DELETE committed as GTID %s; node1 now has %s rows\n", badGTID, good)
	if err := n1.Exec(ctx, "FLUSH BINARY LOGS"); err != nil {
		return err
	}
	if err := d.gb("binlog", "archive", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn"); err != nil {
		return err
	}
	if err := d.gb("list", "--pitr", "--storage", store); err != nil {
		return err
	}
	pitrDir := filepath.Join(d.dir, "pitr")
	if err := d.gb("restore", "--pitr-gtid", badGTID, "--target-dir", pitrDir, "--storage", store, "--log-level", "warn"); err != nil {
		return err
	}
	restored, err := countRows(ctx, pitrDir, "demo.t")
	if err != nil {
		return err
	}
	fmt.Printf("    the point-in-time copy in %s has %d rows (%s before the DELETE)\n", pitrDir, restored, before)
	if fmt.Sprint(restored) != before {
		return fmt.Errorf("point-in-time restore has %d rows, want %s", restored, before)
	}
	return nil
}

// sstLines prints gosst's SST/IST lines of n's error log from byte from.
func sstLines(n *cluster.Node, from int64) {
	for _, l := range strings.Split(n.LogSince(from), "\n") {
		if strings.Contains(l, "gosst") && (strings.Contains(l, "received and verified") || strings.Contains(l, "donor reports IST")) {
			fmt.Println("    " + strings.TrimSpace(l))
		}
	}
}

// countRows starts a throwaway mariadbd (wsrep off, no network) on a
// restored datadir and counts the rows of table.
func countRows(ctx context.Context, datadir, table string) (int, error) {
	srv, err := mariadb.StartScratch(ctx, mariadb.ScratchOptions{DataDir: datadir, BufferPool: "32M"})
	if err != nil {
		return 0, err
	}
	defer srv.Stop()
	db, err := srv.DB()
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n)
	return n, err
}

func shellJoin(args []string) string {
	return strings.Join(args, " ")
}
