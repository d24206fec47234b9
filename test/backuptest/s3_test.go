package backuptest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gosst/gosst/test/gbtest"
	"github.com/gosst/gosst/test/s3server"
)

// s3Store starts a real S3-compatible server (TLS) and returns a storage
// URL for it; credentials go through the standard AWS environment.
func s3Store(t *testing.T) (*s3server.Server, string) {
	t.Helper()
	srv := s3server.Require(t, s3server.Options{TLS: true, Buckets: []string{"galera"}})
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	q := url.Values{}
	q.Set("endpoint", srv.Endpoint)
	q.Set("path-style", "true")
	q.Set("ca", srv.CAFile)
	q.Set("max-attempts", "2")
	return srv, "s3://galera/prod?" + q.Encode()
}

// TestBackupRestoreThroughS3: full + incremental to the S3 server, then a
// restore of the chain from it, checked row by row.
func TestBackupRestoreThroughS3(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	_, store := s3Store(t)
	ctx := context.Background()
	n1 := clu.Node(1)
	if err := n1.Exec(ctx, "CREATE DATABASE IF NOT EXISTS s3t; CREATE TABLE IF NOT EXISTS s3t.t (id INT PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	common := []string{"--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn"}
	if err := n1.Exec(ctx, "INSERT INTO s3t.t SELECT seq FROM s3t.seq_1_to_100"); err != nil {
		t.Fatal(err)
	}
	mustGB(t, append([]string{"backup"}, common...)...)
	if err := n1.Exec(ctx, "INSERT INTO s3t.t SELECT seq FROM s3t.seq_101_to_250"); err != nil {
		t.Fatal(err)
	}
	mustGB(t, append([]string{"backup", "--incremental"}, common...)...)
	list := listBackups(t, store)
	if len(list) != 2 || list[1].Parent != list[0].ID {
		t.Fatalf("want full + incremental in S3, got %d", len(list))
	}
	out := mustGB(t, "verify", "--all", "--storage", store)
	if strings.Count(out, " OK ") != 2 {
		t.Fatalf("verify --all: %s", out)
	}
	target := filepath.Join(t.TempDir(), "data")
	mustGB(t, "restore", "latest", "--target-dir", target, "--storage", store, "--log-level", "warn")
	db, _ := gbtest.Standalone(t, target)
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM s3t.t").Scan(&n); err != nil || n != 250 {
		t.Fatalf("restored %d rows (%v), want 250", n, err)
	}
}

// TestS3Outages: the S3 server down when a backup starts, and killed
// during an upload: clear errors, nothing listed; back up again once the
// server is back.
func TestS3Outages(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	srv, store := s3Store(t)
	n1 := clu.Node(1)
	args := []string{"backup", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn"}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	out, code := gb(t, args...)
	if code == 0 || !strings.Contains(out, "storage is not usable, no backup started") {
		t.Fatalf("backup with the S3 server down: exit %d\n%s", code, out)
	}
	t.Logf("server down at start: %s", firstLine(out))
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if list := listBackups(t, store); len(list) != 0 {
		t.Fatalf("failed backup listed: %d", len(list))
	}

	// Kill the server mid-backup: once the backup's lease is on the server
	// (written before the data, which is slowed to ~4 MB/s), not after a
	// guessed delay that a loaded machine can outrun either way.
	cmd := exec.Command(filepath.Join(binDir, "galera-backup"), append(args, "--rate-limit", "4M")...)
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The posix backend keeps each object as a file under the bucket's
	// directory; the bound is only a safety net.
	lease := filepath.Join(srv.DataDir, "galera", "prod", "backups", "*", "lease.json")
	for i := 0; ; i++ {
		if m, _ := filepath.Glob(lease); len(m) > 0 {
			break
		}
		if i > 2400 {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			t.Fatalf("the backup wrote no lease to the server in 2 min:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if err == nil {
		t.Fatalf("backup survived the S3 server's death:\n%s", stderr.String())
	}
	t.Logf("server killed mid-upload: %s", firstLine(stderr.String()))
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if list := listBackups(t, store); len(list) != 0 {
		t.Fatalf("a backup interrupted by an S3 outage is listed: %d", len(list))
	}
	mustGB(t, args...)
	if list := listBackups(t, store); len(list) != 1 {
		t.Fatalf("after the outage, the next backup is not listed (%d)", len(list))
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i > 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return fmt.Sprint(s)
}

// TestRestoreDiskFull: a restore target on a filesystem too small for the
// backup is refused before anything is written; with --force over an
// existing datadir too, which stays byte for byte. A non-empty mount point
// is refused as a --force target.
func TestRestoreDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a small tmpfs and needs root (CI runs as root)")
	}
	store := t.TempDir()
	mustGB(t, "backup", "--storage", store, "--socket", clu.Node(1).Socket, "--user", "root", "--log-level", "warn")
	small := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", small).CombinedOutput(); err != nil {
		t.Fatalf("mount a 4 MiB tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", small).Run()
	target := filepath.Join(small, "data")
	out, code := gb(t, "restore", "latest", "--target-dir", target, "--storage", store)
	if code == 0 || !strings.Contains(out, "not enough disk space") {
		t.Fatalf("restore onto a full disk: exit %d\n%s", code, out)
	}
	assertNoDatadir(t, target)

	// --force over a datadir on that full filesystem: refused before
	// anything is staged, the datadir byte for byte as it was.
	if err := os.MkdirAll(target, 0o750); err != nil {
		t.Fatal(err)
	}
	before := oldDatadir(t, target)
	out, code = gb(t, "restore", "latest", "--force", "--target-dir", target, "--storage", store)
	if treeHash(t, target) != before {
		t.Fatalf("restore --force onto a full disk changed the target\n%s", out)
	}
	if code == 0 || !strings.Contains(out, "not enough disk space") {
		t.Fatalf("restore --force onto a full disk: exit %d\n%s", code, out)
	}
	if left := stagingLeft(t, target); len(left) != 0 {
		t.Fatalf("a refused restore left %v", left)
	}

	// The mount point itself as a --force target: refused (a mount point
	// cannot be swapped atomically), unchanged.
	before = treeHash(t, small)
	out, code = gb(t, "restore", "latest", "--force", "--target-dir", small, "--storage", store)
	if code == 0 || !strings.Contains(out, "is a mount point") {
		t.Fatalf("restore --force into a non-empty mount point: exit %d\n%s", code, out)
	}
	if treeHash(t, small) != before {
		t.Fatalf("restore --force into a mount point changed it\n%s", out)
	}
}
