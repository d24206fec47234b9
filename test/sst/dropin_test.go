package sst_test

// Drop-in tests: configurations that the stock mariabackup method handles
// must work with gosst too. Each test starts its own small 2-node cluster
// (skipping the shared one when only TestDropin* runs), proves the
// configuration with wsrep_sst_method=mariabackup (full SST and IST), then
// switches the joiner to gosst and does the same, checking the data after
// every transfer.

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/test/cluster"
)

// dropinCase is one configuration.
type dropinCase struct {
	extra []string // [mysqld] lines (and, last, other groups)
	sst   []string // [sst] lines
	// keepDatadir forces the full SST by removing grastate.dat instead of
	// wiping the datadir, so logs in the datadir survive.
	keepDatadir bool
	// tables beyond the InnoDB one every case gets.
	ddl []string
	// afterSST and afterIST run extra checks on the joiner (node 2).
	afterSST, afterIST func(t *testing.T, ctx context.Context, c *cluster.Cluster, method string)
}

var dropinMethods = []string{"mariabackup", "gosst"}

// joinerMarkers are error-log lines that prove which path a joiner took.
var joinerMarkers = map[string]struct{ full, ist string }{
	"mariabackup": {"Preparing the backup at", "received from donor: Running IST"},
	"gosst":       {"gosst: joiner: received and verified", "gosst: joiner: donor reports IST"},
}

func runDropin(t *testing.T, dc dropinCase) (*cluster.Cluster, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	t.Cleanup(cancel)
	c := cluster.StartForTest(t, cluster.Options{
		Nodes:       2,
		Dir:         dropinDir(t),
		SSTMethod:   "mariabackup",
		BinDir:      gosstBin,
		ExtraConfig: dc.extra,
		SSTConfig:   dc.sst,
		SyncTimeout: 5 * time.Minute,
	})
	n1, n2 := c.Node(1), c.Node(2)
	mustExec(t, ctx, n1, "CREATE DATABASE dropin")
	mustExec(t, ctx, n1, "CREATE TABLE dropin.t (id INT PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB")
	for _, q := range dc.ddl {
		mustExec(t, ctx, n1, q)
	}
	// A few MB, so that pages, redo and (8k..64k) page layouts matter.
	mustExec(t, ctx, n1, "INSERT INTO dropin.t SELECT seq, REPEAT(MD5(seq), 5) FROM dropin.seq_1_to_8000")
	next := 8001
	for _, method := range dropinMethods {
		if err := c.SetSSTMethod(method); err != nil {
			t.Fatal(err)
		}
		dropinFullSST(t, ctx, c, dc, method, &next)

		// IST.
		if err := n2.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		mustExec(t, ctx, n1, fmt.Sprintf("INSERT INTO dropin.t SELECT seq, 'missed by node2 (%s)' FROM dropin.seq_%d_to_%d", method, next, next+49))
		next += 50
		off := n2.LogSize()
		if err := n2.Start(ctx); err != nil {
			t.Fatalf("%s IST: %v", method, err)
		}
		log2 := n2.LogSince(off)
		if len(cluster.GrepLines(log2, joinerMarkers[method].ist)) == 0 || len(cluster.GrepLines(log2, joinerMarkers[method].full)) > 0 {
			t.Fatalf("node2 did not rejoin by IST with %s:\n%s", method, cluster.Tail(log2, 60))
		}
		sameData(t, ctx, c, "dropin.t", next-1)
		if dc.afterIST != nil {
			dc.afterIST(t, ctx, c, method)
		}
	}
	return c, next
}

