package backuptest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/storage"
	"github.com/gosst/gosst/test/gbtest"
)

func listBackups(t *testing.T, store string) []*backup.Manifest {
	t.Helper()
	out := mustGB(t, "list", "--json", "--storage", store, "--log-level", "error")
	var list []*backup.Manifest
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	return list
}

// TestFullAndIncrementalsRestoreExactRows takes a full and two incremental
// backups of node 2 while node 1 inserts rows, then restores each point and
// checks it holds exactly the rows committed at the backup's GTID.
func TestFullAndIncrementalsRestoreExactRows(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	store := t.TempDir()
	n2 := clu.Node(2)
	w := gbtest.StartWriter(t, clu.Node(1), "bk.rows", 5*time.Millisecond)
	common := []string{"--storage", store, "--socket", n2.Socket, "--user", "root", "--log-level", "warn"}
	// Rows commit before and between the backups (waited for, not slept
	// for: each backup must capture rows; the writer keeps writing during
	// each backup).
	w.WaitRows(t, 20)
	mustGB(t, append([]string{"backup"}, common...)...)
	w.WaitRows(t, 20)
	mustGB(t, append([]string{"backup", "--incremental"}, common...)...)
	w.WaitRows(t, 20)
	mustGB(t, append([]string{"backup", "--incremental", "--desync"}, common...)...)
	w.WaitRows(t, 10)
	w.Finish(t)

	list := listBackups(t, store)
	if len(list) != 3 || list[0].Type != backup.TypeFull || list[1].Parent != list[0].ID || list[2].Parent != list[1].ID {
		t.Fatalf("want full → inc → inc, got %d backups: %+v", len(list), list)
	}
	if v, _ := n2.QueryString(context.Background(), "SELECT @@wsrep_desync"); v != "0" {
		t.Fatalf("wsrep_desync left at %s after a --desync backup", v)
	}
	for i, m := range list {
		if m.Binlog.GTID == "" {
			j, _ := json.MarshalIndent(m, "", "  ")
			t.Fatalf("backup %d has no binlog GTID:\n%s", i, j)
		}
		seq := gtidSeq(t, m.Binlog.GTID)
		want := w.RowsAt(seq)
		target := filepath.Join(t.TempDir(), "data")
		mustGB(t, "restore", m.ID, "--target-dir", target, "--storage", store, "--log-level", "warn")
		db, _ := gbtest.Standalone(t, target)
		var count, maxID int
		if err := db.QueryRow("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM bk.rows").Scan(&count, &maxID); err != nil {
			t.Fatalf("backup %d (%s): %v", i, m.ID, err)
		}
		if count != want || maxID != want {
			t.Fatalf("backup %d (%s, gtid %s): restored %d rows (max id %d), want exactly %d", i, m.ID, m.Binlog.GTID, count, maxID, want)
		}
		t.Logf("backup %d %s (%s) at gtid %s: %d rows, exactly as committed", i, m.ID, m.Type, m.Binlog.GTID, count)
		if want == 0 {
			t.Fatalf("backup %d captured no rows: the writer did not run during the backups", i)
		}
	}
	if list[2].Galera.Seqno <= list[0].Galera.Seqno || list[0].Galera.UUID == "" {
		t.Fatalf("galera positions do not advance: %+v / %+v", list[0].Galera, list[2].Galera)
	}
}

