package pitr

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gosst/gosst/binlog"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/stream/meter"
)

// Replay modes.
const (
	// ReplayApplier serves the archived binlogs to the temporary mariadbd as
	// relay logs, applied by its replication SQL thread with parallel
	// replication (the default).
	ReplayApplier = "applier"
	// ReplayClient pipes mariadb-binlog into the mariadb client (the
	// original path, kept for comparison and as a fallback).
	ReplayClient = "client"
)

// DefaultApplierThreads is slave_parallel_threads of the applier.
const DefaultApplierThreads = 4

// DefaultApplierMode is slave_parallel_mode of the applier.
const DefaultApplierMode = "optimistic"

// ApplierModes are the slave_parallel_mode values --applier-mode takes
// (MariaDB's, minus none: one thread is --applier-threads 1).
var ApplierModes = []string{"optimistic", "aggressive", "conservative", "minimal"}

// CheckApplierMode says whether mode is one of ApplierModes; the error
// reads `"mode": want one of …`, for the caller to prefix with its name.
func CheckApplierMode(mode string) error {
	if !slices.Contains(ApplierModes, mode) {
		return fmt.Errorf("%q: want one of %s", mode, strings.Join(ApplierModes, ", "))
	}
	return nil
}

// applierServerID is the temporary server's server_id: it must not be
// the server_id logged in the binlogs (a Galera cluster logs its
// transactions with the bootstrap node's id), else the SQL thread would
// skip them as its own. --replicate-same-server-id makes that certain.
const applierServerID = 4294967000

// runsOf groups steps into runs of consecutive files of one node, each
// run continuing where the previous file rotated to.
func runsOf(steps []step) [][]step {
	var runs [][]step
	for i := 0; i < len(steps); {
		j := i + 1
		for j < len(steps) && steps[j-1].stop < 0 && steps[j].start == 4 && steps[j].seg.Node == steps[j-1].seg.Node &&
			steps[j-1].seg.Binlog.RotateTo == steps[j].seg.File {
			j++
		}
		runs = append(runs, steps[i:j])
		i = j
	}
	return runs
}

// relaySet is one run written as relay logs.
type relaySet struct {
	base, index string
	files       []string // relay log paths, in order
	sizes       []int64  // bytes the SQL thread reads from each
	untilFile   string   // base name of the last relay log
	untilPos    int64    // where the SQL thread stops in it
	total       int64
	run         []step  // the steps, one per relay log
	delta       []int64 // a relay log offset + delta is the offset in its step's file
	spans       []int64 // bytes of each step's file replayed (step.span)
}

// writeRelay turns one run into relay logs in dir. The first relay log
// is a copy of the first file from its start position, preceded by the
// file's Format_description and a Rotate event naming the source file
// and position, as the server's I/O thread writes it (the parallel
// applier needs the source file name it carries); the others are hard
// links to the staged files (copies if links fail).
func writeRelay(dir string, run []step) (*relaySet, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	rs := &relaySet{base: filepath.Join(dir, "relay"), index: filepath.Join(dir, "relay.index"), run: run}
	var idx []byte
	for i, st := range run {
		name := fmt.Sprintf("%s.%06d", rs.base, i+1)
		var size, delta int64
		var err error
		if i == 0 {
			size, delta, err = writeFirstRelay(name, st)
		} else {
			size, err = linkRelay(name, st.path)
			if err == nil && st.stop >= 0 {
				size = st.stop
			}
		}
		if err != nil {
			return nil, fmt.Errorf("relay log for %s: %w", st.seg.File, err)
		}
		rs.files = append(rs.files, name)
		rs.sizes = append(rs.sizes, size)
		rs.delta = append(rs.delta, delta)
		rs.spans = append(rs.spans, st.span())
		rs.total += size
		idx = append(idx, name+"\n"...)
	}
	rs.untilFile, rs.untilPos = filepath.Base(rs.files[len(rs.files)-1]), rs.sizes[len(rs.sizes)-1]
	if err := os.WriteFile(rs.index, idx, 0o600); err != nil {
		return nil, err
	}
	return rs, nil
}

