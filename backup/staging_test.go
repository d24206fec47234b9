package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/sys/unix"

	"github.com/gosst/gosst/storage/mem"
	"github.com/gosst/gosst/stream"
	"github.com/gosst/gosst/stream/codec"
	"github.com/gosst/gosst/stream/crypt"
)

// treeHash hashes names, modes and contents of every entry under dir.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil // the directory itself: its mode is checked apart
		}
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			line += " " + hex.EncodeToString(sum[:])
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	h.Write([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(h.Sum(nil))
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

// stagingLeft lists what restores left next to the target, besides the
// lock file.
func stagingLeft(t *testing.T, target string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+stagingInfix+"*"))
	return m
}

func stageNew(t *testing.T, target string, force bool, files map[string]string) *staging {
	t.Helper()
	st, err := beginStaging(target, force, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(st.newDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	writeTree(t, st.newDir(), files)
	return st
}

// crashAt makes the failpoint step panic, as close as a unit test gets to
// a kill: nothing after it runs, no deferred Close; the lock is dropped as
// the kernel would drop it.
func crashAt(t *testing.T, st *staging, step string, fn func() error) {
	t.Helper()
	old := failpoint
	failpoint = func(s string) {
		if s == step {
			panic("killed at " + s)
		}
	}
	defer func() {
		failpoint = old
		if r := recover(); r == nil {
			t.Fatalf("step %s was never reached", step)
		}
		st.lock.Close()
	}()
	_ = fn()
}

func TestSwapReplacesTargetWholly(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing map[string]string // nil: no target
		noExch   bool
	}{
		{"missing target", nil, false},
		{"empty target", map[string]string{}, false},
		{"full target, exchange", map[string]string{"ibdata1": "old", "db/t.ibd": "old table"}, false},
		{"full target, no RENAME_EXCHANGE", map[string]string{"ibdata1": "old", "db/t.ibd": "old table"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.noExch {
				old := exchange
				exchange = func(a, b string) error { return unix.EINVAL }
				defer func() { exchange = old }()
			}
			target := filepath.Join(t.TempDir(), "data")
			if tc.existing != nil {
				if err := os.Mkdir(target, 0o751); err != nil {
					t.Fatal(err)
				}
				writeTree(t, target, tc.existing)
			}
			newFiles := map[string]string{"ibdata1": "new", "db2/u.ibd": "new table"}
			want := t.TempDir()
			writeTree(t, want, newFiles)
			st := stageNew(t, target, true, newFiles)
			if err := st.swap(); err != nil {
				t.Fatal(err)
			}
			st.Close()
			if got, w := treeHash(t, target), treeHash(t, want); got != w {
				t.Fatalf("target after the swap differs from the new datadir")
			}
			fi, err := os.Stat(target)
			if err != nil {
				t.Fatal(err)
			}
			if wantMode := map[bool]os.FileMode{true: 0o751, false: 0o750}[tc.existing != nil]; fi.Mode().Perm() != wantMode {
				t.Fatalf("target mode %v, want %v", fi.Mode().Perm(), wantMode)
			}
			if left := stagingLeft(t, target); len(left) != 0 {
				t.Fatalf("staging left behind: %v", left)
			}
		})
	}
}

// TestSwapThroughSymlink: a target that is a symlink to a datadir keeps
// the link; the directory it points to is replaced.
func TestSwapThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	writeTree(t, real, map[string]string{"ibdata1": "old"})
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	st := stageNew(t, link, true, map[string]string{"ibdata1": "new"})
	if err := st.swap(); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink is gone: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(link, "ibdata1")); err != nil || string(data) != "new" {
		t.Fatalf("through the link: %q %v", data, err)
	}
	if left := stagingLeft(t, real); len(left) != 0 {
		t.Fatalf("staging left: %v", left)
	}
}

func TestRefusesNonEmptyTargetWithoutForce(t *testing.T) {
	target := filepath.Join(t.TempDir(), "data")
	writeTree(t, target, map[string]string{"ibdata1": "old"})
	before := treeHash(t, target)
	_, err := beginStaging(target, false, slog.New(slog.DiscardHandler))
	if !errors.Is(err, ErrTargetNotEmpty) {
		t.Fatalf("err %v, want ErrTargetNotEmpty", err)
	}
	if treeHash(t, target) != before || len(stagingLeft(t, target)) != 0 {
		t.Fatal("a refused restore changed something")
	}
}

