package backuptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/stream/crypt"
	"github.com/gosst/gosst/test/gbtest"
)

var (
	treeHash    = gbtest.TreeHash
	oldDatadir  = gbtest.OldDatadir
	stagingLeft = gbtest.StagingLeft
)

// TestRestoreForceNeverLosesTarget: restore --force into a datadir with a
// wrong identity fails before any download, names the key fingerprint the
// backup needs, and leaves the datadir byte for byte. A restore SIGKILLed
// at each step leaves the datadir wholly old (before the swap) or wholly
// new (after it), and the next restore removes the killed run's staging
// directory and succeeds.
func TestRestoreForceNeverLosesTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	store := t.TempDir()
	id, _ := age.GenerateX25519Identity()
	keyFile := filepath.Join(t.TempDir(), "key.txt")
	recipients := filepath.Join(t.TempDir(), "backup.pub")
	os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600)
	os.WriteFile(recipients, []byte(id.Recipient().String()+"\n"), 0o644)
	// --recipients-file: its key's fingerprint is recorded too.
	mustGB(t, "backup", "--storage", store, "--socket", clu.Node(1).Socket, "--user", "root", "--recipients-file", recipients, "--log-level", "warn")
	m := listBackups(t, store)[0]
	fp := crypt.Fingerprint(id.Recipient().String())
	if len(m.KeyFingerprint) != 1 || m.KeyFingerprint[0] != fp {
		t.Fatalf("manifest records key fingerprints %v, want [%s]", m.KeyFingerprint, fp)
	}

	target := filepath.Join(t.TempDir(), "data")
	old := oldDatadir(t, target)
	other, _ := age.GenerateX25519Identity()
	wrongKey := filepath.Join(t.TempDir(), "wrong.txt")
	os.WriteFile(wrongKey, []byte(other.String()+"\n"), 0o600)
	out, code := gb(t, "restore", m.ID, "--force", "--target-dir", target, "--identity", wrongKey, "--storage", store)
	if treeHash(t, target) != old {
		t.Fatalf("restore --force with a wrong key changed the target\n%s", out)
	}
	if code == 0 || !strings.Contains(out, "no identity matched") || !strings.Contains(out, fp) {
		t.Fatalf("restore --force with a wrong key: exit %d, want an error naming fingerprint %s\n%s", code, fp, out)
	}
	if left := stagingLeft(t, target); len(left) != 0 {
		t.Fatalf("a refused restore left %v", left)
	}
	t.Logf("wrong key refused, target unchanged: %s", firstLine(out))

	// The same for a passphrase: the manifest records only that one is
	// needed, and a wrong one leaves the target as it was.
	passStore := t.TempDir()
	passFile := filepath.Join(t.TempDir(), "pass")
	wrongPass := filepath.Join(t.TempDir(), "wrong-pass")
	os.WriteFile(passFile, []byte("correct horse battery staple\n"), 0o600)
	os.WriteFile(wrongPass, []byte("incorrect horse\n"), 0o600)
	mustGB(t, "backup", "--storage", passStore, "--socket", clu.Node(1).Socket, "--user", "root", "--passphrase-file", passFile, "--log-level", "warn")
	pm := listBackups(t, passStore)[0]
	if len(pm.KeyFingerprint) != 1 || pm.KeyFingerprint[0] != crypt.PassphraseFingerprint {
		t.Fatalf("a passphrase backup records key fingerprints %v, want [%s]", pm.KeyFingerprint, crypt.PassphraseFingerprint)
	}
	out, code = gb(t, "restore", pm.ID, "--force", "--target-dir", target, "--passphrase-file", wrongPass, "--storage", passStore)
	if treeHash(t, target) != old {
		t.Fatalf("restore --force with a wrong passphrase changed the target\n%s", out)
	}
	if code == 0 || !strings.Contains(out, "no identity matched") || !strings.Contains(out, "a passphrase (--passphrase-file)") {
		t.Fatalf("restore --force with a wrong passphrase: exit %d\n%s", code, out)
	}
	t.Logf("wrong passphrase refused, target unchanged: %s", firstLine(out))

	args := []string{"restore", m.ID, "--force", "--target-dir", target, "--identity", keyFile, "--storage", store, "--log-level", "info"}
	for _, step := range []string{"downloaded", "prepared", "before-swap", "swapped"} {
		gbtest.RunKilledAt(t, step, args...)
		if left := stagingLeft(t, target); len(left) != 1 {
			t.Fatalf("killed at %s: want the killed run's staging dir, found %v", step, left)
		}
		if _, err := os.Stat(filepath.Join(target, backup.IncompleteMarker)); err == nil {
			t.Fatalf("killed at %s: the target holds %s", step, backup.IncompleteMarker)
		}
		if step != "swapped" {
			if treeHash(t, target) != old {
				t.Fatalf("killed at %s (before the swap): the target changed", step)
			}
			t.Logf("killed at %s: target byte for byte as before", step)
			continue
		}
		// Past the swap: wholly the new datadir, none of the old files.
		if _, err := os.Stat(filepath.Join(target, "OLD-DATADIR")); err == nil {
			t.Fatalf("killed at %s: the target still holds old files", step)
		}
		if _, err := os.Stat(filepath.Join(target, "xtrabackup_checkpoints")); err != nil {
			t.Fatalf("killed at %s: the target is not the restored datadir: %v", step, err)
		}
		t.Logf("killed at %s: target wholly new", step)
	}
	// The next run removes the leftover (the old datadir the killed run had
	// swapped out) and replaces the target again.
	out = mustGB(t, args...)
	if !strings.Contains(out, "removed the staging directory of an interrupted restore") {
		t.Fatalf("the next restore did not report removing the killed run's staging dir:\n%s", out)
	}
	if left := stagingLeft(t, target); len(left) != 0 {
		t.Fatalf("after a good restore: %v left", left)
	}
	db, _ := gbtest.Standalone(t, target)
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM mysql.user").Scan(&n); err != nil || n == 0 {
		t.Fatalf("the restored datadir does not serve: %d users, %v", n, err)
	}
}

// TestRestoreIntoEmptyMountPoint: a datadir that is its own filesystem
// (a mount point cannot be exchanged) is restored into when empty: staged
// inside it, moved in, nothing of the staging left; the server starts on it.
func TestRestoreIntoEmptyMountPoint(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a tmpfs and needs root (CI runs as root)")
	}
	store := t.TempDir()
	mustGB(t, "backup", "--storage", store, "--socket", clu.Node(1).Socket, "--user", "root", "--log-level", "warn")
	mnt := filepath.Join(t.TempDir(), "mysql")
	if err := os.Mkdir(mnt, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2g", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	mustGB(t, "restore", "latest", "--target-dir", mnt, "--storage", store, "--log-level", "warn")
	entries, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".gosst-restore") || e.Name() == backup.IncompleteMarker {
			t.Fatalf("the restore left %s in the mount point", e.Name())
		}
	}
	db, stop := gbtest.Standalone(t, mnt)
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM mysql.user").Scan(&n); err != nil || n == 0 {
		t.Fatalf("the restored datadir does not serve: %d users, %v", n, err)
	}
	stop()
}
