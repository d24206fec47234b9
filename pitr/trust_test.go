package pitr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/binlog"
	"github.com/gosst/gosst/storage/mem"
)

// Storage contents are untrusted: whoever can write to the bucket can
// rewrite an index. These tests craft such objects and check that they
// cannot steer a restore.

// craftedSegment returns a well-formed segment (valid index, matching data
// object in be) whose File is file; the index is not validated.
func craftedSegment(t *testing.T, be *mem.Backend, file string, rs ...age.Recipient) *Segment {
	t.Helper()
	s := &Segment{Format: SegmentFormat, Lineage: lineage, Domain: 7, Server: 11, From: 10, To: 20, Node: "node1",
		File: file, ReplayFrom: 4, Binlog: &binlog.FileIndex{}, Codecs: []string{"binlog", "zstd"}}
	ext := ".zstd"
	if len(rs) > 0 {
		s.Codecs, ext = append(s.Codecs, "age"), ".zstd.age"
	}
	data, obj := sealed(t, s.Key()+"/data.binlog"+ext, []byte("chosen bytes, not even a binlog"), rs...)
	s.Object, s.Binlog.Size = obj, obj.PlainSize
	if err := be.Put(context.Background(), obj.Key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCraftedIndexCannotWriteOutsideScratch: a segment index whose file
// name is a path is refused when read, and plan() (given such a segment
// anyway) writes nothing outside its scratch directory.
func TestCraftedIndexCannotWriteOutsideScratch(t *testing.T) {
	ctx := context.Background()
	for _, file := range []string{"../../etc/x", "/etc/x", "/../escaped", "/../../escaped", "a/../../escaped", "..", ".hidden.000001", "x.000001/../../escaped.000001", "bin\x00.000001", strings.Repeat("b", 300) + ".000001"} {
		t.Run(file, func(t *testing.T) {
			be := mem.New()
			a := &Archive{Store: be}
			s := craftedSegment(t, be, file)
			idx, _ := json.Marshal(s)
			key := s.Key() + "/index.json"
			if _, err := ParseSegment(key, idx); err == nil || !strings.Contains(err.Error(), "not a binlog file name") {
				t.Fatalf("index with file %q: %v", file, err)
			}
			if err := be.Put(ctx, key, bytes.NewReader(idx), int64(len(idx))); err != nil {
				t.Fatal(err)
			}
			segs, bad, err := a.Segments(ctx)
			if err != nil || len(segs) != 0 || bad[key] == nil {
				t.Fatalf("Segments: %d segments, bad %v, %v", len(segs), bad, err)
			}

			base := t.TempDir()
			scratch := filepath.Join(base, "a", "b", "scratch")
			if err := os.MkdirAll(scratch, 0o700); err != nil {
				t.Fatal(err)
			}
			w := &Window{Lineage: lineage, Domain: 7, Segments: []*Segment{s}}
			m := sampleManifest("20261126T052000Z-a1b2c3", backup.TypeFull, "", 0, 100)
			_, err = plan(ctx, a, w, m, 10, PITROptions{}, scratch, &PITRResult{})
			if err == nil {
				t.Fatal("plan accepted a segment whose file is a path")
			}
			filepath.Walk(base, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					t.Errorf("plan wrote %s", p)
				}
				return nil
			})
		})
	}
	for _, ok := range []string{"mariadb-bin.000001", "node-1.example.com-bin.000042", "mysql_bin.1234567"} {
		if !ValidBinlogFile(ok) {
			t.Errorf("%q refused", ok)
		}
	}
}

