package pitr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/binlog"
	"github.com/gosst/gosst/storage/mem"
)

const lineage = "5e6f0000-0000-0000-0000-000000000001"

var t0 = time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)

func sec(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

func putSegment(t *testing.T, be *mem.Backend, from, to uint64, node string, closed time.Time) *Segment {
	t.Helper()
	s := &Segment{Format: SegmentFormat, Lineage: lineage, Domain: 7, Server: 11, From: from, To: to, Node: node,
		File: "mysql-bin.000001", ReplayFrom: 4, FirstCommit: closed.Add(-time.Second), LastCommit: closed, Closed: closed,
		Binlog: &binlog.FileIndex{Size: 1000}, Codecs: []string{"binlog", "zstd"}}
	s.Object = backup.Object{Key: s.Key() + "/data.binlog.zstd", Size: 3, SHA256: strings.Repeat("a", 64), PlainSize: 1000, PlainSHA256: strings.Repeat("b", 64)}
	ctx := context.Background()
	if err := be.Put(ctx, s.Object.Key, strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(s)
	if err := be.Put(ctx, s.Key()+"/index.json", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	return s
}

func putBackup(t *testing.T, be *mem.Backend, id, uuid, gtid string, end time.Time) {
	t.Helper()
	m := &backup.Manifest{Format: backup.ManifestFormat, ID: id, Type: backup.TypeFull, EndTime: end, Galera: backup.GaleraPosition{UUID: uuid},
		Binlog: backup.BinlogPosition{GTID: gtid}, Codecs: []string{"xbstream", "zstd"},
		Objects: []backup.Object{{Key: dataKey(id, ".zstd"), SHA256: strings.Repeat("a", 64), PlainSHA256: strings.Repeat("b", 64)}}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Put(context.Background(), manifestKey(id), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

func TestCoverageAndPick(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	putSegment(t, be, 0, 10, "node3", sec(10))
	mid := putSegment(t, be, 10, 20, "node3", sec(20))
	putSegment(t, be, 15, 25, "node1", sec(25)) // a second archiver overlapped: still contiguous
	putSegment(t, be, 25, 35, "node1", sec(35))
	putBackup(t, be, "20261126T050000Z-000001", lineage, "0-12-3,7-11-5", sec(5))
	putBackup(t, be, "20261126T050100Z-000002", lineage, "7-11-15", sec(15))
	putBackup(t, be, "20261126T050200Z-000003", "99990000-0000-0000-0000-000000000001", "7-11-16", sec(16)) // other lineage
	cat, a := &backup.Catalog{Store: be}, &Archive{Store: be}
	cov, err := a.Coverage(ctx, cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(cov.Windows) != 1 || len(cov.Gaps) != 0 {
		t.Fatalf("%s", cov.Describe())
	}
	w := cov.Windows[0]
	if w.FromSeq != 5 || w.ToSeq != 35 || !w.FromTime.Equal(sec(5)) || !w.ToTime.Equal(sec(35)) || len(w.Backups) != 2 {
		t.Fatalf("window %+v", w)
	}
	g := func(seq uint64) *binlog.GTID { return &binlog.GTID{Domain: 7, Server: 11, Seq: seq} }
	for _, c := range []struct {
		name string
		o    PITROptions
		want string // backup id suffix, "" = refused
	}{
		{"gtid after the first backup", PITROptions{GTID: g(12)}, "000001"},
		{"gtid is the second backup's last tx", PITROptions{GTID: g(15)}, "000001"},
		{"gtid after the second backup", PITROptions{GTID: g(16)}, "000002"},
		{"last archived", PITROptions{GTID: g(35)}, "000002"},
		{"beyond the archive", PITROptions{GTID: g(36)}, ""},
		{"the first backup itself", PITROptions{GTID: g(5)}, ""},
		{"other domain", PITROptions{GTID: &binlog.GTID{Domain: 0, Server: 12, Seq: 30}}, ""},
		{"time between backups", PITROptions{Time: sec(10)}, "000001"},
		{"time at the second backup", PITROptions{Time: sec(15)}, "000002"},
		{"time at the close", PITROptions{Time: sec(35)}, "000002"},
		{"time after the close", PITROptions{Time: sec(36)}, ""},
		{"time before the first backup", PITROptions{Time: sec(4)}, ""},
	} {
		_, m, err := pick(cov, c.o)
		switch {
		case c.want == "" && !errors.Is(err, ErrOutsideWindow):
			t.Errorf("%s: want refusal, got %v %v", c.name, m, err)
		case c.want == "" && !strings.Contains(err.Error(), "restorable windows:"):
			t.Errorf("%s: refusal without the windows: %v", c.name, err)
		case c.want != "" && (err != nil || !strings.HasSuffix(m.ID, c.want)):
			t.Errorf("%s: want backup %s, got %v %v", c.name, c.want, m, err)
		}
	}

	// A deleted data object is a gap: the window ends before it.
	if err := be.Delete(ctx, mid.Object.Key); err != nil {
		t.Fatal(err)
	}
	cov, err = a.Coverage(ctx, cat)
	if err != nil {
		t.Fatal(err)
	}
	// (15,25] from the other node still covers the second backup: a window
	// starts after the gap.
	if len(cov.Windows) != 2 || cov.Windows[0].ToSeq != 10 || cov.Windows[1].FromSeq != 15 || len(cov.Gaps) != 1 || cov.Gaps[0].After != 10 || cov.Gaps[0].Through != 15 ||
		!strings.Contains(cov.Gaps[0].Reason, "missing") {
		t.Fatalf("after deleting %s:\n%s", mid.Object.Key, cov.Describe())
	}
	if _, _, err := pick(cov, PITROptions{GTID: g(12)}); !errors.Is(err, ErrOutsideWindow) || !strings.Contains(err.Error(), "gap:") {
		t.Fatalf("target across the gap: %v", err)
	}
	if _, m, err := pick(cov, PITROptions{GTID: g(9)}); err != nil || !strings.HasSuffix(m.ID, "000001") {
		t.Fatalf("target before the gap: %v", err)
	}
	if _, m, err := pick(cov, PITROptions{GTID: g(30)}); err != nil || !strings.HasSuffix(m.ID, "000002") {
		t.Fatalf("target after the gap, from the backup after it: %v", err)
	}
}

func TestCheckSplit(t *testing.T) {
	for _, c := range []struct {
		checkpoint string
		server     uint32
		split      bool
	}{
		{"", 11, false},
		{"86532c0c-e95c-11f1-baa3-efeb84d0873f:130 7-11-117", 11, false},
		{"86532c0c-e95c-11f1-baa3-efeb84d0873f:130 7-11-117", 0, false},
		{"86532c0c-e95c-11f1-baa3-efeb84d0873f:-1", 11, false},
		{"86532c0c-e95c-11f1-baa3-efeb84d0873f:130 7-12-23", 11, true}, // the observed split
		{"86532c0c-e95c-11f1-baa3-efeb84d0873f:115 0-12-20", 11, true},
		{"86532c0c-e95c-11f1-baa3-efeb84d0873f:115 0-12-20", 0, true},
	} {
		ni := nodeInfo{name: "node2", galera: true, domain: 7, checkpoint: c.checkpoint}
		err := ni.checkSplit(c.server)
		if c.split != errors.Is(err, ErrGTIDSplit) {
			t.Errorf("%q server %d: %v", c.checkpoint, c.server, err)
		}
	}
}
