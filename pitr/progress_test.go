package pitr

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/binlog"
)

// exactBefore counts the offsets before pos: what a txIndex approximates.
func exactBefore(offs []int64, pos int64) int64 {
	n := int64(0)
	for _, o := range offs {
		if o < pos {
			n++
		}
	}
	return n
}

// TestTxIndex: the index gives the transactions started before a
// position, never more than the exact count, exact at every mark and
// after the last transaction, at most one granule's transactions behind
// in between.
func TestTxIndex(t *testing.T) {
	for _, tc := range []struct {
		name        string
		start, gran int64
		offs        []int64
		cut         bool // the last transaction is cut off (stopBeforeCut)
	}{
		{"no transactions", 4, 100, nil, false},
		{"one transaction at the start", 4, 100, []int64{4}, false},
		{"dense, several per granule", 4, 100, []int64{4, 30, 99, 103, 104, 250, 251, 399, 400, 401}, false},
		{"sparse, granules without any", 1000, 10, []int64{1000, 1005, 1100, 1500, 1501, 9000}, false},
		{"exact granule 1", 4, 1, []int64{4, 10, 11, 50}, false},
		{"last transaction cut off", 4, 100, []int64{4, 150, 260}, true},
		{"default granule", 256, 0, []int64{256, 1 << 20, 1<<20 + 1, 3 << 20}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := &txIndex{start: tc.start, gran: tc.gran}
			for _, o := range tc.offs {
				x.add(o)
			}
			offs := tc.offs
			if tc.cut {
				x.n--
				offs = offs[:len(offs)-1]
			}
			if x.total() != int64(len(offs)) {
				t.Fatalf("total %d, want %d", x.total(), len(offs))
			}
			g := x.granule()
			if bound := (slices.Max(append([]int64{tc.start}, tc.offs...))-tc.start)/g + 2; int64(len(x.marks)) > bound {
				t.Errorf("%d marks, want at most %d (one per granule up to the last transaction)", len(x.marks), bound)
			}
			end := tc.start + 12*g
			if len(tc.offs) > 0 {
				end = max(end, tc.offs[len(tc.offs)-1]+2*g)
			}
			for pos := int64(0); pos <= end; pos++ {
				got, want := x.at(pos), exactBefore(offs, pos)
				if got > want {
					t.Fatalf("at(%d) = %d, more than the exact %d", pos, got, want)
				}
				if lo := exactBefore(offs, pos-(pos-tc.start)%g); pos >= tc.start && got < lo {
					t.Fatalf("at(%d) = %d, want at least %d (the count at the mark before it)", pos, got, lo)
				}
				if (pos-tc.start)%g == 0 && got != want {
					t.Fatalf("at(%d) on a mark = %d, want %d", pos, got, want)
				}
				if len(offs) > 0 && pos > offs[len(offs)-1] && !tc.cut && got != want {
					t.Fatalf("at(%d) after the last transaction = %d, want %d", pos, got, want)
				}
			}
		})
	}
	var nilIdx *txIndex
	if nilIdx.at(100) != 0 || nilIdx.total() != 0 {
		t.Error("a nil index counts transactions")
	}
}