// TestCraftedIndexKeys: an index cannot name another segment's object or
// lie about its own key.
func TestCraftedIndexKeys(t *testing.T) {
	be := mem.New()
	s := craftedSegment(t, be, "mariadb-bin.000001")
	for name, tc := range map[string]struct {
		mutate func(*Segment)
		want   string
	}{
		"another segment's object": {func(s *Segment) { s.Object.Key = segmentKey(lineage, 7, 0, 10) + "/data.binlog.zstd" }, "not the segment's data object"},
		"a backup's object":        {func(s *Segment) { s.Object.Key = dataKey("20261126T050000Z-000001", ".zstd") }, "not the segment's data object"},
		"lineage with slash":       {func(s *Segment) { s.Lineage = "../backups" }, "lineage"},
		"huge size":                {func(s *Segment) { s.Object.Size = 1 << 62 }, "outside"},
		"negative plain size":      {func(s *Segment) { s.Object.PlainSize = -1 }, "outside"},
	} {
		t.Run(name, func(t *testing.T) {
			c := *s
			tc.mutate(&c)
			idx, _ := json.Marshal(&c)
			if _, err := ParseSegment(s.Key()+"/index.json", idx); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	idx, _ := json.Marshal(s)
	if _, err := ParseSegment(s.Key()+"/index.json", idx); err != nil {
		t.Fatalf("good index refused: %v", err)
	}
	if _, err := ParseSegment(segmentKey(lineage, 7, 0, 10)+"/index.json", idx); err == nil {
		t.Fatal("index accepted under another segment's key")
	}
}

// TestIdentityRefusesUnencryptedSegment: an archived binlog segment
// recorded as unencrypted is refused when the operator gives a key (the
// backup half of this check is backup's TestIdentityRefusesUnencrypted).
func TestIdentityRefusesUnencryptedSegment(t *testing.T) {
	ctx := context.Background()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	ids := []age.Identity{id}
	be := mem.New()

	// The same for an archived binlog segment.
	s := craftedSegment(t, be, "mariadb-bin.000001")
	dir := t.TempDir()
	if err := (&Archive{Store: be}).download(ctx, s, dir, "seg", ids); !errors.Is(err, backup.ErrNotEncrypted) {
		t.Fatalf("download with a key of a segment recorded unencrypted: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "seg")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused segment was written: %v", err)
	}
	// An encrypted segment still downloads.
	es := craftedSegment(t, be, "mariadb-bin.000002", id.Recipient())
	if err := (&Archive{Store: be}).download(ctx, es, dir, "enc", ids); err != nil {
		t.Fatalf("encrypted segment: %v", err)
	}
}

func FuzzParseSegment(f *testing.F) {
	s := &Segment{Format: SegmentFormat, Lineage: lineage, Domain: 7, Server: 11, From: 10, To: 20, Node: "node1",
		File: "mariadb-bin.000001", ReplayFrom: 4, Binlog: &binlog.FileIndex{Size: 100}, Codecs: []string{"binlog", "zstd"}}
	s.Object = backup.Object{Key: s.Key() + "/data.binlog.zstd", Size: 3, SHA256: strings.Repeat("a", 64), PlainSize: 100, PlainSHA256: strings.Repeat("b", 64)}
	good, _ := json.Marshal(s)
	key := s.Key() + "/index.json"
	f.Add(key, good)
	f.Add(key, bytes.Replace(good, []byte(`"mariadb-bin.000001"`), []byte(`"../../etc/x"`), 1))
	f.Add(key, []byte(`{"format":1}`))
	f.Fuzz(func(t *testing.T, key string, data []byte) {
		s, err := ParseSegment(key, data)
		if err != nil {
			return
		}
		if err := s.validate(); err != nil {
			t.Fatalf("parsed index fails validation: %v", err)
		}
		if !ValidBinlogFile(s.File) || filepath.Base(s.File) != s.File || strings.ContainsAny(s.File, "/\\\x00") {
			t.Fatalf("unsafe file name accepted: %q", s.File)
		}
		if !strings.HasPrefix(s.Object.Key, s.Key()+"/") || strings.Contains(s.Object.Key, "..") {
			t.Fatalf("foreign object key accepted: %q", s.Object.Key)
		}
	})
}