// dropinFullSST makes node 2 take a full SST with method and checks it.
func dropinFullSST(t *testing.T, ctx context.Context, c *cluster.Cluster, dc dropinCase, method string, next *int) {
	t.Helper()
	n1, n2 := c.Node(1), c.Node(2)
	if err := n2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if dc.keepDatadir {
		if err := os.Remove(filepath.Join(n2.DataDir, "grastate.dat")); err != nil {
			t.Fatal(err)
		}
	} else if err := n2.Wipe(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, ctx, n1, fmt.Sprintf("INSERT INTO dropin.t SELECT seq, 'before %s SST' FROM dropin.seq_%d_to_%d", method, *next, *next+99))
	*next += 100
	off := n2.LogSize()
	start := time.Now()
	if err := n2.Start(ctx); err != nil {
		t.Fatalf("%s full SST: %v", method, err)
	}
	log2 := n2.LogSince(off)
	if len(cluster.GrepLines(log2, joinerMarkers[method].full)) == 0 || len(cluster.GrepLines(log2, "Running: 'wsrep_sst_"+method+" --role 'joiner'")) == 0 {
		t.Fatalf("node2 did not take a full %s SST:\n%s", method, cluster.Tail(log2, 60))
	}
	t.Logf("%s: full SST, start to Synced in %s", method, time.Since(start).Round(100*time.Millisecond))
	sameData(t, ctx, c, "dropin.t", *next-1)
	if dc.afterSST != nil {
		dc.afterSST(t, ctx, c, method)
	}
}

// dropinDir is a short per-test directory (socket paths).
func dropinDir(t *testing.T) string {
	t.Helper()
	return cluster.TempDir(t)
}

