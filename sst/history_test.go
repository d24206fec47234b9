package sst

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHistoryAppendTrimAndThroughput(t *testing.T) {
	dir := t.TempDir()
	if recs, err := ReadHistory(dir); err != nil || recs != nil {
		t.Fatalf("no file: %v, %v", recs, err)
	}
	if _, ok := Throughput(nil); ok {
		t.Fatal("throughput without history")
	}
	for i := 1; i <= historyTrimAt+1; i++ {
		if err := AppendHistory(dir, HistoryRecord{Time: time.Unix(int64(i), 0), Bytes: int64(i) * 1000, Seconds: 1}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := ReadHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != historyKeep || recs[len(recs)-1].Bytes != int64(historyTrimAt+1)*1000 {
		t.Fatalf("after trim: %d records, last %+v", len(recs), recs[len(recs)-1])
	}
	if _, err := os.Stat(filepath.Join(dir, HistoryFile+".tmp")); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
	// median of the last five: 47..51 kB/s → 49 kB/s
	if r, ok := Throughput(recs); !ok || r != 49000 {
		t.Fatalf("throughput %v %v", r, ok)
	}
	if !Keep(HistoryFile) {
		t.Fatal("a full SST would delete the history")
	}
}

func TestParseHistorySkipsBadLines(t *testing.T) {
	good, _ := json.Marshal(HistoryRecord{Bytes: 10, Seconds: 2})
	in := strings.Join([]string{"garbage", string(good), `{"bytes":-1,"seconds":1}`, `{"bytes":5,"seconds":0}`, `{"bytes":5,"seconds":"x"}`, ""}, "\n")
	recs := ParseHistory([]byte(in))
	if len(recs) != 1 || recs[0].Bytes != 10 {
		t.Fatalf("%+v", recs)
	}
}

func FuzzParseHistory(f *testing.F) {
	f.Add([]byte(`{"time":"2026-12-04T22:00:00Z","bytes":1000,"seconds":2.5,"donor_position":"u:1"}` + "\n"))
	f.Add([]byte("garbage\n{}\n"))
	f.Add([]byte(`{"bytes":1e300,"seconds":1e-300}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs := ParseHistory(data)
		for _, r := range recs {
			if r.Bytes <= 0 || !(r.Seconds > 0) {
				t.Fatalf("implausible record kept: %+v", r)
			}
		}
		if r, ok := Throughput(recs); ok && !(r > 0) {
			t.Fatalf("throughput %v", r)
		}
	})
}

// The stage fields are additive: a record written before them still
// parses, and a new record keeps them through the file.
func TestHistoryStagesCompatible(t *testing.T) {
	old := `{"time":"2026-01-02T03:04:05Z","bytes":1000,"seconds":2,"donor_position":"u:1"}`
	recs := ParseHistory([]byte(old + "\n"))
	if len(recs) != 1 || recs[0].Bytes != 1000 || recs[0].Stages != nil || recs[0].Limiter != "" {
		t.Fatalf("old record: %+v", recs)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, HistoryFile), []byte(old+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	rec := HistoryRecord{Time: time.Unix(5, 0).UTC(), Bytes: 2000, Seconds: 3,
		Stages: map[string]float64{StageFromDonor: 0.9, StageDecompression: 0, StageJoinerWrite: 0.1}, Limiter: StagePrepare, PrepareSeconds: 4.5}
	if err := AppendHistory(dir, rec); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Bytes != 1000 {
		t.Fatalf("records: %+v", recs)
	}
	got, _ := json.Marshal(recs[1])
	want, _ := json.Marshal(rec)
	if string(got) != string(want) {
		t.Fatalf("round trip:\n got %s\nwant %s", got, want)
	}
}