func linkRelay(name, src string) (int64, error) {
	if err := os.Link(src, name); err != nil {
		if err := copyFile(name, src); err != nil {
			return 0, err
		}
	}
	fi, err := os.Stat(name)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeFirstRelay writes magic + Format_description + Rotate(file, start)
// + the events of st from its start (after the Format_description) up to
// its stop or end, and returns the relay log's size and what to add to an
// offset in it to get the offset in st's file.
func writeFirstRelay(name string, st step) (size, delta int64, err error) {
	in, err := os.Open(st.path)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	r, err := binlog.NewReader(in)
	if err != nil {
		return 0, 0, err
	}
	fde, err := r.Next()
	if err != nil {
		return 0, 0, err
	}
	if fde.Type != binlog.TypeFormatDescription {
		return 0, 0, fmt.Errorf("%s: first event is type %d, not a Format_description", st.seg.File, fde.Type)
	}
	raw := make([]byte, fde.Size)
	if _, err := in.ReadAt(raw, fde.Offset); err != nil {
		return 0, 0, err
	}
	// The Format_description's last body byte is the checksum algorithm.
	checksum := len(fde.Body) > 0 && fde.Body[len(fde.Body)-1] == 1
	// A file copied while active has the in-use flag set; the relay log is
	// closed.
	if binary.LittleEndian.Uint16(raw[17:])&1 != 0 {
		binary.LittleEndian.PutUint16(raw[17:], binary.LittleEndian.Uint16(raw[17:])&^1)
	}
	from := fde.Offset + int64(fde.Size)
	if st.start > from {
		from = st.start
	}
	end := st.stop
	if end < 0 {
		fi, err := in.Stat()
		if err != nil {
			return 0, 0, err
		}
		end = fi.Size()
	}
	out, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, 0, err
	}
	head := append(append([]byte(nil), binlog.Magic...), raw...)
	head = append(head, rotateEvent(fde.ServerID, st.seg.File, uint64(st.start), checksum)...)
	n := int64(len(head))
	delta = from - n
	_, err = out.Write(head)
	if err == nil && end > from {
		var c int64
		c, err = io.Copy(out, io.NewSectionReader(in, from, end-from))
		n += c
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, delta, err
}

// rotateEvent builds an artificial Rotate event (flag 0x20, log_pos 0)
// naming the source binlog file and position.
func rotateEvent(serverID uint32, file string, pos uint64, checksum bool) []byte {
	body := binary.LittleEndian.AppendUint64(nil, pos)
	body = append(body, file...)
	size := 19 + len(body)
	if checksum {
		size += 4
	}
	ev := binary.LittleEndian.AppendUint32(nil, 0)
	ev = append(ev, binlog.TypeRotate)
	ev = binary.LittleEndian.AppendUint32(ev, serverID)
	ev = binary.LittleEndian.AppendUint32(ev, uint32(size))
	ev = binary.LittleEndian.AppendUint32(ev, 0)
	ev = binary.LittleEndian.AppendUint16(ev, 0x20)
	ev = append(ev, body...)
	if checksum {
		ev = binary.LittleEndian.AppendUint32(ev, crc32.ChecksumIEEE(ev))
	}
	return ev
}

// replayApplier applies steps with the server's replication SQL thread:
// one temporary mariadbd per run of files, the run served as its relay
// logs, START SLAVE SQL_THREAD UNTIL the end of the run (its last relay
// log is cut at the target or ends where the target is).
func replayApplier(ctx context.Context, datadir, scratch string, steps []step, o PITROptions, res *PITRResult) error {
	res.Replay, res.ApplierThreads, res.ApplierMode = ReplayApplier, o.ApplierThreads, o.ApplierMode
	pr := newReplayProgress(steps, o, res)
	for i, run := range runsOf(steps) {
		rs, err := writeRelay(filepath.Join(scratch, fmt.Sprintf("relay-%d", i+1)), run)
		if err != nil {
			return err
		}
		o.Logger.Info("replaying through the replication applier", "files", len(run), "first", run[0].seg.File, "node", run[0].seg.Node,
			"start", run[0].start, "stop", run[len(run)-1].stop, "bytes", rs.total, "parallel_threads", o.ApplierThreads, "parallel_mode", o.ApplierMode)
		took, err := applyRun(ctx, datadir, scratch, rs, o, pr)
		if err != nil {
			return err
		}
		res.ReplayTime += took
		res.ReplayBytes += rs.total
		pr.finishRun(run, rs.spans)
		res.Events = pr.events
		for _, f := range rs.files {
			_ = os.Remove(f) // links or the cut copy: the staged files stay
		}
	}
	return nil
}

// applyRun applies one relay set on a temporary server and returns the
// time from START SLAVE to the until position (server start/stop excluded).
func applyRun(ctx context.Context, datadir, scratch string, rs *relaySet, o PITROptions, pr *replayProgress) (time.Duration, error) {
	srv, err := mariadb.StartScratch(ctx, mariadb.ScratchOptions{
		DataDir: datadir, RunDir: scratch, Mariadbd: o.Mariadbd, BufferPool: "128M",
		ExtraArgs: []string{"--innodb-flush-log-at-trx-commit=2", "--max-allowed-packet=1G",
			"--server-id=" + strconv.Itoa(applierServerID), "--replicate-same-server-id=1",
			"--relay-log=" + rs.base, "--relay-log-index=" + rs.index, "--relay-log-purge=0",
			"--slave-parallel-threads=" + strconv.Itoa(o.ApplierThreads), "--slave-parallel-mode=" + o.ApplierMode,
			"--slave-max-allowed-packet=1G"},
	})
	if err != nil {
		return 0, err
	}
	defer srv.Stop()
	db, err := srv.DB()
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// The server runs with --skip-grant-tables, which refuses account
	// statements (CREATE USER, GRANT) the binlogs may hold: FLUSH
	// PRIVILEGES loads the grant tables.
	stmts := []string{"FLUSH PRIVILEGES",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='gosst-replay', RELAY_LOG_FILE='%s', RELAY_LOG_POS=4", filepath.Base(rs.files[0])),
		fmt.Sprintf("START SLAVE SQL_THREAD UNTIL RELAY_LOG_FILE='%s', RELAY_LOG_POS=%d", rs.untilFile, rs.untilPos)}
	var start time.Time
	for _, q := range stmts {
		start = time.Now()
		if _, err := db.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("temporary server: %s: %w", q, err)
		}
	}
	if err := waitApplied(ctx, db, rs, pr); err != nil {
		return 0, err
	}
	took := time.Since(start)
	// Leave no replica state in the restored datadir.
	for _, q := range []string{"STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL gtid_slave_pos=''"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("temporary server: %s: %w", q, err)
		}
	}
	db.Close()
	if err := srv.Stop(); err != nil {
		return 0, err
	}
	if fi, err := os.Stat(filepath.Join(datadir, "multi-master.info")); err == nil && fi.Size() == 0 {
		_ = os.Remove(filepath.Join(datadir, "multi-master.info"))
	}
	return took, nil
}

