package pitr

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/stream"
	"github.com/gosst/gosst/stream/codec"
)

// Test helpers that these tests used inside package backup: the catalog's
// key layout (backups/<id>/…) and a sample manifest, restated here.

const backupsPrefix = "backups/"

func dataKey(id, ext string) string { return backupsPrefix + id + "/data.xbstream" + ext }
func manifestKey(id string) string  { return backupsPrefix + id + "/manifest.json" }

func sampleManifest(id, typ, parent string, from, to int64) *backup.Manifest {
	return &backup.Manifest{
		Format: backup.ManifestFormat, ID: id, Type: typ, Parent: parent,
		StartTime: time.Unix(1, 0).UTC(), EndTime: time.Unix(2, 0).UTC(),
		LSN: backup.LSNRange{From: from, To: to}, ToolVersion: "test", Codecs: []string{"xbstream", "zstd"},
		Objects: []backup.Object{{Key: dataKey(id, ".zstd"), Size: 3, SHA256: strings.Repeat("a", 64), PlainSize: 5, PlainSHA256: strings.Repeat("b", 64)}},
	}
}

// sealed returns plain sealed (zstd, encrypted to rs when given) and the
// Object describing it under key.
func sealed(t *testing.T, key string, plain []byte, rs ...age.Recipient) ([]byte, backup.Object) {
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
	return buf.Bytes(), backup.Object{Key: key, Size: int64(buf.Len()), SHA256: hex.EncodeToString(st[:]),
		PlainSize: sum.Size, PlainSHA256: hex.EncodeToString(sum.SHA256[:])}
}
