package sst

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gosst/gosst/internal/fsutil"
	"github.com/gosst/gosst/ist"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// HistoryFile, in the joiner's datadir, keeps one JSON line per full SST
// the node received, for `galera-backup plan`'s ETA. Its name matches
// "*.log", so a full SST leaves it in place (see Keep).
const HistoryFile = "gosst-sst-history.log"

// historyKeep is how many records are kept once the file is trimmed, and
// historyTrimAt the count that triggers a trim.
const (
	historyKeep   = 20
	historyTrimAt = 50
	historyMax    = 1 << 20 // bytes of the file read at most
)

// HistoryRecord summarises one received full SST.
type HistoryRecord struct {
	Time    time.Time `json:"time"`
	Bytes   int64     `json:"bytes"`   // backup bytes received
	Seconds float64   `json:"seconds"` // from the donor's start to the data installed
	Donor   string    `json:"donor_position,omitempty"`
	// Added later (older records lack them; readers ignore what they do
	// not know): the receive's share of time per stage (bottleneck.go),
	// the stage that limited the SST, and prepare's seconds.
	Stages         map[string]float64 `json:"stages,omitempty"`
	Limiter        string             `json:"limiter,omitempty"`
	PrepareSeconds float64            `json:"prepare_seconds,omitempty"`
}

// ParseHistory reads history lines, skipping lines that are not a
// plausible record (the file is advisory; a bad line must not cost the
// others).
func ParseHistory(data []byte) []HistoryRecord {
	var out []HistoryRecord
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		var r HistoryRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Bytes <= 0 || !(r.Seconds > 0) || r.Seconds > 1e9 {
			continue
		}
		out = append(out, r)
	}
	return out
}

// ReadHistory reads the history file in datadir; a missing file is no
// history.
func ReadHistory(datadir string) ([]HistoryRecord, error) {
	f, err := os.Open(filepath.Join(datadir, HistoryFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, historyMax))
	if err != nil {
		return nil, err
	}
	return ParseHistory(data), nil
}

// Throughput is the median bytes per second of the last five records.
func Throughput(recs []HistoryRecord) (float64, bool) {
	if len(recs) == 0 {
		return 0, false
	}
	if len(recs) > 5 {
		recs = recs[len(recs)-5:]
	}
	rates := make([]float64, len(recs))
	for i, r := range recs {
		rates[i] = float64(r.Bytes) / r.Seconds
	}
	slices.Sort(rates)
	return rates[len(rates)/2], true
}

// AppendHistory adds r to the history file in datadir (one write, fsync).
// Past historyTrimAt records the file is rewritten with the last
// historyKeep, through a temporary file and a rename.
func AppendHistory(datadir string, r HistoryRecord) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	path := filepath.Join(datadir, HistoryFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("SST history: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("SST history: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("SST history: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("SST history: %w", err)
	}
	recs, err := ReadHistory(datadir)
	if err != nil || len(recs) <= historyTrimAt {
		return err
	}
	var buf bytes.Buffer
	for _, r := range recs[len(recs)-historyKeep:] {
		b, _ := json.Marshal(r)
		buf.Write(append(b, '\n'))
	}
	tmp := path + ".tmp"
	if err := fsutil.WriteFileSync(tmp, buf.Bytes(), 0o640); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("SST history: trim: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("SST history: trim: %w", err)
	}
	return nil
}

// recordSST appends this run's record; a failure is only logged, the SST
// itself succeeded.
func (j *Joiner) recordSST(start time.Time, donor ist.Position) {
	r := HistoryRecord{Time: time.Now().UTC(), Bytes: j.receivedBytes, Seconds: time.Since(start).Seconds(), Donor: donor.UUIDSeqno()}
	if j.recv != nil {
		r.Stages = j.recv.Map()
		r.Limiter = sstLimiter(*j.recv, j.prepareTime)
		r.PrepareSeconds = float64(j.prepareTime.Milliseconds()) / 1000
	}
	if r.Bytes <= 0 {
		return
	}
	if err := AppendHistory(j.datadir, r); err != nil {
		j.log.Warnf("%v (only plan's ETA needs it)", err)
	}
}
