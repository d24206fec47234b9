package sst_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/test/cluster"
)

// TestJoinerOwnLayout gives node 3 its own InnoDB and Aria directories
// outside the datadir (the donors keep everything in the datadir): the
// full SST must put ibdata, redo and Aria logs where node 3's
// configuration says, and node 3 must start and sync from them.
func TestJoinerOwnLayout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	clusterSynced(t, ctx)
	n1, n3 := shared.Node(1), shared.Node(3)
	mustExec(t, ctx, n1, "CREATE DATABASE IF NOT EXISTS sstlayout")
	mustExec(t, ctx, n1, "CREATE TABLE IF NOT EXISTS sstlayout.t (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB")
	mustExec(t, ctx, n1, "REPLACE INTO sstlayout.t VALUES (1, 'before the layout change')")
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.Wipe(); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{
		"innodb_data_home_dir":      filepath.Join(n3.Dir, "ibdata"),
		"innodb_log_group_home_dir": filepath.Join(n3.Dir, "redo"),
		"aria_log_dir_path":         filepath.Join(n3.Dir, "aria"),
	}
	var lines []string
	for k, d := range dirs {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, k+"="+d)
	}
	orig := mustRead(t, n3.ConfigFile)
	restore := func() {
		_ = n3.Stop(ctx)
		_ = n3.Wipe()
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
		_ = os.WriteFile(n3.ConfigFile, []byte(orig), 0o600)
	}
	// [mysqld] is followed by [sst]; put the paths right after [mysqld].
	cnf := strings.Replace(orig, "[mysqld]\n", "[mysqld]\n"+strings.Join(lines, "\n")+"\n", 1)
	if err := os.WriteFile(n3.ConfigFile, []byte(cnf), 0o600); err != nil {
		t.Fatal(err)
	}
	off := n3.LogSize()
	err := n3.Start(ctx)
	if err != nil {
		restore()
		t.Fatalf("node3 with its own InnoDB/Aria directories did not join: %v", err)
	}
	for file, dir := range map[string]string{"ibdata1": dirs["innodb_data_home_dir"], "ib_logfile0": dirs["innodb_log_group_home_dir"], "aria_log_control": dirs["aria_log_dir_path"]} {
		if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
			t.Errorf("%s not in %s: %v", file, dir, err)
		}
		if _, err := os.Stat(filepath.Join(n3.DataDir, file)); err == nil {
			t.Errorf("%s also in the datadir", file)
		}
	}
	if len(cluster.GrepLines(n3.LogSince(off), "gosst: joiner: received and verified")) == 0 {
		t.Errorf("node3 did not take a gosst SST")
	}
	mustExec(t, ctx, n1, "REPLACE INTO sstlayout.t VALUES (2, 'after')")
	converge(t, ctx, "sstlayout.t", 2)

	// Back to the standard layout for the other tests (another full SST).
	restore()
	if err := n3.Start(ctx); err != nil {
		t.Fatalf("node3 back in the standard layout: %v", err)
	}
	clusterSynced(t, ctx)
}