// TestRestoreWithGaleraRejoinsByIST restores a fresh backup into node 3's
// datadir with --galera; node 3 must rejoin by IST, not SST.
func TestRestoreWithGaleraRejoinsByIST(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	store := t.TempDir()
	n1, n3 := clu.Node(1), clu.Node(3)
	if err := n1.Exec(ctx, "CREATE DATABASE IF NOT EXISTS bk; CREATE TABLE IF NOT EXISTS bk.ist (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	mustGB(t, "backup", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")
	for i := 0; i < 30; i++ {
		if err := n1.Exec(ctx, "INSERT INTO bk.ist (v) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n3.Wipe(); err != nil {
		t.Fatal(err)
	}
	mustGB(t, "restore", "latest", "--target-dir", n3.DataDir, "--galera", "--storage", store, "--log-level", "warn")
	logBefore, _ := os.ReadFile(n3.ErrorLog)
	if err := n3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(n3.ErrorLog)
	restart := string(log[len(logBefore):])
	// The stock joiner says which path it took: the donor sent only the IST
	// marker (its --bypass path), no data.
	if !strings.Contains(restart, "'xtrabackup_ist' received from donor: Running IST") {
		t.Fatalf("node3 did not rejoin by IST alone after a --galera restore:\n%s", grepLines(restart, "IST|SST|state transfer"))
	}
	got, err := n3.QueryString(ctx, "SELECT COUNT(*) FROM bk.ist")
	if err != nil || got != "30" {
		t.Fatalf("node3 has %s rows (%v), want 30", got, err)
	}
}

func grepLines(s, alts string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, a := range strings.Split(alts, "|") {
			if strings.Contains(l, a) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestVerifyAndDamage: verify passes on a good backup and fails, naming the
// object, after one byte changes, the object is truncated or deleted; restore refuses
// before writing a datadir.
func TestVerifyAndDamage(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	store := t.TempDir()
	for _, stmt := range []string{
		"CREATE DATABASE IF NOT EXISTS vf",
		"CREATE TABLE IF NOT EXISTS vf.inno (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB",
		"CREATE TABLE IF NOT EXISTS vf.aria (id INT PRIMARY KEY, v TEXT) ENGINE=Aria",
		"CREATE TABLE IF NOT EXISTS vf.myisam (id INT PRIMARY KEY, v TEXT) ENGINE=MyISAM",
		"REPLACE INTO vf.inno VALUES (1, 'a'), (2, 'b')",
		"REPLACE INTO vf.aria VALUES (1, 'a')",
		"REPLACE INTO vf.myisam VALUES (1, 'a')",
	} {
		if err := clu.Node(1).Exec(context.Background(), stmt); err != nil {
			t.Fatal(err)
		}
	}
	id, _ := age.GenerateX25519Identity()
	keyFile := filepath.Join(t.TempDir(), "key.txt")
	os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600)
	mustGB(t, "backup", "--storage", store, "--socket", clu.Node(1).Socket, "--user", "root", "--recipient", id.Recipient().String(), "--log-level", "warn")
	m := listBackups(t, store)[0]
	if !m.Encrypted() || len(m.Tables) < 3 {
		t.Fatalf("manifest: encrypted %v, %d tables", m.Encrypted(), len(m.Tables))
	}
	out := mustGB(t, "verify", m.ID, "--restore-test", "--identity", keyFile, "--storage", store, "--log-level", "warn")
	if !strings.Contains(out, m.ID+" OK") || !strings.Contains(out, "tables checked") {
		t.Fatalf("verify --restore-test: %s", out)
	}

	// Wrong identity: clear error, no datadir.
	other, _ := age.GenerateX25519Identity()
	wrongKey := filepath.Join(t.TempDir(), "wrong.txt")
	os.WriteFile(wrongKey, []byte(other.String()+"\n"), 0o600)
	target := filepath.Join(t.TempDir(), "restore")
	out, code := gb(t, "restore", m.ID, "--target-dir", target, "--identity", wrongKey, "--storage", store)
	if code == 0 || !strings.Contains(out, "no identity matched") {
		t.Fatalf("restore with a wrong key: exit %d\n%s", code, out)
	}
	assertNoDatadir(t, target)

	obj := filepath.Join(store, m.Objects[0].Key)
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0x01
	if err := os.WriteFile(obj, flipped, 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = gb(t, "verify", m.ID, "--storage", store)
	if code == 0 || !strings.Contains(out, "FAILED") || !strings.Contains(out, m.Objects[0].Key) {
		t.Fatalf("verify after a flipped byte: exit %d\n%s", code, out)
	}
	out, code = gb(t, "restore", m.ID, "--target-dir", target, "--identity", keyFile, "--storage", store)
	if code == 0 {
		t.Fatalf("restore of a damaged backup succeeded\n%s", out)
	}
	assertNoDatadir(t, target)

	// Truncated, as an interrupted copy between buckets leaves it: verify
	// names the object, restore refuses before writing a datadir.
	if err := os.WriteFile(obj, data[:len(data)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = gb(t, "verify", m.ID, "--storage", store)
	if code == 0 || !strings.Contains(out, "FAILED") || !strings.Contains(out, m.Objects[0].Key) {
		t.Fatalf("verify after truncating the object: exit %d\n%s", code, out)
	}
	out, code = gb(t, "restore", m.ID, "--target-dir", target, "--identity", keyFile, "--storage", store)
	if code == 0 || !strings.Contains(out, "damaged") {
		t.Fatalf("restore of a truncated backup: exit %d\n%s", code, out)
	}
	assertNoDatadir(t, target)

	if err := os.Remove(obj); err != nil {
		t.Fatal(err)
	}
	out, code = gb(t, "verify", m.ID, "--storage", store)
	if code == 0 || !strings.Contains(out, "missing") || !strings.Contains(out, m.Objects[0].Key) {
		t.Fatalf("verify after deleting the object: exit %d\n%s", code, out)
	}
	out, code = gb(t, "restore", m.ID, "--target-dir", target, "--identity", keyFile, "--storage", store)
	if code == 0 || !strings.Contains(out, "missing") {
		t.Fatalf("restore with a missing object: exit %d\n%s", code, out)
	}
	assertNoDatadir(t, target)
}

// assertNoDatadir: the target holds no file that could pass for a datadir.
func assertNoDatadir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // not even created
	}
	if len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("a failed restore left files in %s: %v", dir, names)
	}
}

// TestKilledBackupLeavesNothing kills galera-backup mid-upload: list shows
// nothing, and the next backup succeeds and removes the leftovers (the
// killed run's process is gone: no grace period), including its local
// staging files: the half-written upload and mariabackup's scratch dir.
func TestKilledBackupLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	store := t.TempDir()
	n1 := clu.Node(1)
	// Slow the stream down so there is a "mid-upload" to kill.
	cmd := exec.Command(filepath.Join(binDir, "galera-backup"), "backup", "--storage", store, "--socket", n1.Socket,
		"--user", "root", "--parallel", "1", "--log-level", "warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp) // the killed run's scratch dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the upload has started: the run's lease is written and
	// the local backend stages the data in a temp file next to it.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && !uploading(store) {
		time.Sleep(20 * time.Millisecond)
	}
	// Kill galera-backup and its mariabackup child (same process group).
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
	if list := listBackups(t, store); len(list) != 0 {
		t.Fatalf("a killed backup is listed: %+v", list)
	}
	if scratch, _ := filepath.Glob(filepath.Join(tmp, "gosst-mariabackup-*")); len(scratch) == 0 {
		t.Fatalf("the killed run left no scratch dir in %s: the test did not kill it mid-run", tmp)
	}
	t.Setenv("TMPDIR", tmp) // the next run looks for leftovers where the killed one staged
	mustGB(t, "backup", "--storage", store, "--socket", n1.Socket, "--user", "root", "--log-level", "warn")
	list := listBackups(t, store)
	if len(list) != 1 {
		t.Fatalf("after a good backup, list shows %d backups", len(list))
	}
	if scratch, _ := filepath.Glob(filepath.Join(tmp, "gosst-mariabackup-*")); len(scratch) != 0 {
		t.Fatalf("the killed run's scratch dir stays: %v", scratch)
	}
	// No file of the killed run, not even a staging file, stays in the store.
	filepath.Walk(store, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(store, p)
		if err == nil && !fi.IsDir() && !strings.HasPrefix(filepath.ToSlash(rel), "backups/"+list[0].ID+"/") {
			t.Errorf("file %s of the killed backup is still stored", rel)
		}
		return nil
	})
	// The good backup removed what the killed one had stored.
	be, err := storage.Open(context.Background(), store, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	err = be.List(context.Background(), "", func(oi storage.ObjectInfo) error {
		if !strings.HasPrefix(oi.Key, "backups/"+list[0].ID+"/") {
			return fmt.Errorf("object %s of the killed backup is still stored", oi.Key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// uploading reports whether a backup run in store has written its lease
// and is staging data next to it.
func uploading(store string) bool {
	leases, _ := filepath.Glob(filepath.Join(store, "backups", "*", "lease.json"))
	for _, l := range leases {
		if tmp, _ := filepath.Glob(filepath.Join(filepath.Dir(l), ".gosst-tmp-*")); len(tmp) > 0 {
			return true
		}
	}
	return false
}

func countFiles(dir string) int {
	n := 0
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// TestRefusesNodeNotSynced: a desynced node is not backed up without --force.
func TestRefusesNodeNotSynced(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	n2 := clu.Node(2)
	if err := n2.Exec(ctx, "SET GLOBAL wsrep_desync = ON"); err != nil {
		t.Fatal(err)
	}
	defer n2.Exec(ctx, "SET GLOBAL wsrep_desync = OFF")
	store := t.TempDir()
	args := []string{"backup", "--storage", store, "--socket", n2.Socket, "--user", "root", "--log-level", "warn"}
	out, code := gb(t, args...)
	if code == 0 || !strings.Contains(out, "not Synced") || !strings.Contains(out, "--force") {
		t.Fatalf("backup of a desynced node: exit %d\n%s", code, out)
	}
	mustGB(t, append(args, "--force")...)
}
