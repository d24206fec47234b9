// Package gbtest holds what the galera-backup end-to-end test packages
// (test/backuptest, test/pitrtest) share: a TestMain body that builds
// galera-backup and starts one real 3-node cluster for the whole package,
// galera-backup run in-process, and a throwaway server on a restored
// datadir.
package gbtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/cli"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/test/cluster"
)

// Main builds galera-backup into a temporary bin directory, starts a
// 3-node cluster, calls ready with both, runs the tests and tears
// everything down; it returns the exit code for os.Exit. With -short or
// -test.list nothing is started. name prefixes the temporary directory.
func Main(m *testing.M, name string, ready func(c *cluster.Cluster, binDir string)) int {
	for _, a := range os.Args {
		if a == "-test.short=true" || strings.HasPrefix(a, "-test.list") {
			return m.Run()
		}
	}
	dir, err := os.MkdirTemp("", "gosst-"+name+"-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	defer RemoveFailpointBinary()
	binDir := filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", binDir+"/", "github.com/gosst/gosst/cmd/galera-backup").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build galera-backup: %v\n%s", err, out)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{Nodes: 3, Dir: filepath.Join(dir, "c"), GcacheSize: "128M"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	ready(c, binDir)
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, c.Tails(30))
	}
	return code
}

// GB runs galera-backup in-process and returns stdout+stderr and the exit
// code.
func GB(t testing.TB, args ...string) (string, int) {
	t.Helper()
	var out, errOut strings.Builder
	code := cli.Main(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), code
}

// MustGB is GB that fails the test on a non-zero exit.
func MustGB(t testing.TB, args ...string) string {
	t.Helper()
	out, code := GB(t, args...)
	if code != 0 {
		t.Fatalf("galera-backup %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// Standalone starts a throwaway mariadbd (wsrep off) on a restored datadir
// and returns a connection and a stop function (also run in t.Cleanup).
func Standalone(t testing.TB, datadir string) (*sql.DB, func()) {
	t.Helper()
	srv, err := mariadb.StartScratch(context.Background(), mariadb.ScratchOptions{DataDir: datadir, BufferPool: "32M"})
	if err != nil {
		t.Fatal(err)
	}
	db, err := srv.DB()
	if err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	stop := func() {
		db.Close()
		srv.Stop()
	}
	t.Cleanup(stop)
	return db, stop
}
