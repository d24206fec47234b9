package cluster

import (
	"context"
	"os"
	"testing"
	"time"
)

// StartForTest starts a cluster for one test and stops it in t.Cleanup.
// If the test fails, the error-log tails of all nodes are logged.
func StartForTest(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = TempDir(t)
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.Tails(40))
		}
		if err := c.Close(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	return c
}

// TempDir is a short temporary directory (unix socket paths must stay
// under 108 bytes, which t.TempDir's long names can exceed). It is removed
// when the test ends, unless GOSST_KEEP_TEST_DIRS is set.
func TempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gosst-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.Getenv("GOSST_KEEP_TEST_DIRS") != "" {
			t.Logf("keeping %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}
