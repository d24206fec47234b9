// Command demo runs gosst end to end on this machine: a real 3-node
// MariaDB Galera cluster on loopback, then the galera-backup commands
// against it. `make demo` runs it; nothing outside its own temporary
// directory is touched, and only processes it started are stopped.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gosst/gosst/test/cluster"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding the built galera-backup and wsrep_sst_gosst")
	keep := flag.Bool("keep", false, "leave the cluster running at the end until Ctrl-C")
	flag.Parse()
	if err := run(*bin, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "demo failed: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func run(bin string, keep bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	gb, err := filepath.Abs(filepath.Join(bin, "galera-backup"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(gb); err != nil {
		return fmt.Errorf("%s not built; run `make build` first", gb)
	}
	dir, err := os.MkdirTemp("", "gosst-demo-")
	if err != nil {
		return err
	}
	step("starting a 3-node MariaDB Galera cluster on 127.0.0.1 under %s", dir)
	start := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{
		Nodes: 3,
		Dir:   dir,
		Logf:  func(f string, a ...any) { fmt.Printf("    "+f+"\n", a...) },
	})
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the demo cluster")
		c.Close()
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	fmt.Printf("    cluster formed in %s (node 2 and 3 joined by full SST)\n", time.Since(start).Round(time.Second))

	status := func() error {
		args := []string{"status"}
		for _, n := range c.Nodes {
			args = append(args, "--socket", n.Socket)
		}
		fmt.Printf("$ galera-backup %s\n", shellJoin(args))
		cmd := exec.CommandContext(ctx, gb, args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		err := cmd.Run()
		if err != nil {
			fmt.Printf("(exit status: %v)\n", err)
		}
		return err
	}

	step("galera-backup status: every node should be Synced")
	if err := status(); err != nil {
		return fmt.Errorf("status on a healthy cluster failed: %w", err)
	}

	n1, n3 := c.Node(1), c.Node(3)
	if err := n1.Exec(ctx, "CREATE DATABASE demo; CREATE TABLE demo.t (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(64))"); err != nil {
		return err
	}
	step("stopping node3 cleanly, then writing on node1 while it is away")
	if err := n3.Stop(ctx); err != nil {
		return err
	}
	for i := 0; i < 20; i++ {
		if err := n1.Exec(ctx, "INSERT INTO demo.t (note) VALUES ('written while node3 was down')"); err != nil {
			return err
		}
	}
	step("galera-backup status with node3 down: its row shows the error, exit status 3")
	if err := status(); err == nil {
		return fmt.Errorf("status succeeded although node3 is down")
	}

	step("restarting node3: it catches up by IST from a donor's gcache")
	if err := n3.Start(ctx); err != nil {
		return err
	}
	rows, err := n3.QueryString(ctx, "SELECT COUNT(*) FROM demo.t")
	if err != nil {
		return err
	}
	fmt.Printf("    node3 has %s rows written while it was down\n", rows)
	if err := status(); err != nil {
		return err
	}

	if keep {
		step("cluster left running; connect with: mariadb -S %s -u root   (Ctrl-C to stop)", n1.Socket)
		<-ctx.Done()
	}
	step("demo finished")
	return nil
}

func shellJoin(args []string) string {
	s := ""
	for i, a := range args {
		if i > 0 {
			s += " "
		}
		s += a
	}
	return s
}
