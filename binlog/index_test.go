package binlog

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// builder writes a synthetic binlog with CRC-32 checksums, shaped like the
// server's: FDE, Gtid_list, Binlog_checkpoint, transactions, Rotate.
type builder struct{ buf bytes.Buffer }

func newBuilder(ts uint32, inUse bool, state ...GTID) *builder {
	b := &builder{}
	b.buf.Write(Magic)
	fde := make([]byte, 2+50+4+1)
	binary.LittleEndian.PutUint16(fde, 4)
	copy(fde[2:], "10.11.19-MariaDB-log")
	fde[56] = 19
	fde = append(fde, make([]byte, 171)...) // post-header lengths
	fde = append(fde, 1)                    // CRC32
	var flags uint16
	if inUse {
		flags = flagBinlogInUse
	}
	b.event(ts, TypeFormatDescription, 11, flags, fde)
	gl := binary.LittleEndian.AppendUint32(nil, uint32(len(state)))
	for _, g := range state {
		gl = binary.LittleEndian.AppendUint32(gl, g.Domain)
		gl = binary.LittleEndian.AppendUint32(gl, g.Server)
		gl = binary.LittleEndian.AppendUint64(gl, g.Seq)
	}
	b.event(ts, TypeGtidList, 11, 0, gl)
	name := "mysql-bin.000002"
	b.event(ts, TypeBinlogCheckpoint, 11, 0, append(binary.LittleEndian.AppendUint32(nil, uint32(len(name))), name...))
	return b
}

func (b *builder) event(ts uint32, typ byte, server uint32, flags uint16, body []byte) int64 {
	off := int64(b.buf.Len())
	size := uint32(headerLen + len(body) + 4)
	h := make([]byte, headerLen, int(size))
	binary.LittleEndian.PutUint32(h[0:], ts)
	h[4] = typ
	binary.LittleEndian.PutUint32(h[5:], server)
	binary.LittleEndian.PutUint32(h[9:], size)
	binary.LittleEndian.PutUint32(h[13:], uint32(off)+size)
	binary.LittleEndian.PutUint16(h[17:], flags&^flagBinlogInUse)
	ev := append(h, body...)
	crc := crc32.ChecksumIEEE(ev) // computed with the in-use flag clear, as the server does
	binary.LittleEndian.PutUint16(ev[17:], flags)
	ev = binary.LittleEndian.AppendUint32(ev, crc)
	b.buf.Write(ev)
	return off
}

// tx appends one InnoDB transaction and returns its Gtid event's offset.
func (b *builder) tx(ts uint32, g GTID) int64 {
	body := binary.LittleEndian.AppendUint64(nil, g.Seq)
	body = binary.LittleEndian.AppendUint32(body, g.Domain)
	body = append(body, 0x0c, 0, 0, 0, 0, 0, 0)
	off := b.event(ts, TypeGtid, g.Server, 0x0008, body)
	b.event(ts-1, 23, g.Server, 0, []byte("rows")) // row events may be older
	b.event(ts, TypeXid, g.Server, 0, binary.LittleEndian.AppendUint64(nil, g.Seq+100))
	return off
}

func (b *builder) rotate(ts uint32, next string) {
	b.event(ts, TypeRotate, 11, 0, append(binary.LittleEndian.AppendUint64(nil, 4), next...))
}

const t0 = 1795670000

func tm(sec uint32) time.Time { return time.Unix(int64(sec), 0).UTC() }

func sampleFile() (data []byte, offs []int64) {
	b := newBuilder(t0, false, GTID{0, 11, 3}, GTID{7, 12, 5}, GTID{7, 11, 10})
	offs = append(offs, b.tx(t0+1, GTID{7, 11, 11}))
	offs = append(offs, b.tx(t0+1, GTID{7, 11, 12}))
	offs = append(offs, b.tx(t0+2, GTID{0, 11, 4})) // local, non-replicated
	offs = append(offs, b.tx(t0+4, GTID{7, 11, 13}))
	offs = append(offs, b.tx(t0+6, GTID{7, 11, 14}))
	b.rotate(t0+7, "mysql-bin.000003")
	return b.buf.Bytes(), offs
}

