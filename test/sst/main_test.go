// Package sst_test runs wsrep_sst_gosst in a real 3-node MariaDB Galera
// cluster on loopback. TestMain builds ./cmd/wsrep_sst_gosst and starts
// one cluster with wsrep_sst_method=gosst that all tests share; nodes 2
// and 3 join it by gosst SST, so the cluster forming is the first test.
// Every test leaves the cluster with three Synced nodes.
package sst_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/test/cluster"
	"github.com/gosst/gosst/test/gbtest"
)

var (
	gosstBin string // directory holding the wsrep_sst_gosst under test
	shared   *cluster.Cluster
	certs    *testCerts
	startErr error
	formTime time.Duration
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping test/sst in -short mode: it starts a 3-node cluster")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gosst-sst-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	keep := os.Getenv("GOSST_KEEP_TEST_DIRS") != ""
	defer gbtest.RemoveFailpointBinary()
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		} else {
			fmt.Println("keeping", dir)
		}
	}()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "wsrep_sst_gosst"), "github.com/gosst/gosst/cmd/wsrep_sst_gosst")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build wsrep_sst_gosst:", err)
		return 1
	}
	certs, err = makeCerts(filepath.Join(dir, "certs"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "certificates:", err)
		return 1
	}
	if err := cluster.CheckInstalled(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	gosstBin = bin
	if ownClustersOnly() {
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	shared, startErr = cluster.Start(ctx, cluster.Options{
		Nodes:     3,
		Dir:       dir,
		SSTMethod: "gosst",
		BinDir:    bin,
		SSTConfig: []string{
			"tca=" + certs.CA, "tcert=" + certs.Cert, "tkey=" + certs.Key, "ssl-mode=VERIFY_CA",
			"sst-initial-timeout=60",
		},
		ExtraConfig: []string{"wsrep_debug=0"},
		Logf: func(format string, args ...any) {
			fmt.Printf("%s cluster: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
		},
	})
	formTime = time.Since(start)
	if startErr != nil {
		fmt.Fprintln(os.Stderr, "start cluster:", startErr)
		if shared != nil {
			fmt.Fprintln(os.Stderr, shared.Tails(60))
		}
		return 1
	}
	fmt.Printf("cluster of 3 formed with gosst SST (TLS, VERIFY_CA) in %s\n", formTime.Round(time.Second))
	code := m.Run()
	if code != 0 {
		fmt.Println(shared.Tails(60))
	}
	if err := shared.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "stop cluster:", err)
	}
	return code
}

func mustExec(t *testing.T, ctx context.Context, n *cluster.Node, q string, args ...any) {
	t.Helper()
	if err := n.Exec(ctx, q, args...); err != nil {
		t.Fatal(err)
	}
}

// ownClustersOnly reports whether -run selects only tests that start
// their own clusters (TestDropin*, dropin_test.go): then the shared
// cluster is not started.
func ownClustersOnly() bool {
	f := flag.Lookup("test.run")
	if f == nil {
		return false
	}
	pat := strings.Trim(f.Value.String(), "^$()")
	if pat == "" {
		return false
	}
	for _, alt := range strings.Split(pat, "|") {
		if !strings.HasPrefix(strings.Trim(alt, "^$()"), "TestDropin") {
			return false
		}
	}
	return true
}