// replayProgress reports the replay's progress over all runs: to fn
// (the command's progress line) at every poll, else as a log line every
// 10 s.
type replayProgress struct {
	fn          func(ReplaySnapshot)
	log         *slog.Logger
	t0, lastLog time.Time
	total, done int64 // bytes of all runs; of the runs finished
	// Transactions of all runs (planned); of the runs finished. Events of
	// the runs finished.
	txTotal, txDone, events int64
}

func newReplayProgress(steps []step, o PITROptions, res *PITRResult) *replayProgress {
	pr := &replayProgress{fn: o.Progress, log: o.Logger, t0: time.Now(), txTotal: int64(res.Transactions)}
	for _, st := range steps {
		pr.total += st.span()
	}
	return pr
}

// snapshot builds the progress from the totals so far (bytes,
// transactions and events over all runs; events -1 if unknown).
func (p *replayProgress) snapshot(bytes, tx, events int64) ReplaySnapshot {
	el := time.Since(p.t0)
	s := ReplaySnapshot{Snapshot: meter.Snapshot{Bytes: bytes, Total: p.total, Elapsed: el, ETA: -1},
		Transactions: min(tx, p.txTotal), TransactionsTotal: p.txTotal, Events: events}
	if el > 0 {
		s.Rate = float64(s.Bytes) / el.Seconds()
		s.TxRate = float64(s.Transactions) / el.Seconds()
	}
	if s.Rate > 0 && s.Total >= s.Bytes {
		s.ETA = time.Duration(float64(s.Total-s.Bytes) / s.Rate * float64(time.Second))
	}
	return s
}