func TestIndexSynthetic(t *testing.T) {
	data, offs := sampleFile()
	x, err := Index(bytes.NewReader(data), IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if x.Size != int64(len(data)) || x.ValidSize != x.Size || x.Transactions != 5 || x.Events != 3+5*3+1 {
		t.Fatalf("size %d valid %d tx %d events %d", x.Size, x.ValidSize, x.Transactions, x.Events)
	}
	if x.End != EndRotate || x.RotateTo != "mysql-bin.000003" || !x.Closed.Equal(tm(t0+7)) || x.InUse {
		t.Fatalf("end %q %q %v inuse %v", x.End, x.RotateTo, x.Closed, x.InUse)
	}
	if !x.FirstCommit.Equal(tm(t0+1)) || !x.LastCommit.Equal(tm(t0+6)) || x.FirstTxOffset != offs[0] || x.NonMonotonic {
		t.Fatalf("commits %v..%v first tx %d", x.FirstCommit, x.LastCommit, x.FirstTxOffset)
	}
	d7, ok := x.Domain(7)
	want7 := DomainRange{Domain: 7, Before: GTID{7, 11, 10}, First: GTID{7, 11, 11}, Last: GTID{7, 11, 14}, Transactions: 4}
	if !ok || d7 != want7 {
		t.Fatalf("domain 7: %+v", d7)
	}
	d0, _ := x.Domain(0)
	if d0 != (DomainRange{Domain: 0, Before: GTID{0, 11, 3}, First: GTID{0, 11, 4}, Last: GTID{0, 11, 4}, Transactions: 1}) {
		t.Fatalf("domain 0: %+v", d0)
	}
	if Position(x.StartState) != "0-11-3,7-11-10" {
		t.Fatalf("start state %v", x.StartState)
	}
}

func TestIndexRealFile(t *testing.T) {
	data, err := os.ReadFile("testdata/galera-mysql-bin.000001")
	if err != nil {
		t.Fatal(err)
	}
	x, err := Index(bytes.NewReader(data), IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d7, _ := x.Domain(7)
	if len(x.StartState) != 0 || d7.First != (GTID{7, 11, 1}) || d7.Last != (GTID{7, 11, 2}) || x.FirstTxOffset != 328 ||
		x.End != EndRotate || x.RotateTo != "mysql-bin.000002" || x.Size != 767 {
		t.Fatalf("%+v", x)
	}
}

func TestIndexTruncatedAndInUse(t *testing.T) {
	b := newBuilder(t0, true, GTID{7, 11, 10})
	b.tx(t0+1, GTID{7, 11, 11})
	end := int64(b.buf.Len())
	b.tx(t0+3, GTID{7, 11, 12})
	data := b.buf.Bytes()[:b.buf.Len()-5] // crash: the last Xid is cut
	if _, err := Index(bytes.NewReader(data), IndexOptions{}); !errors.Is(err, ErrFormat) {
		t.Fatalf("cut file accepted: %v", err)
	}
	x, err := Index(bytes.NewReader(data), IndexOptions{AllowTruncated: true})
	if err != nil {
		t.Fatal(err)
	}
	if !x.InUse || x.End != EndNone || x.ValidSize <= end || x.ValidSize >= int64(len(data)) || x.Transactions != 2 {
		t.Fatalf("%+v", x)
	}
}

func TestFind(t *testing.T) {
	data, offs := sampleFile()
	for _, c := range []struct {
		name   string
		domain uint32
		seq    uint64
		off    int64
		found  bool
	}{
		{"first", 7, 11, offs[0], true},
		{"before the file", 7, 5, offs[0], true},
		{"after a local tx", 7, 13, offs[3], true},
		{"local domain", 0, 4, offs[2], true},
		{"last", 7, 14, offs[4], true},
		{"beyond the file", 7, 15, 0, false},
		{"unknown domain", 3, 1, 0, false},
	} {
		tx, found, err := FindGTID(bytes.NewReader(data), c.domain, c.seq)
		if err != nil || found != c.found || (found && tx.Offset != c.off) {
			t.Errorf("%s: %+v %v %v", c.name, tx, found, err)
		}
	}
	for _, c := range []struct {
		name  string
		from  int64
		at    time.Time
		off   int64
		found bool
	}{
		{"before everything", 0, tm(t0), offs[0], true},
		{"same second excludes", 0, tm(t0 + 1), offs[0], true},
		{"sub-second includes the second", 0, tm(t0 + 1).Add(500 * time.Millisecond), offs[2], true},
		{"between", 0, tm(t0 + 3), offs[3], true},
		{"from an offset", offs[4], tm(t0), offs[4], true},
		{"after all", 0, tm(t0 + 7), 0, false},
	} {
		tx, found, err := FindTime(bytes.NewReader(data), c.from, c.at)
		if err != nil || found != c.found || (found && tx.Offset != c.off) {
			t.Errorf("%s: %+v %v %v", c.name, tx, found, err)
		}
	}
}

func TestIndexJSON(t *testing.T) {
	data, _ := sampleFile()
	x, err := Index(bytes.NewReader(data), IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(j), `"first":"7-11-11"`) {
		t.Fatalf("GTIDs are not written as text: %s", j)
	}
	var back FileIndex
	if err := json.Unmarshal(j, &back); err != nil || !reflect.DeepEqual(&back, x) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, back, x)
	}
}

func TestParseGtidShort(t *testing.T) {
	if _, err := ParseGtid(&Event{Type: TypeGtid, Body: make([]byte, 12)}); !errors.Is(err, ErrFormat) {
		t.Fatal(err)
	}
	if _, err := ParseGtid(&Event{Type: TypeXid, Body: make([]byte, 30)}); !errors.Is(err, ErrFormat) {
		t.Fatal(err)
	}
	// A longer body (commit id, extensions) is sized by the event.
	body := binary.LittleEndian.AppendUint64(nil, 9)
	body = binary.LittleEndian.AppendUint32(body, 7)
	body = append(body, 0x0e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9)
	g, err := ParseGtid(&Event{Type: TypeGtid, ServerID: 11, Body: body})
	if err != nil || g.GTID != (GTID{7, 11, 9}) || g.Flags2 != 0x0e {
		t.Fatalf("%+v %v", g, err)
	}
}

func FuzzIndex(f *testing.F) {
	data, _ := sampleFile()
	f.Add(data)
	if d, err := os.ReadFile("testdata/galera-mysql-bin.000001"); err == nil {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		x, err := Index(bytes.NewReader(data), IndexOptions{AllowTruncated: true})
		if err == nil {
			if x.ValidSize > x.Size || x.Transactions < 0 {
				t.Fatalf("inconsistent index %+v", x)
			}
			n := 0
			for _, d := range x.Domains {
				n += d.Transactions
			}
			if n != x.Transactions {
				t.Fatalf("domain counts %d != %d", n, x.Transactions)
			}
		}
		_, _, _ = FindGTID(bytes.NewReader(data), 7, 1)
	})
}