// TestKilledRestoreLeavesOldOrNew: a restore killed at each step leaves
// the target wholly old (before the swap) or wholly new (after it), never
// a mix, and the next restore removes its staging directory (and puts a
// target moved aside by the fallback swap back).
func TestKilledRestoreLeavesOldOrNew(t *testing.T) {
	oldFiles := map[string]string{"ibdata1": "old", "db/t.ibd": "old table"}
	newFiles := map[string]string{"ibdata1": "new", "db2/u.ibd": "new table"}
	for _, tc := range []struct {
		step    string
		noExch  bool
		wantNew bool
	}{
		{"before-swap", false, false},
		{"swapped", false, true},
		{"mid-swap", true, false}, // target moved aside: the next run puts it back
		{"swapped", true, true},
	} {
		t.Run(fmt.Sprintf("%s exchange=%v", tc.step, !tc.noExch), func(t *testing.T) {
			if tc.noExch {
				old := exchange
				exchange = func(a, b string) error { return unix.ENOSYS }
				defer func() { exchange = old }()
			}
			target := filepath.Join(t.TempDir(), "data")
			writeTree(t, target, oldFiles)
			oldHash := treeHash(t, target)
			want := t.TempDir()
			writeTree(t, want, newFiles)
			newHash := treeHash(t, want)

			st := stageNew(t, target, true, newFiles)
			crashAt(t, st, tc.step, st.swap)
			if len(stagingLeft(t, target)) != 1 {
				t.Fatalf("the killed run should leave its staging dir")
			}
			// The next run cleans up; it fails here on purpose (not empty,
			// no --force) so that only the cleanup is seen.
			_, err := beginStaging(target, false, slog.New(slog.DiscardHandler))
			if !errors.Is(err, ErrTargetNotEmpty) {
				t.Fatalf("next run: %v", err)
			}
			if left := stagingLeft(t, target); len(left) != 0 {
				t.Fatalf("the next run left %v", left)
			}
			got := treeHash(t, target)
			switch {
			case tc.wantNew && got != newHash:
				t.Fatal("after a kill past the swap the target is not wholly new")
			case !tc.wantNew && got != oldHash:
				t.Fatal("after a kill before the swap the target is not wholly old")
			}
		})
	}
}

func TestConcurrentRestoreRefused(t *testing.T) {
	target := filepath.Join(t.TempDir(), "data")
	st, err := beginStaging(target, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := beginStaging(target, false, slog.New(slog.DiscardHandler)); !errors.Is(err, ErrRestoreRunning) {
		t.Fatalf("second restore: %v, want ErrRestoreRunning", err)
	}
	if _, err := os.Stat(st.dir); err != nil {
		t.Fatalf("the running restore's staging dir was touched: %v", err)
	}
}

// encryptedBackup stores a tiny encrypted backup object and its manifest.
func encryptedBackup(t *testing.T, recipients []age.Recipient) (*Catalog, *Manifest) {
	t.Helper()
	ctx := context.Background()
	cat := &Catalog{Store: mem.New()}
	m := sampleManifest("20261126T052000Z-a1b2c3", TypeFull, "", 0, 100)
	m.Codecs = append(m.Codecs, "age")
	m.Objects[0].Key += ".age" // the key follows the codec chain (Validate)
	for _, r := range recipients {
		m.KeyFingerprint = append(m.KeyFingerprint, crypt.RecipientFingerprint(r))
	}
	var buf bytes.Buffer
	sw, err := stream.NewWriter(&buf, stream.WriteOptions{Codec: codec.None(), Recipients: recipients})
	if err != nil {
		t.Fatal(err)
	}
	sw.Write(bytes.Repeat([]byte("x"), 200<<10))
	sum, err := sw.Close()
	if err != nil {
		t.Fatal(err)
	}
	st := sha256.Sum256(buf.Bytes())
	m.Objects[0].Size, m.Objects[0].SHA256 = int64(buf.Len()), hex.EncodeToString(st[:])
	m.Objects[0].PlainSize, m.Objects[0].PlainSHA256 = sum.Size, hex.EncodeToString(sum.SHA256[:])
	if err := cat.Store.Put(ctx, m.Objects[0].Key, bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
		t.Fatal(err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Store.Put(ctx, manifestKey(m.ID), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	return cat, m
}

// TestWrongKeyForceLeavesTarget: restore --force with a wrong identity or
// passphrase fails before anything is downloaded or staged, names the key
// the backup needs, and leaves the target byte for byte.
func TestWrongKeyForceLeavesTarget(t *testing.T) {
	right, _ := age.GenerateX25519Identity()
	wrong, _ := age.GenerateX25519Identity()
	pass, err := crypt.ScryptRecipient("right horse battery", 10)
	if err != nil {
		t.Fatal(err)
	}
	wrongPass, _ := crypt.ScryptIdentity("wrong horse battery")
	for _, tc := range []struct {
		name       string
		recipients []age.Recipient
		ids        []age.Identity
		want       string
	}{
		{"x25519", []age.Recipient{right.Recipient()}, []age.Identity{wrong}, "age key fingerprint " + crypt.Fingerprint(right.Recipient().String())},
		{"passphrase", []age.Recipient{pass}, []age.Identity{wrongPass}, "a passphrase (--passphrase-file)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cat, m := encryptedBackup(t, tc.recipients)
			target := filepath.Join(t.TempDir(), "data")
			writeTree(t, target, map[string]string{"ibdata1": "precious", "db/t.ibd": "rows"})
			before := treeHash(t, target)
			_, err := Restore(context.Background(), cat, m.ID, RestoreOptions{TargetDir: target, Force: true, Identities: tc.ids, Mariabackup: "/nonexistent"})
			if treeHash(t, target) != before {
				t.Fatalf("a restore with a wrong key changed the target (%v)", err)
			}
			if !errors.Is(err, crypt.ErrNoIdentityMatched) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want a wrong-key error naming %q", err, tc.want)
			}
			if left := stagingLeft(t, target); len(left) != 0 {
				t.Fatalf("staging left: %v", left)
			}
		})
	}
}
