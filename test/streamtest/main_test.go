// Package streamtest checks the stream pipeline against the real tools:
// a live mariabackup of a Galera node with InnoDB, Aria and MyISAM tables,
// mbstream, zstd and age.
package streamtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/test/cluster"
)

var (
	node   *cluster.Node
	backup string // path of a real mariabackup xbstream
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// -short and -list runs need no cluster.
	for _, a := range os.Args {
		if a == "-test.short=true" || strings.HasPrefix(a, "-test.list") {
			return m.Run()
		}
	}
	dir, err := os.MkdirTemp("", "gosst-stream-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{Nodes: 1, Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	node = c.Node(1)
	backup = filepath.Join(dir, "backup.xbs")
	if err := makeBackup(ctx, node, backup, filepath.Join(dir, "mb")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		fmt.Fprintln(os.Stderr, c.Tails(30))
		return 1
	}
	return m.Run()
}

// makeBackup fills the node with InnoDB, Aria and MyISAM tables and streams
// a real mariabackup of it into path.
func makeBackup(ctx context.Context, n *cluster.Node, path, scratch string) error {
	stmts := []string{
		"CREATE DATABASE IF NOT EXISTS shop",
		"CREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(200)) ENGINE=InnoDB",
		"CREATE TABLE shop.audit (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(200)) ENGINE=Aria",
		"CREATE TABLE shop.legacy (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(200)) ENGINE=MyISAM",
	}
	for _, s := range stmts {
		if err := n.Exec(ctx, s); err != nil {
			return err
		}
	}
	for i := 0; i < 40; i++ {
		for _, tbl := range []string{"orders", "audit", "legacy"} {
			q := fmt.Sprintf("INSERT INTO shop.%s (note) VALUES (REPEAT(MD5(RAND()), 6))", tbl)
			if err := n.Exec(ctx, q); err != nil {
				return err
			}
		}
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "mariabackup", "--backup", "--galera-info", "--stream=xbstream",
		"--target-dir="+scratch, "--socket="+n.Socket, "--user=root", "--parallel=2")
	cmd.Stdout = out
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mariabackup: %w\n%s", err, tailLines(stderr.String(), 30))
	}
	return out.Sync()
}

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// tree maps each regular file's relative path to its SHA-256; directories
// map to "dir".
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			out[rel] = "dir"
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		out[rel] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func assertSameTree(t *testing.T, want, got string) {
	t.Helper()
	a, b := tree(t, want), tree(t, got)
	var diffs []string
	for k, v := range a {
		if b[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: %s vs %s", k, short(v), short(b[k])))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only in %s", k, got))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("trees differ (%d entries):\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
	if len(a) < 10 {
		t.Fatalf("tree %s has only %d entries; the backup is not what it should be", want, len(a))
	}
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	if s == "" {
		return "(missing)"
	}
	return s
}

// mbstreamExtract runs the real `mbstream -x` on the file at src into dir.
func mbstreamExtract(t *testing.T, src io.Reader, dir string) {
	t.Helper()
	cmd := exec.Command("mbstream", "-x", "-C", dir)
	cmd.Stdin = src
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mbstream -x: %v\n%s", err, out)
	}
}
