package pitr

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/gosst/gosst/binlog"
)

// TestWriteRelay: the first relay log is the file's Format_description, an
// artificial Rotate naming the source file and start, then the events from
// the start, all readable with valid checksums; later files are linked.
func TestWriteRelay(t *testing.T) {
	src := "testdata/mariadb-bin.000003" // real MariaDB 10.11 binlog, 10 transactions
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var txs []binlog.Tx
	if _, err := binlog.Scan(bytes.NewReader(data), func(tx binlog.Tx) bool { txs = append(txs, tx); return true }); err != nil {
		t.Fatal(err)
	}
	if len(txs) < 3 {
		t.Fatalf("want ≥ 3 transactions in %s, have %d", src, len(txs))
	}
	for _, tc := range []struct {
		name        string
		start, stop int64
	}{
		{"whole file", 4, -1},
		{"from the second transaction", txs[1].Offset, -1},
		{"second transaction only", txs[1].Offset, txs[2].Offset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := &Segment{File: "mysql-bin.000002"}
			st := step{seg: seg, path: src, start: tc.start, stop: tc.stop}
			rs, err := writeRelay(t.TempDir(), []step{st, {seg: &Segment{File: "mysql-bin.000003"}, path: src, start: 4, stop: -1}})
			if err != nil {
				t.Fatal(err)
			}
			relay, err := os.ReadFile(rs.files[0])
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(relay)) != rs.sizes[0] {
				t.Fatalf("size %d, recorded %d", len(relay), rs.sizes[0])
			}
			r, err := binlog.NewReader(bytes.NewReader(relay))
			if err != nil {
				t.Fatal(err)
			}
			var types []byte
			var rot *binlog.Event
			var rotName string
			for {
				e, err := r.Next()
				if err != nil {
					break
				}
				types = append(types, e.Type)
				if len(types) == 2 {
					c := *e
					rot, rotName = &c, string(e.Body[8:]) // the reader reuses its buffer
				}
			}
			if types[0] != binlog.TypeFormatDescription || rot == nil || rot.Type != binlog.TypeRotate || rot.Flags != 0x20 {
				t.Fatalf("first events %v, want Format_description, artificial Rotate", types[:2])
			}
			if rotName != "mysql-bin.000002" {
				t.Errorf("rotate names %q", rotName)
			}
			var got []binlog.Tx
			if _, err := binlog.Scan(bytes.NewReader(relay), func(tx binlog.Tx) bool { got = append(got, tx); return true }); err != nil {
				t.Fatal(err)
			}
			want := 0
			for _, tx := range txs {
				if tx.Offset >= tc.start && (tc.stop < 0 || tx.Offset < tc.stop) {
					want++
				}
			}
			if len(got) != want || got[0].GTID != func() binlog.GTID {
				for _, tx := range txs {
					if tx.Offset >= tc.start {
						return tx.GTID
					}
				}
				return binlog.GTID{}
			}() {
				t.Errorf("relay log holds %d transactions from %v, want %d", len(got), got, want)
			}
			if rs.untilFile != filepath.Base(rs.files[1]) || rs.untilPos != int64(len(data)) {
				t.Errorf("until %s:%d, want %s:%d", rs.untilFile, rs.untilPos, filepath.Base(rs.files[1]), len(data))
			}
		})
	}
}

func TestRunsOf(t *testing.T) {
	a1 := &Segment{Node: "a", File: "b.000001", Binlog: &binlog.FileIndex{}}
	a1.Binlog.RotateTo = "b.000002"
	a2 := &Segment{Node: "a", File: "b.000002"}
	c3 := &Segment{Node: "c", File: "b.000003"}
	runs := runsOf([]step{{seg: a1, start: 400, stop: -1}, {seg: a2, start: 4, stop: -1}, {seg: c3, start: 900, stop: 1200}})
	if len(runs) != 2 || len(runs[0]) != 2 || len(runs[1]) != 1 {
		t.Fatalf("runs %v", runs)
	}
}

// TestStopBeforeCut: a file that ends inside a transaction, cut in the
// middle of an event or at an event boundary, is replayed only up to the
// start of that transaction (the replication applier would wait forever
// for its end); a file that ends after a complete transaction is replayed
// to its end.
func TestStopBeforeCut(t *testing.T) {
	data, err := os.ReadFile("testdata/mariadb-bin.000003")
	if err != nil {
		t.Fatal(err)
	}
	var txs []*binlog.Transaction
	if err := binlog.Walk(bytes.NewReader(data), false, func(tx *binlog.Transaction) bool { txs = append(txs, tx); return true }); err != nil {
		t.Fatal(err)
	}
	last := txs[len(txs)-2] // a transaction with a successor
	// The Gtid event's end: an event boundary inside the transaction.
	gtidEnd := int64(-1)
	br, err := binlog.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for {
		e, err := br.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Offset == last.Offset {
			gtidEnd = e.Offset + int64(e.Size)
			break
		}
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cut  int64
		want int64
	}{
		{"cut at an event boundary inside a transaction", gtidEnd, last.Offset},
		{"cut inside an event", last.End - 3, last.Offset},
		{"ends after a complete transaction", last.End, last.End},
	} {
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, data[:tc.cut], 0o600); err != nil {
			t.Fatal(err)
		}
		// Scan refuses a file cut inside an event; end is still where
		// its last complete event ends.
		end, _ := binlog.Scan(bytes.NewReader(data[:tc.cut]), func(binlog.Tx) bool { return true })
		res := &PITRResult{Transactions: len(txs)}
		got, err := stopBeforeCut(&step{seg: &Segment{File: "f"}, path: path}, end, res)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: stop at %d, want %d (transaction at %d..%d)", tc.name, got, tc.want, last.Offset, last.End)
		}
	}
}
