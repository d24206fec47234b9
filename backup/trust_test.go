package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/gosst/gosst/storage/mem"
	"github.com/gosst/gosst/stream"
	"github.com/gosst/gosst/stream/codec"
)

// Storage contents are untrusted: whoever can write to the bucket can
// rewrite a manifest or an index. These tests craft such objects and check
// that they cannot steer a restore.

// sealed returns plain sealed (zstd, encrypted to rs when given) and the
// Object describing it under key.
func sealed(t *testing.T, key string, plain []byte, rs ...age.Recipient) ([]byte, Object) {
	t.Helper()
	c, err := codec.Lookup(codec.NameZstd)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sw, err := stream.NewWriter(&buf, stream.WriteOptions{Codec: c, Recipients: rs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Write(plain); err != nil {
		t.Fatal(err)
	}
	sum, err := sw.Close()
	if err != nil {
		t.Fatal(err)
	}
	st := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), Object{Key: key, Size: int64(buf.Len()), SHA256: hex.EncodeToString(st[:]),
		PlainSize: sum.Size, PlainSHA256: hex.EncodeToString(sum.SHA256[:])}
}

// TestCraftedManifestRefused: a manifest cannot name another backup's
// object, a key outside its own prefix, or sizes that overflow.
func TestCraftedManifestRefused(t *testing.T) {
	const id, other = "20261126T052000Z-a1b2c3", "20261126T050000Z-000001"
	for name, tc := range map[string]struct {
		mutate func(*Manifest)
		want   string
	}{
		"another backup's object":   {func(m *Manifest) { m.Objects[0].Key = dataKey(other, ".zstd") }, "not this backup's data object"},
		"dot-dot key":               {func(m *Manifest) { m.Objects[0].Key = "backups/" + id + "/../" + other + "/data.xbstream.zstd" }, "not this backup's data object"},
		"absolute key":              {func(m *Manifest) { m.Objects[0].Key = "/etc/shadow" }, "not this backup's data object"},
		"binlog archive key":        {func(m *Manifest) { m.Objects[0].Key = "binlogs/x/7/1-2/data.binlog.zstd" }, "not this backup's data object"},
		"key disagrees with codecs": {func(m *Manifest) { m.Objects[0].Key = dataKey(id, ".zstd.age") }, "not this backup's data object"},
		"unknown compression":       {func(m *Manifest) { m.Codecs = []string{"xbstream", "../x"} }, "unknown compression"},
		"odd codec chain":           {func(m *Manifest) { m.Codecs = []string{"xbstream", "zstd", "rot13"} }, "codec chain"},
		"second object":             {func(m *Manifest) { m.Objects = append(m.Objects, m.Objects[0]) }, "exactly one"},
		"negative size":             {func(m *Manifest) { m.Objects[0].Size = -1 }, "outside"},
		"huge size":                 {func(m *Manifest) { m.Objects[0].Size = 1 << 62 }, "outside"},
		"huge plain size":           {func(m *Manifest) { m.Objects[0].PlainSize = 1<<63 - 1 }, "outside"},
		"hash not hex":              {func(m *Manifest) { m.Objects[0].SHA256 = strings.Repeat("z", 64) }, "incomplete"},
		"negative LSN":              {func(m *Manifest) { m.LSN = LSNRange{From: -5, To: 1} }, "LSN range"},
		"parent newer than itself":  {func(m *Manifest) { m.Type, m.Parent = TypeIncremental, "20991231T000000Z-000000" }, "not older"},
		"huge node name":            {func(m *Manifest) { m.Node = strings.Repeat("n", 1000) }, "longer than"},
	} {
		t.Run(name, func(t *testing.T) {
			m := sampleManifest(id, TypeFull, "", 0, 100)
			tc.mutate(m)
			data, err := json.Marshal(m) // not Marshal: it validates
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseManifest(data)
			if !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("crafted manifest: got %v, want an ErrManifest saying %q", err, tc.want)
			}
		})
	}
}

// TestRestoreRefusesManifestPointingAtAnotherBackup: restore of a crafted
// manifest stops before reading anything and leaves the target untouched.
func TestRestoreRefusesManifestPointingAtAnotherBackup(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	cat := &Catalog{Store: be}
	const victim, crafted = "20261126T050000Z-000001", "20261126T060000Z-000002"
	data, obj := sealed(t, dataKey(victim, ".zstd"), []byte("the victim's xbstream"))
	if err := be.Put(ctx, obj.Key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	m := sampleManifest(crafted, TypeFull, "", 0, 100)
	m.Objects = []Object{obj}
	raw, _ := json.Marshal(m)
	if err := be.Put(ctx, manifestKey(crafted), bytes.NewReader(raw), int64(len(raw))); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "datadir")
	_, err := Restore(ctx, cat, crafted, RestoreOptions{TargetDir: target, Mariabackup: "false"})
	if !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), "not this backup's data object") {
		t.Fatalf("restore of a manifest naming another backup's object: %v", err)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused restore created the target: %v", err)
	}
}

// TestIdentityRefusesUnencrypted: an encrypted backup whose manifest was
// rewritten to say "unencrypted" (and its object replaced by plaintext) is
// refused when the operator gives a key; so is such an archived binlog.
func TestIdentityRefusesUnencrypted(t *testing.T) {
	ctx := context.Background()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	ids := []age.Identity{id}
	be := mem.New()
	cat := &Catalog{Store: be}
	const bid = "20261126T050000Z-000001"
	// The real backup: encrypted.
	enc, encObj := sealed(t, dataKey(bid, ".zstd.age"), []byte("real xbstream"), id.Recipient())
	if err := be.Put(ctx, encObj.Key, bytes.NewReader(enc), int64(len(enc))); err != nil {
		t.Fatal(err)
	}
	// The attacker's replacement: plaintext, manifest without "age".
	plain, plainObj := sealed(t, dataKey(bid, ".zstd"), []byte("attacker's xbstream"))
	if err := be.Put(ctx, plainObj.Key, bytes.NewReader(plain), int64(len(plain))); err != nil {
		t.Fatal(err)
	}
	m := sampleManifest(bid, TypeFull, "", 0, 100)
	m.Objects = []Object{plainObj}
	raw, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Put(ctx, manifestKey(bid), bytes.NewReader(raw), int64(len(raw))); err != nil {
		t.Fatal(err)
	}
	// Even with --force, the existing target is not touched.
	target := filepath.Join(t.TempDir(), "datadir")
	if err := os.MkdirAll(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "ibdata1"), []byte("the current datadir"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Restore(ctx, cat, bid, RestoreOptions{TargetDir: target, Force: true, Identities: ids, Mariabackup: "false"})
	if !errors.Is(err, ErrNotEncrypted) {
		t.Fatalf("restore with a key of a backup recorded unencrypted: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "ibdata1")); err != nil || string(b) != "the current datadir" {
		t.Fatalf("the refused restore touched the target: %q %v", b, err)
	}
	// Past the early check (a chain read before the record changed, say),
	// unseal itself refuses the plaintext.
	rc, err := be.Get(ctx, plainObj.Key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := Unseal(rc, plainObj, false, ids); !errors.Is(err, ErrNotEncrypted) {
		t.Fatalf("unseal with a key of plaintext: %v", err)
	}
}
