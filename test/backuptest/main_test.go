// Package backuptest runs galera-backup backup/list/restore/verify against
// a real 3-node Galera cluster, real mariabackup and local storage.
package backuptest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/cli"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/test/cluster"
)

var (
	clu    *cluster.Cluster
	binDir string // built galera-backup
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	for _, a := range os.Args {
		if a == "-test.short=true" || strings.HasPrefix(a, "-test.list") {
			return m.Run()
		}
	}
	dir, err := os.MkdirTemp("", "gosst-backup-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", binDir+"/", "github.com/gosst/gosst/cmd/galera-backup").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build galera-backup: %v\n%s", err, out)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	clu, err = cluster.Start(ctx, cluster.Options{Nodes: 3, Dir: filepath.Join(dir, "c"), GcacheSize: "128M"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer clu.Close()
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, clu.Tails(30))
	}
	return code
}

// gb runs galera-backup in-process and returns stdout+stderr and the exit code.
func gb(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut strings.Builder
	code := cli.Main(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), code
}

func mustGB(t *testing.T, args ...string) string {
	t.Helper()
	out, code := gb(t, args...)
	if code != 0 {
		t.Fatalf("galera-backup %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// standalone starts a throwaway mariadbd (wsrep off) on a restored datadir
// and returns a connection; it is stopped in t.Cleanup.
func standalone(t *testing.T, datadir string) *sql.DB {
	t.Helper()
	srv, err := mariadb.StartScratch(context.Background(), mariadb.ScratchOptions{DataDir: datadir, BufferPool: "32M"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	db, err := srv.DB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// gtidSeq returns the sequence number of domain 7 in a GTID list.
func gtidSeq(t *testing.T, list string) int64 {
	t.Helper()
	for _, g := range strings.Split(list, ",") {
		p := strings.Split(strings.TrimSpace(g), "-")
		if len(p) == 3 && p[0] == "7" {
			n, err := strconv.ParseInt(p[2], 10, 64)
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("no domain-7 GTID in %q", list)
	return 0
}