// sameData waits until both nodes have want rows in table with the same
// CHECKSUM TABLE (the joiner may still be applying).
func sameData(t *testing.T, ctx context.Context, c *cluster.Cluster, table string, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var got []string
		for _, n := range c.Nodes {
			cnt, err := n.QueryString(ctx, "SELECT COUNT(*) FROM "+table)
			if err != nil {
				cnt = err.Error()
			}
			var name, sum string
			if err := n.DB().QueryRowContext(ctx, "CHECKSUM TABLE "+table).Scan(&name, &sum); err != nil {
				sum = err.Error()
			}
			got = append(got, cnt+"/"+sum)
		}
		if got[0] == got[1] && strings.HasPrefix(got[0], fmt.Sprint(want)+"/") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: nodes differ (count/checksum %v), want %d rows", table, got, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestDropinEncryption: file_key_management with encrypted tables, redo,
// temporary tables and files, binlog and Aria. The key file (hex keys,
// mode 0600) is generated here.
func TestDropinEncryption(t *testing.T) {
	keyDir, err := os.MkdirTemp("", "gosst-keys-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(keyDir) })
	keyFile := filepath.Join(keyDir, "keys.txt")
	var keys strings.Builder
	for id := 1; id <= 2; id++ {
		var k [32]byte
		if _, err := rand.Read(k[:]); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&keys, "%d;%s\n", id, hex.EncodeToString(k[:]))
	}
	if err := os.WriteFile(keyFile, []byte(keys.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	encrypted := func(t *testing.T, ctx context.Context, c *cluster.Cluster, method string) {
		t.Helper()
		n2 := c.Node(2)
		for q, want := range map[string]string{
			"SELECT @@innodb_encrypt_log": "1",
			"SELECT @@encrypt_tmp_files":  "1",
			"SELECT COUNT(*) FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME IN ('dropin/t', 'dropin/k2') AND ENCRYPTION_SCHEME = 1": "2",
			"SELECT v FROM dropin.a WHERE id = 1": "aria row, encrypted",
			"SELECT COUNT(*) FROM dropin.k2":      "3",
		} {
			if got, err := n2.QueryString(ctx, q); err != nil || got != want {
				t.Errorf("%s: node2: %s = %q, %v; want %q", method, q, got, err, want)
			}
		}
		// An encrypted temporary table and a sort that spills to an
		// encrypted temporary file work on the joiner.
		if err := n2.Exec(ctx, "CREATE TEMPORARY TABLE dropin.tmp ENGINE=InnoDB SELECT * FROM dropin.t; SET STATEMENT sort_buffer_size=32768 FOR SELECT COUNT(DISTINCT v) FROM (SELECT v FROM dropin.tmp ORDER BY v DESC) x; DROP TEMPORARY TABLE dropin.tmp"); err != nil {
			t.Errorf("%s: node2: temporary table/file: %v", method, err)
		}
	}
	runDropin(t, dropinCase{
		extra: []string{
			"plugin_load_add=file_key_management",
			"file_key_management_filename=" + keyFile,
			"file_key_management_encryption_algorithm=AES_CTR",
			"innodb_encrypt_tables=ON",
			"innodb_encrypt_log=ON",
			"innodb_encrypt_temporary_tables=ON",
			"encrypt_tmp_files=ON",
			"encrypt_binlog=ON",
			"aria_encrypt_tables=ON",
		},
		ddl: []string{
			// Galera does not replicate Aria: only the physical copy brings it.
			"CREATE TABLE dropin.a (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=Aria",
			"INSERT INTO dropin.a VALUES (1, 'aria row, encrypted')",
			"CREATE TABLE dropin.k2 (id INT PRIMARY KEY) ENGINE=InnoDB ENCRYPTED=YES ENCRYPTION_KEY_ID=2",
			"INSERT INTO dropin.k2 VALUES (1), (2), (3)",
		},
		afterSST: encrypted,
		afterIST: encrypted,
	})
}

func pageSizeCase(size string) dropinCase {
	check := func(t *testing.T, ctx context.Context, c *cluster.Cluster, method string) {
		t.Helper()
		want := map[string]string{"4k": "4096", "8k": "8192", "64k": "65536"}[size]
		if got, err := c.Node(2).QueryString(ctx, "SELECT @@innodb_page_size"); err != nil || got != want {
			t.Errorf("%s: node2 innodb_page_size %q, %v; want %s", method, got, err, want)
		}
	}
	return dropinCase{
		// Set before mariadb-install-db creates the datadir; a 64k page
		// needs a larger buffer pool than the harness's 32M.
		extra:    []string{"innodb_page_size=" + size, "innodb_buffer_pool_size=64M"},
		afterSST: check,
	}
}

func TestDropinPageSize4k(t *testing.T)  { runDropin(t, pageSizeCase("4k")) }
func TestDropinPageSize8k(t *testing.T)  { runDropin(t, pageSizeCase("8k")) }
func TestDropinPageSize64k(t *testing.T) { runDropin(t, pageSizeCase("64k")) }

// TestDropinOperationalOptions: [mariabackup] use-memory reaches prepare
// (mariabackup says so in <datadir>/mariabackup.prepare.log), and
// sst-log-archive keeps every mariabackup log exactly once, gzipped in
// sst-log-archive-dir, as the stock method names them.
func TestDropinOperationalOptions(t *testing.T) {
	dir, err := os.MkdirTemp("", "gosst-sstlogs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	archive := filepath.Join(dir, "archive")
	fullSSTs := 1 // the stock SST that formed the cluster
	afterSST := func(t *testing.T, ctx context.Context, c *cluster.Cluster, method string) {
		t.Helper()
		fullSSTs++
		b, err := os.ReadFile(filepath.Join(c.Node(2).DataDir, "mariabackup.prepare.log"))
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if !strings.Contains(string(b), "Using 41943040 bytes for buffer pool (set by --use-memory parameter)") {
			t.Errorf("%s: mariabackup.prepare.log does not show use-memory=40M:\n%s", method, cluster.Tail(string(b), 30))
		}
		checkLogsKept(t, c, archive, method, fullSSTs)
	}
	var before [2]int
	afterIST := func(t *testing.T, ctx context.Context, c *cluster.Cluster, method string) {
		t.Helper()
		checkLogsKept(t, c, archive, method, fullSSTs)
		before = [2]int{len(archived(t, archive, "prepare")), len(archived(t, archive, "backup"))}
	}
	dc := dropinCase{
		extra:       []string{"[mariabackup]", "use-memory=40M"},
		sst:         []string{"sst-log-archive=1", "sst-log-archive-dir=" + archive},
		keepDatadir: true,
		afterSST:    afterSST,
		afterIST:    afterIST,
	}
	c, next := runDropin(t, dc)
	// gosst's IST left both current logs in place; the next full SST
	// archives exactly one of each.
	for _, p := range []string{filepath.Join(c.Node(2).DataDir, "mariabackup.prepare.log"), filepath.Join(c.Node(1).DataDir, "mariabackup.backup.log")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("after gosst's IST: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dropinFullSST(t, ctx, c, dc, "gosst", &next)
	after := [2]int{len(archived(t, archive, "prepare")), len(archived(t, archive, "backup"))}
	if after[0] != before[0]+1 || after[1] != before[1]+1 {
		t.Errorf("a gosst SST archived %d prepare and %d backup logs, want 1 each", after[0]-before[0], after[1]-before[1])
	}
}

// archived lists the archived logs of one phase.
func archived(t *testing.T, dir, phase string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "mariabackup."+phase+".log.*.gz"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkLogsKept: node 2 took fullSSTs full SSTs, all donated by node 1.
// Each produced one prepare log (node 2) and one backup log (node 1); each
// is either the current one in the datadir or a readable archive.
func checkLogsKept(t *testing.T, c *cluster.Cluster, archive, method string, fullSSTs int) {
	t.Helper()
	for _, p := range []struct {
		phase string
		node  *cluster.Node
	}{{"prepare", c.Node(2)}, {"backup", c.Node(1)}} {
		logs := archived(t, archive, p.phase)
		for _, a := range logs {
			if s := gunzipFile(t, a); !strings.Contains(s, "completed OK!") {
				t.Errorf("%s: archive %s is not a complete mariabackup log:\n%s", method, a, cluster.Tail(s, 10))
			}
		}
		if _, err := os.Stat(filepath.Join(p.node.DataDir, "mariabackup."+p.phase+".log")); err == nil {
			logs = append(logs, "current")
		}
		if len(logs) != fullSSTs {
			t.Errorf("%s: %d %s logs kept (archived + current) after %d full SSTs: %q", method, len(logs), p.phase, fullSSTs, logs)
		}
	}
}

func gunzipFile(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return string(b)
}

// TestDropinPageSizeMismatch: a node left with the default 16k page joins
// a cluster whose data has 8k pages. The gosst joiner refuses before it
// installs anything, with a message naming both sizes, and leaves no
// staging directory or sst_in_progress behind. (The stock method installs
// the data, and then the server cannot start on it.)
func TestDropinPageSizeMismatch(t *testing.T) {
	dir := dropinDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{
		Nodes:       2,
		Dir:         dir,
		SSTMethod:   "gosst",
		BinDir:      gosstBin,
		NodeConfig:  map[int][]string{1: {"innodb_page_size=8k", "innodb_buffer_pool_size=64M"}},
		SyncTimeout: 3 * time.Minute,
		Logf:        t.Logf,
	})
	if err == nil {
		c.Close()
		t.Fatal("node2 (16k pages) joined a cluster with 8k pages")
	}
	data2 := filepath.Join(dir, "node2", "data")
	b, _ := os.ReadFile(filepath.Join(dir, "node2", "error.log"))
	log2 := string(b)
	want := "the donor's data has innodb_page_size=8192, this node's configuration has innodb_page_size not set (default 16384)"
	if l := cluster.GrepLines(log2, want); len(l) == 0 || len(cluster.GrepLines(log2, "gosst: joiner: failed after")) == 0 || len(cluster.GrepLines(log2, "exit 22")) == 0 {
		t.Fatalf("node2's log lacks the page size refusal:\n%s", cluster.Tail(log2, 60))
	} else {
		t.Logf("node2: %s", l[0])
	}
	for _, gone := range []string{"ibdata1", ".gosst-sst", "sst_in_progress", "mysql"} {
		if _, err := os.Stat(filepath.Join(data2, gone)); err == nil {
			t.Errorf("node2's datadir has %s after the refused SST", gone)
		}
	}
}
