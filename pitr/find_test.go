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
	"time"

	"filippo.io/age"

	"github.com/gosst/gosst/binlog"
	"github.com/gosst/gosst/storage/mem"
)

// putRealSegment stores a real binlog fixture (written by mariadbd, see
// binlog/testdata/README.md) as an archived segment (from, to].
func putRealSegment(t *testing.T, be *mem.Backend, fixture string, from, to uint64, replayFrom int64, rs ...age.Recipient) *Segment {
	t.Helper()
	plain, err := os.ReadFile(filepath.Join("..", "binlog", "testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	ix, err := binlog.Index(bytes.NewReader(plain), binlog.IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Segment{Format: SegmentFormat, Lineage: lineage, Domain: 7, Server: 11, From: from, To: to, Node: "node1",
		File: "mariadb-bin" + filepath.Ext(fixture), ReplayFrom: replayFrom, FirstCommit: ix.FirstCommit, LastCommit: ix.LastCommit, Closed: ix.Closed,
		Binlog: ix, Codecs: []string{"binlog", "zstd"}}
	ext := ".zstd"
	if len(rs) > 0 {
		s.Codecs, ext = append(s.Codecs, "age"), ".zstd.age"
	}
	data, obj := sealed(t, s.Key()+"/data.binlog"+ext, plain, rs...)
	s.Object = obj
	ctx := context.Background()
	if err := be.Put(ctx, obj.Key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	idx, _ := json.Marshal(s)
	if err := be.Put(ctx, s.Key()+"/index.json", bytes.NewReader(idx), int64(len(idx))); err != nil {
		t.Fatal(err)
	}
	return s
}

func findSeqs(t *testing.T, a *Archive, o FindOptions) ([]string, *FindReport, error) {
	t.Helper()
	var got []string
	rep, err := a.Find(context.Background(), o, func(f *Found) error {
		got = append(got, f.GTID.String()+" "+f.Kind()+" "+f.RestoreBefore+" "+f.File)
		return nil
	})
	return got, rep, err
}

func TestFindInArchive(t *testing.T) {
	be := mem.New()
	a := &Archive{Store: be}
	putRealSegment(t, be, "find-mariadb-bin.000002", 0, 20, 4)
	putRealSegment(t, be, "find-mariadb-bin.000005", 20, 29, 4)
	// An unreadable index is reported; the other segments are searched.
	badKey := segmentKey(lineage, 7, 29, 40) + "/index.json"
	if err := be.Put(context.Background(), badKey, strings.NewReader("{not json"), 9); err != nil {
		t.Fatal(err)
	}
	scratch := t.TempDir()
	o := FindOptions{Filter: binlog.Filter{Tables: []string{"shop.orders"}, Kinds: []string{"DDL", "DELETE"}}, ScratchDir: scratch}
	got, rep, err := findSeqs(t, a, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Bad) != 1 || rep.Bad[badKey] == nil {
		t.Fatalf("unreadable index not reported: %v", rep.Bad)
	}
	want := []string{
		"7-11-7 DDL 7-11-7 mariadb-bin.000002",
		"7-11-10 INSERT+UPDATE+DELETE 7-11-10 mariadb-bin.000002",
		"7-11-13 DELETE 7-11-13 mariadb-bin.000002",
		"7-11-18 DDL 7-11-18 mariadb-bin.000002",
		"7-11-19 DDL 7-11-19 mariadb-bin.000002",
		"7-11-20 DDL 7-11-20 mariadb-bin.000002",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || rep.Segments != 2 {
		t.Fatalf("found (%d segments):\n%s\nwant:\n%s", rep.Segments, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ents, _ := os.ReadDir(scratch); len(ents) != 0 {
		t.Fatalf("scratch left behind: %v", ents)
	}
	// The second fixture was written 12 s later: a --since after the first
	// skips its segment without downloading it.
	o = FindOptions{Filter: binlog.Filter{Kinds: []string{"DDL"}, Since: time.Date(2026, 12, 5, 0, 3, 50, 0, time.UTC)}}
	got, rep, err = findSeqs(t, a, o)
	if err != nil || rep.Skipped != 1 || len(got) != 3 || !strings.HasPrefix(got[2], "7-11-29 DDL") {
		t.Fatalf("since: %v %+v %v", err, rep, got)
	}
}

// A segment that starts before the previous one ends (archiving moved to
// another node) reports only its own transactions.
func TestFindSkipsBeforeReplayFrom(t *testing.T) {
	be := mem.New()
	a := &Archive{Store: be}
	// 000005 holds 21..29; pretend 21..24 were archived from another node.
	putRealSegment(t, be, "find-mariadb-bin.000005", 24, 29, 1238) // 1238: end of 7-11-24 (see mariadb-binlog)
	got, _, err := findSeqs(t, a, FindOptions{})
	if err != nil || len(got) != 5 || !strings.HasPrefix(got[0], "7-11-25 ") {
		t.Fatalf("%v %v", err, got)
	}
}

// Nothing read from storage is decoded before it is verified: a damaged
// object, or an encrypted one without a key, fails the search with the
// reason; nothing is left in the scratch directory.
func TestFindRefusesDamagedOrUndecryptable(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	a := &Archive{Store: be}
	s := putRealSegment(t, be, "find-mariadb-bin.000005", 20, 29, 4)
	rc, err := be.Get(ctx, s.Object.Key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(rc)
	rc.Close()
	d := buf.Bytes()
	d[len(d)/2] ^= 1
	if err := be.Put(ctx, s.Object.Key, bytes.NewReader(d), int64(len(d))); err != nil {
		t.Fatal(err)
	}
	scratch := t.TempDir()
	got, _, err := findSeqs(t, a, FindOptions{ScratchDir: scratch})
	if err == nil || len(got) != 0 {
		t.Fatalf("damaged object: %v %v", err, got)
	}
	t.Logf("damaged: %v", err)
	if ents, _ := os.ReadDir(scratch); len(ents) != 0 {
		t.Fatalf("scratch left behind: %v", ents)
	}

	be = mem.New()
	a = &Archive{Store: be}
	id, _ := age.GenerateX25519Identity()
	putRealSegment(t, be, "find-mariadb-bin.000005", 20, 29, 4, id.Recipient())
	if _, _, err := findSeqs(t, a, FindOptions{}); err == nil || !strings.Contains(err.Error(), "--identity") {
		t.Fatalf("encrypted without identity: %v", err)
	}
	got, _, err = findSeqs(t, a, FindOptions{Identities: []age.Identity{id}, Filter: binlog.Filter{Kinds: []string{"delete"}}})
	if err != nil || len(got) != 2 {
		t.Fatalf("encrypted with identity: %v %v", err, got)
	}
}

func TestFindInDir(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"find-mariadb-bin.000002", "find-mariadb-bin.000005"} {
		data, err := os.ReadFile(filepath.Join("..", "binlog", "testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "mariadb-bin"+filepath.Ext(f)), data, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	// Not binlogs: an index file, a relay log, a file without the magic.
	os.WriteFile(filepath.Join(dir, "mariadb-bin.index"), []byte("./mariadb-bin.000002\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "relay-bin.000001"), binlog.Magic, 0o600)
	os.WriteFile(filepath.Join(dir, "ib_logfile.000001"), []byte("xxxx"), 0o600)
	var got []string
	files, err := FindInDir(context.Background(), dir, "n1", binlog.Filter{Tables: []string{"people"}, Kinds: []string{"DDL"}}, func(f *Found) error {
		got = append(got, f.GTID.String()+" "+f.File+" "+f.RestoreBefore)
		return nil
	})
	if err != nil || files != 2 || strings.Join(got, ",") != "7-11-22 mariadb-bin.000005 7-11-22,7-11-29 mariadb-bin.000005 7-11-29" {
		t.Fatalf("%v %d %v", err, files, got)
	}
	// Interrupted (SIGINT cancels the command's context): it stops with
	// the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err = FindInDir(ctx, dir, "n1", binlog.Filter{}, func(*Found) error { n++; cancel(); return nil })
	if !errors.Is(err, context.Canceled) || n > 20 {
		t.Fatalf("canceled: %v after %d", err, n)
	}
	if _, err := FindInDir(context.Background(), t.TempDir(), "n1", binlog.Filter{}, func(*Found) error { return nil }); err == nil {
		t.Fatal("an empty directory is not an error")
	}
}