// TestRelayProgress: a relay log position (as SHOW ALL SLAVES STATUS
// reports it) maps to the transactions completed of the archived files, in
// the cut first relay log and in the linked ones.
func TestRelayProgress(t *testing.T) {
	src := "testdata/mariadb-bin.000003"
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var txs []binlog.Tx
	if _, err := binlog.Scan(bytes.NewReader(data), func(tx binlog.Tx) bool { txs = append(txs, tx); return true }); err != nil {
		t.Fatal(err)
	}
	index := func(start, stop int64) *txIndex {
		x := &txIndex{start: start, gran: 1}
		for _, tx := range txs {
			if tx.Offset >= start && (stop < 0 || tx.Offset < stop) {
				x.add(tx.Offset)
			}
		}
		return x
	}
	first := step{seg: &Segment{File: "mysql-bin.000002"}, path: src, start: txs[2].Offset, stop: -1}
	first.tx = index(first.start, -1)
	second := step{seg: &Segment{File: "mysql-bin.000003"}, path: src, start: 4, stop: txs[len(txs)-2].Offset}
	second.tx = index(4, second.stop)
	rs, err := writeRelay(t.TempDir(), []step{first, second})
	if err != nil {
		t.Fatal(err)
	}
	// The Gtid events as the SQL thread sees them: in relay log
	// coordinates. Reaching a transaction's Gtid event means all before it
	// are applied.
	var want []int64 // cumulative count at each Gtid event of the relay logs
	type at struct {
		file string
		pos  int64
	}
	var points []at
	done := int64(0)
	for i, f := range rs.files {
		relay, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		relay = relay[:rs.sizes[i]]
		if _, err := binlog.Scan(bytes.NewReader(relay), func(tx binlog.Tx) bool {
			points, want = append(points, at{filepath.Base(f), tx.Offset}), append(want, done)
			done++
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	points, want = append(points, at{rs.untilFile, rs.untilPos}), append(want, done)
	if total := first.tx.total() + second.tx.total(); done != total {
		t.Fatalf("relay logs hold %d transactions, the indexes %d", done, total)
	}
	span, prevBytes := first.span()+second.span(), int64(0)
	for i, p := range points {
		bytesDone, tx := rs.progress(p.file, p.pos)
		if tx != want[i] {
			t.Errorf("at %s:%d: %d transactions, want %d", p.file, p.pos, tx, want[i])
		}
		if bytesDone < prevBytes || bytesDone > span {
			t.Errorf("at %s:%d: %d bytes of %d (before: %d)", p.file, p.pos, bytesDone, span, prevBytes)
		}
		prevBytes = bytesDone
	}
	if b, _ := rs.progress(rs.untilFile, rs.untilPos); b != span {
		t.Errorf("at the until position: %d bytes, want %d (the archived bytes replayed)", b, span)
	}
}

// TestAtScanner: the output passes through unchanged and every "# at N"
// line is seen, however the output is split into writes.
func TestAtScanner(t *testing.T) {
	out := "/*!40019 SET @@session.max_insert_delayed_threads=0*/;\nDELIMITER /*!*/;\n# at 4\n#261205  3:00:00 server id 1  end_log_pos 256 CRC32 0x1 Start\n" +
		"BINLOG '\nAAAA\n'/*!*/;\n# at 405\r\n# at 447\n#  at 5\n# at x\n# at 99999999999999999999999999\nSELECT '\n# at 7\n';\n# at 500"
	for _, chunk := range []int{1, 2, 3, 7, 64, len(out)} {
		var got []int64
		var buf bytes.Buffer
		s := newAtScanner(&buf, func(p int64) { got = append(got, p) })
		for i := 0; i < len(out); i += chunk {
			if _, err := s.Write([]byte(out[i:min(i+chunk, len(out))])); err != nil {
				t.Fatal(err)
			}
		}
		if buf.String() != out {
			t.Fatalf("chunk %d: output changed", chunk)
		}
		// A "# at" inside a statement's text counts too: progress only.
		if want := []int64{4, 405, 447, 7}; !slices.Equal(got, want) {
			t.Errorf("chunk %d: positions %v, want %v (the last line has no newline yet)", chunk, got, want)
		}
	}
}

// FuzzAtScanner: the scanner never changes the data and reports exactly
// the "# at N" lines of a line-by-line reading, whatever the writes.
func FuzzAtScanner(f *testing.F) {
	f.Add([]byte("# at 4\n# at 256\nBINLOG '\nxyz\n'\n# at 1000\n"), uint8(3))
	f.Add([]byte("# at 4\r\n#at 5\n# at -1\n# at 18446744073709551616\n"), uint8(1))
	f.Add([]byte(strings.Repeat("x", 40)+"\n# at 12\n"), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		c := max(int(chunk), 1)
		var got []int64
		var buf bytes.Buffer
		s := newAtScanner(&buf, func(p int64) { got = append(got, p) })
		for i := 0; i < len(data); i += c {
			if _, err := s.Write(data[i:min(i+c, len(data))]); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(buf.Bytes(), data) {
			t.Fatal("output changed")
		}
		var want []int64
		lines := bytes.Split(data, []byte("\n"))
		for _, l := range lines[:len(lines)-1] { // the last has no newline
			if len(l) > 32 {
				continue
			}
			num, ok := strings.CutPrefix(strings.TrimSuffix(string(l), "\r"), "# at ")
			if p, err := strconv.ParseInt(num, 10, 64); ok && err == nil && p >= 0 {
				want = append(want, p)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("positions %v, want %v", got, want)
		}
	})
}

// TestClientTracker: mariadb-binlog's "# at" offsets over a run of files
// (the offset drops when it moves to the next file) become bytes and
// transactions of the whole replay.
func TestClientTracker(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, size int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	idx := func(start int64, offs ...int64) *txIndex {
		x := &txIndex{start: start, gran: 1}
		for _, o := range offs {
			x.add(o)
		}
		return x
	}
	run := []step{
		{seg: &Segment{File: "b.1"}, path: mk("b.1", 1000), start: 400, stop: -1, tx: idx(400, 400, 600, 800)},
		{seg: &Segment{File: "b.2"}, path: mk("b.2", 2000), start: 4, stop: 1500, tx: idx(4, 300, 900)},
	}
	type rep struct{ bytes, tx, events int64 }
	var got []rep
	pr := &replayProgress{total: 600 + 1496, txTotal: 5, fn: func(s ReplaySnapshot) {
		got = append(got, rep{s.Bytes, s.Transactions, s.Events})
	}}
	pr.t0 = pr.t0.Add(1) // any elapsed time
	c := newClientTracker(run, pr)
	for _, tc := range []struct {
		pos  int64
		want rep
	}{
		{4, rep{0, 0, 1}},     // Format_description of b.1
		{400, rep{0, 0, 2}},   // first transaction
		{601, rep{201, 2, 3}}, // inside the second one: the first and second started
		{999, rep{599, 3, 4}}, // the Rotate
		{4, rep{600, 3, 5}},   // b.2: its Format_description
		{900, rep{600 + 896, 4, 6}},
		{1500, rep{600 + 1496, 5, 7}},
	} {
		c.lastReport = c.lastReport.AddDate(-1, 0, 0) // report every offset
		c.at(tc.pos)
		if g := got[len(got)-1]; g != tc.want {
			t.Errorf("at %d: %+v, want %+v", tc.pos, g, tc.want)
		}
	}
	c.finish()
	if pr.done != pr.total || pr.txDone != 5 || pr.events != 7 {
		t.Errorf("after the run: %d of %d bytes, %d transactions, %d events; want all, 5, 7", pr.done, pr.total, pr.txDone, pr.events)
	}
}

// TestReplayProgressLog: without a Progress callback the replay writes a
// log line (the first at once, then at most every 10 s) with bytes,
// transactions, their rates and events; transactions never exceed the
// planned total.
func TestReplayProgressLog(t *testing.T) {
	var buf bytes.Buffer
	pr := &replayProgress{log: slog.New(slog.NewTextHandler(&buf, nil)), total: 1000, txTotal: 10}
	pr.t0 = time.Now().Add(-time.Second) // rates are averages since t0
	pr.report(500, 12, 40, "mysql-bin.000002:4711")
	line := buf.String()
	for _, want := range []string{"msg=\"replay progress\"", "bytes=500", "of=1000", "transactions=10 ", "transactions_total=10", "events=40", "at=mysql-bin.000002:4711"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}
	if !regexp.MustCompile(`bytes_per_s=\d+ .*tx_per_s=\d+ `).MatchString(line) {
		t.Errorf("log line %q: want the byte and transaction rates", line)
	}
	pr.report(600, 5, 41, "x") // within 10 s: no line
	if buf.String() != line {
		t.Errorf("a second line within 10 s: %q", buf.String())
	}
	s := pr.snapshot(1000, 10, -1)
	if s.Transactions != 10 || s.TransactionsTotal != 10 || s.Events != -1 || s.ETA != 0 {
		t.Errorf("snapshot at the end: %+v", s)
	}
}