// finishRun accounts a run (its steps and the bytes each replayed) as
// done and reports it, so the line ends at the run's end.
func (p *replayProgress) finishRun(run []step, spans []int64) {
	for i, st := range run {
		p.done += spans[i]
		p.txDone += st.tx.total()
	}
	p.report(p.done, p.txDone, p.events, run[len(run)-1].seg.File+": end of run")
}

// addEvents adds two event counts, either of which may be -1 (unknown).
func addEvents(a, b int64) int64 {
	if a < 0 || b < 0 {
		return -1
	}
	return a + b
}

func (p *replayProgress) report(bytes, tx, events int64, at string) {
	s := p.snapshot(bytes, tx, events)
	if p.fn != nil {
		p.fn(s)
		return
	}
	if time.Since(p.lastLog) < 10*time.Second {
		return
	}
	p.lastLog = time.Now()
	p.log.Info("replay progress", "bytes", s.Bytes, "of", s.Total, "bytes_per_s", int64(s.Rate),
		"transactions", s.Transactions, "transactions_total", s.TransactionsTotal, "tx_per_s", int64(s.TxRate),
		"events", s.Events, "at", at, "eta", s.ETA.Round(time.Second))
}

// waitApplied polls SHOW SLAVE STATUS until the SQL thread has applied
// the run up to its until position, reporting progress.
func waitApplied(ctx context.Context, db *sql.DB, rs *relaySet, pr *replayProgress) error {
	for {
		st, err := slaveStatus(ctx, db)
		if err != nil {
			return fmt.Errorf("temporary server: SHOW ALL SLAVES STATUS: %w", err)
		}
		file := st["Relay_Log_File"]
		pos, _ := strconv.ParseInt(st["Relay_Log_Pos"], 10, 64)
		done := file == rs.untilFile && pos >= rs.untilPos
		events := int64(-1)
		if v, err := strconv.ParseInt(st["Executed_log_entries"], 10, 64); err == nil {
			events = v
		}
		if st["Last_SQL_Errno"] != "" && st["Last_SQL_Errno"] != "0" {
			return fmt.Errorf("the replication applier stopped with error %s on the transaction at %s:%s of the archived binlogs: %s",
				st["Last_SQL_Errno"], st["Relay_Master_Log_File"], st["Exec_Master_Log_Pos"], st["Last_SQL_Error"])
		}
		if done {
			pr.events = addEvents(pr.events, events)
			return nil
		}
		if st["Slave_SQL_Running"] == "No" {
			return fmt.Errorf("the replication applier stopped at relay log %s:%d before the end of the replay (%s:%d), without an error", file, pos, rs.untilFile, rs.untilPos)
		}
		applied, tx := rs.progress(file, pos)
		pr.report(pr.done+applied, pr.txDone+tx, addEvents(pr.events, events), st["Relay_Master_Log_File"]+":"+st["Exec_Master_Log_Pos"])
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// progress maps the SQL thread's relay log position to the bytes of the
// archived files applied (from each step's start, as replayProgress.total
// counts them) and the transactions of the steps completed.
func (rs *relaySet) progress(file string, pos int64) (applied, tx int64) {
	for i, f := range rs.files {
		if i >= len(rs.run) {
			break
		}
		st := rs.run[i]
		if filepath.Base(f) == file {
			applied += min(max(pos+rs.delta[i]-st.start, 0), rs.spans[i])
			tx += st.tx.at(pos + rs.delta[i])
			break
		}
		applied += rs.spans[i]
		tx += st.tx.total()
	}
	return applied, tx
}

// slaveStatus returns the row of the default connection of SHOW ALL
// SLAVES STATUS: SHOW SLAVE STATUS's columns plus Executed_log_entries.
func slaveStatus(ctx context.Context, db *sql.DB) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, "SHOW ALL SLAVES STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("no replication configured")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	m := make(map[string]string, len(cols))
	for i, c := range cols {
		m[c] = vals[i].String
	}
	return m, rows.Err()
}
