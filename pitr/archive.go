package pitr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"golang.org/x/sync/errgroup"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/binlog"
	"github.com/gosst/gosst/internal/version"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/stream"
)

// Binlog archive key layout (no key is a "directory" of another):
//
//	binlogs/<lineage>/<domain>/<from>-<to>/data.binlog.<codec>[.age]
//	binlogs/<lineage>/<domain>/<from>-<to>/index.json    written last
//
// lineage is the Galera cluster state UUID (a new bootstrap starts a new
// lineage: its sequence numbers restart from a restored state and reuse
// numbers of the old history). domain is wsrep_gtid_domain_id, the domain
// every replicated transaction is logged in with the same GTID on every
// node. from and to are 20-digit sequence numbers in that domain: the
// segment holds the transactions from+1 … to. Segments are keyed by GTID
// range, not by file name, because each node logs the same transactions
// under its own file names and offsets: archiving continues on another node
// from the last archived GTID, and a segment that another node already
// covers is never stored twice.
const binlogsPrefix = "binlogs/"

// SegmentFormat is the index.json version this package writes.
const SegmentFormat = 1

// Segment is the index of one archived binlog file (index.json).
type Segment struct {
	Format  int    `json:"format"`
	Lineage string `json:"lineage"` // cluster state UUID
	Domain  uint32 `json:"domain"`  // wsrep_gtid_domain_id
	Server  uint32 `json:"server"`  // server id of the cluster's GTIDs in Domain
	// From is the last sequence number in Domain before ReplayFrom
	// (exclusive), To the last one in the file (inclusive).
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
	// Node and File name the source: wsrep_node_name and the binlog file
	// name on that node. Offsets are only meaningful in this file.
	Node string `json:"node"`
	File string `json:"file"`
	// ReplayFrom is the offset to start replaying this file at when the
	// previous segment ends at From: 4 (the whole file) unless the file
	// starts before From (archiving moved to this node), then the offset of
	// the first transaction after From.
	ReplayFrom int64 `json:"replay_from"`
	// FirstCommit and LastCommit are the commit times of the transactions
	// of the segment (1 s resolution); Closed is when the file was rotated
	// or the server stopped: every transaction this node committed before
	// Closed is in this file or an earlier one.
	FirstCommit time.Time `json:"first_commit"`
	LastCommit  time.Time `json:"last_commit"`
	Closed      time.Time `json:"closed"`

	Binlog *binlog.FileIndex `json:"binlog"`

	Object         backup.Object `json:"object"`
	Codecs         []string      `json:"codecs"` // ["binlog", "zstd", "age"]
	KeyFingerprint []string      `json:"key_fingerprints,omitempty"`
	Archived       time.Time     `json:"archived"`
	ToolVersion    string        `json:"tool_version"`
}

// Key returns the segment's directory key (without a trailing slash).
func (s *Segment) Key() string { return segmentKey(s.Lineage, s.Domain, s.From, s.To) }

// Encrypted reports whether the data object is age-encrypted.
func (s *Segment) Encrypted() bool {
	for _, c := range s.Codecs {
		if c == "age" {
			return true
		}
	}
	return false
}

// EndTime is the latest time a time target may name for this segment to
// be the last one replayed: its close time, or its last commit when the
// file has no closing event (the server crashed).
func (s *Segment) EndTime() time.Time {
	if !s.Closed.IsZero() {
		return s.Closed
	}
	return s.LastCommit
}

func segmentKey(lineage string, domain uint32, from, to uint64) string {
	return fmt.Sprintf("%s%s/%d/%020d-%020d", binlogsPrefix, lineage, domain, from, to)
}

// lineageRE matches a segment lineage: a Galera cluster state UUID, or
// server-<server_id> for a server without wsrep.
var lineageRE = regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|server-[0-9]{1,10})$`)

// binlogFileRE matches a binlog file's base name as MariaDB creates it
// (log_bin basename + "." + a sequence number). An index read from storage
// names the file, and the name becomes part of a local path at restore: no
// separators, no "." or ".." and no leading dot, bounded length.
var binlogFileRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}\.[0-9]{6,10}$`)

// ValidBinlogFile reports whether name is a plain binlog file name, safe
// to use as a path component.
func ValidBinlogFile(name string) bool {
	return binlogFileRE.MatchString(name) && !strings.Contains(name, "..")
}

func (s *Segment) validate() error {
	if s.Format < 1 || s.Format > SegmentFormat {
		return fmt.Errorf("segment index format %d not understood (upgrade gosst)", s.Format)
	}
	if !lineageRE.MatchString(s.Lineage) {
		return fmt.Errorf("segment index: lineage %q is not a cluster UUID or server-N", s.Lineage)
	}
	if s.To <= s.From || s.Binlog == nil || s.Object.Key == "" || !backup.IsHexSHA256(s.Object.SHA256) || !backup.IsHexSHA256(s.Object.PlainSHA256) {
		return fmt.Errorf("segment index %s is incomplete", s.Key())
	}
	if !ValidBinlogFile(s.File) {
		return fmt.Errorf("segment index %s: file %q is not a binlog file name", s.Key(), s.File)
	}
	if len(s.Node) > backup.MaxName {
		return fmt.Errorf("segment index %s: node name longer than %d bytes", s.Key(), backup.MaxName)
	}
	// The data object must be this segment's own, named after its codecs:
	// an index must not be able to make a restore read another object.
	if len(s.Codecs) < 2 || len(s.Codecs) > 3 || s.Codecs[0] != "binlog" || (len(s.Codecs) == 3 && s.Codecs[2] != "age") {
		return fmt.Errorf("segment index %s: codec chain %q is not binlog, a compression, and optionally age", s.Key(), s.Codecs)
	}
	ext, err := backup.CompressionExt(s.Codecs[1], len(s.Codecs) == 3)
	if err != nil {
		return fmt.Errorf("segment index %s: %w", s.Key(), err)
	}
	if want := s.Key() + "/data.binlog" + ext; s.Object.Key != want {
		return fmt.Errorf("segment index %s: object key %q is not the segment's data object %q", s.Key(), s.Object.Key, want)
	}
	if s.Object.Size < 0 || s.Object.PlainSize < 0 || s.Object.Size > backup.MaxObjectSize || s.Object.PlainSize > backup.MaxObjectSize {
		return fmt.Errorf("segment index %s: object size %d (plain %d) outside 0..%d", s.Key(), s.Object.Size, s.Object.PlainSize, int64(backup.MaxObjectSize))
	}
	if s.ReplayFrom < 4 || s.ReplayFrom > s.Object.PlainSize {
		return fmt.Errorf("segment %s: replay offset %d outside the file", s.Key(), s.ReplayFrom)
	}
	return nil
}

// ParseSegment decodes and validates an index.json read from key (the
// key must be the segment's own).
func ParseSegment(key string, data []byte) (*Segment, error) {
	if len(data) > maxIndexSize {
		return nil, fmt.Errorf("%s: %d bytes is too large for an index", key, len(data))
	}
	var s Segment
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	if s.Key()+"/index.json" != key {
		return nil, fmt.Errorf("%s describes segment %s", key, s.Key())
	}
	return &s, nil
}

const maxIndexSize = 4 << 20

// Archive reads and writes the binlog archive in a storage backend.
type Archive struct {
	Store backend.Backend
}

// Segments returns every segment with a readable index, ordered by
// lineage, domain, From, To. Unreadable indexes are returned in bad, keyed
// by key; data objects without an index (an interrupted upload) are
// ignored.
func (a *Archive) Segments(ctx context.Context) (segs []*Segment, bad map[string]error, err error) {
	var keys []string
	err = a.Store.List(ctx, binlogsPrefix, func(oi backend.ObjectInfo) error {
		if strings.HasSuffix(oi.Key, "/index.json") {
			keys = append(keys, oi.Key)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list the binlog archive: %w", err)
	}
	segs, bad = backup.LoadEach(ctx, keys, a.load)
	sort.Slice(segs, func(i, j int) bool {
		a, b := segs[i], segs[j]
		if a.Lineage != b.Lineage {
			return a.Lineage < b.Lineage
		}
		if a.Domain != b.Domain {
			return a.Domain < b.Domain
		}
		if a.From != b.From {
			return a.From < b.From
		}
		return a.To < b.To
	})
	return segs, bad, nil
}

func (a *Archive) load(ctx context.Context, key string) (*Segment, error) {
	rc, err := a.Store.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return ParseSegment(key, data)
}

// ArchiveOptions configures binlog archiving.
type ArchiveOptions struct {
	// Node is the local server whose binlogs are archived: the files are
	// read from its @@log_bin_basename directory, so it must be local.
	Node mariadb.Target
	// BinlogDir overrides the directory the files are read from.
	BinlogDir string
	// Codec compresses (default zstd level 1); Recipients encrypt (age).
	Codec           stream.Codec
	Recipients      []age.Recipient
	KeyFingerprints []string
	Logger          *slog.Logger
}

// Gap is a range of transactions missing from the archive.
type Gap struct {
	Lineage string `json:"lineage"`
	Domain  uint32 `json:"domain"`
	// Transactions After+1 … Through are missing; Reason says why (not
	// archived, or a data object is missing).
	After   uint64 `json:"after"`
	Through uint64 `json:"through"`
	Reason  string `json:"reason"`
}

func (g Gap) String() string {
	return fmt.Sprintf("%d-*-%d … %d-*-%d missing (%s)", g.Domain, g.After+1, g.Domain, g.Through, g.Reason)
}

// ArchiveReport says what one archiving pass did.
type ArchiveReport struct {
	Node     string     `json:"node"`
	Lineage  string     `json:"lineage"`
	Domain   uint32     `json:"domain"`
	Archived []*Segment `json:"archived"`
	Skipped  []string   `json:"skipped"` // "file: reason"
	Gaps     []Gap      `json:"gaps"`
	Last     uint64     `json:"last"` // last archived sequence number in Domain
}

// ErrGTIDSplit means the node logs the cluster's transactions under GTIDs
// other nodes do not use (seen after a crash-rejoin): its binlogs cannot
// continue a GTID-keyed archive.
var ErrGTIDSplit = errors.New("GTID split")

// nodeInfo is what archiving needs to know about the node.
type nodeInfo struct {
	name, lineage, basename string
	domain, serverID        uint32
	localDomain             uint32
	checkpoint              string // wsrep_se_checkpoint
	galera                  bool
}

func readNodeInfo(ctx context.Context, db *sql.DB) (nodeInfo, error) {
	var ni nodeInfo
	var base, name sql.NullString
	var gtidMode sql.NullString
	var wdom, sid, ldom sql.NullInt64
	row := db.QueryRowContext(ctx, "SELECT @@log_bin_basename, @@wsrep_node_name, @@wsrep_gtid_domain_id, @@server_id, @@gtid_domain_id, @@wsrep_gtid_mode, @@wsrep_on")
	var wsrepOn sql.NullString
	if err := row.Scan(&base, &name, &wdom, &sid, &ldom, &gtidMode, &wsrepOn); err != nil {
		return ni, fmt.Errorf("read binlog settings: %w", err)
	}
	if !base.Valid || base.String == "" {
		return ni, errors.New("binary logging is off on this node (log_bin): nothing to archive")
	}
	ni.basename, ni.name = base.String, name.String
	ni.serverID, ni.localDomain = uint32(sid.Int64), uint32(ldom.Int64)
	ni.galera = wsrepOn.String == "1" || strings.EqualFold(wsrepOn.String, "ON")
	if ni.galera {
		if gtidMode.String != "1" && !strings.EqualFold(gtidMode.String, "ON") {
			return ni, errors.New("wsrep_gtid_mode is OFF: nodes assign their own GTIDs, so binlogs cannot be archived by GTID; set wsrep_gtid_mode=ON and wsrep_gtid_domain_id")
		}
		ni.domain = uint32(wdom.Int64)
		st, err := mariadb.GlobalStatus(ctx, db, "wsrep_cluster_state_uuid", "wsrep_se_checkpoint", "wsrep_local_state_comment")
		if err != nil {
			return ni, err
		}
		ni.lineage = st["wsrep_cluster_state_uuid"]
		ni.checkpoint = st["wsrep_se_checkpoint"]
		if ni.lineage == "" || strings.HasPrefix(ni.lineage, "00000000-") {
			return ni, fmt.Errorf("node has no cluster state UUID yet (state %s)", st["wsrep_local_state_comment"])
		}
	} else {
		ni.domain = ni.localDomain
		ni.lineage = fmt.Sprintf("server-%d", ni.serverID)
	}
	if ni.name == "" {
		h, _ := os.Hostname()
		ni.name = h
	}
	return ni, nil
}

// checkSplit refuses a node whose storage-engine checkpoint shows a GTID
// outside the cluster's domain/server: the crash-rejoin GTID split.
func (ni nodeInfo) checkSplit(server uint32) error {
	if !ni.galera || ni.checkpoint == "" {
		return nil
	}
	f := strings.Fields(ni.checkpoint)
	if len(f) < 2 {
		return nil // no GTID yet
	}
	g, err := binlog.ParseGTID(f[1])
	if err != nil {
		return nil
	}
	if g.Domain != ni.domain || (server != 0 && g.Server != server) {
		want := fmt.Sprintf("%d-%d-N", ni.domain, server)
		if server == 0 {
			want = fmt.Sprintf("%d-*-N", ni.domain)
		}
		return fmt.Errorf("%w on node %s: wsrep_se_checkpoint is %q, the cluster's transactions are archived as %s; this node logs them under other GTIDs (a crash-rejoin without SST), so its binlogs are refused. Archive from another node; repair this one with a full SST",
			ErrGTIDSplit, ni.name, ni.checkpoint, want)
	}
	return nil
}

// binlogFiles returns the node's binlog files; the last one is active.
func binlogFiles(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("SHOW BINARY LOGS (needs BINLOG MONITOR): %w", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var names []string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		names = append(names, string(vals[0]))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return names, nil
}

// ArchivePass uploads every closed binlog file of the node that the
// archive does not cover yet. It is idempotent: a file whose GTID range is
// archived (from this or another node) is skipped, a data object without
// its index (an interrupted pass) is overwritten. Gaps are reported, and
// the file after a gap is still archived.
func ArchivePass(ctx context.Context, a *Archive, o ArchiveOptions) (*ArchiveReport, error) {
	if o.Codec == nil {
		c, err := stream.DefaultCodec()
		if err != nil {
			return nil, err
		}
		o.Codec = c
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	db, err := mariadb.Open(ctx, o.Node)
	if err != nil {
		return nil, fmt.Errorf("connect to the node whose binlogs to archive: %w", err)
	}
	defer db.Close()
	return archivePass(ctx, a, o, db)
}

func archivePass(ctx context.Context, a *Archive, o ArchiveOptions, db *sql.DB) (*ArchiveReport, error) {
	log := o.Logger
	ni, err := readNodeInfo(ctx, db)
	if err != nil {
		return nil, err
	}
	// Closed files first, node state second: a file listed as closed stays
	// closed.
	files, err := binlogFiles(ctx, db)
	if err != nil {
		return nil, err
	}
	dir := o.BinlogDir
	if dir == "" {
		dir = filepath.Dir(ni.basename)
	}
	segs, bad, err := a.Segments(ctx)
	if err != nil {
		return nil, err
	}
	for k, e := range bad {
		log.Warn("unreadable binlog index in the archive", "key", k, "err", e)
	}
	rep := &ArchiveReport{Node: ni.name, Lineage: ni.lineage, Domain: ni.domain, Skipped: []string{}, Gaps: []Gap{}}
	var last uint64
	var server uint32
	have := false
	for _, s := range segs {
		if s.Lineage != ni.lineage || s.Domain != ni.domain {
			continue
		}
		if !have || s.To > last {
			last, server = s.To, s.Server
		}
		have = true
	}
	if err := ni.checkSplit(server); err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(files); i++ { // the last file is active
		name := files[i]
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		// Cheap skip: the next file's Gtid_list is this file's end state.
		// (Not the file name: a node's names restart after an SST.)
		if have {
			if end, ok := endSeq(filepath.Join(dir, files[i+1]), ni.domain); ok && end <= last {
				continue
			}
		}
		tip := archiveTip{last: last, server: server, have: have}
		if err := archiveFile(ctx, a, o, ni, filepath.Join(dir, name), name, &tip, rep); err != nil {
			return rep, err
		}
		last, server, have = tip.last, tip.server, tip.have
	}
	rep.Last = last
	return rep, nil
}

// archiveTip is the newest archived transaction of a node's domain.
type archiveTip struct {
	last   uint64 // its sequence number
	server uint32 // its server id
	have   bool   // whether the archive has any
}

// archiveFile archives the closed binlog file name at path, after tip,
// which it moves on; what it skips or finds missing goes into rep.
func archiveFile(ctx context.Context, a *Archive, o ArchiveOptions, ni nodeInfo, path, name string, tip *archiveTip, rep *ArchiveReport) error {
	log := o.Logger
	x, sum, err := indexFile(path)
	if err != nil {
		return fmt.Errorf("read binlog %s: %w", path, err)
	}
	dr, _ := x.Domain(ni.domain)
	before, to := dr.Before.Seq, dr.Last.Seq
	if dr.Transactions == 0 {
		to = before
	}
	if dr.Transactions > 0 {
		want := tip.server
		if want == 0 {
			want = dr.First.Server
		}
		if dr.First.Server != want || dr.Last.Server != want {
			return fmt.Errorf("%w in %s on node %s: transactions of domain %d are logged as %s…%s, the archive has server id %d; this node's binlogs are refused (archive from another node, repair this one with a full SST)",
				ErrGTIDSplit, name, ni.name, ni.domain, dr.First, dr.Last, want)
		}
	}
	if x.InUse && x.End == binlog.EndNone {
		log.Warn("binlog was the active file when the server crashed: archiving its complete events", "file", name, "valid_bytes", x.ValidSize, "bytes", x.Size)
	}
	switch {
	case tip.have && to <= tip.last:
		rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s: %d-%d-%d and earlier already archived", name, ni.domain, tip.server, tip.last))
		return nil
	case to == before:
		rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s: no transactions in domain %d", name, ni.domain))
		return nil
	}
	seg := &Segment{
		Format: SegmentFormat, Lineage: ni.lineage, Domain: ni.domain, Server: dr.Last.Server,
		From: before, To: to, Node: ni.name, File: name, ReplayFrom: 4,
		FirstCommit: x.FirstCommit, LastCommit: x.LastCommit, Closed: x.Closed, Binlog: x,
		Codecs: []string{"binlog", o.Codec.Name()}, KeyFingerprint: o.KeyFingerprints,
		ToolVersion: version.String(),
	}
	if tip.have && before > tip.last {
		g := Gap{Lineage: ni.lineage, Domain: ni.domain, After: tip.last, Through: before, Reason: fmt.Sprintf("not in the binlogs of node %s (purged, or lost at an SST)", ni.name)}
		rep.Gaps = append(rep.Gaps, g)
		log.Error("gap in the binlog archive", "gap", g.String(), "next_file", name)
	}
	if tip.have && before < tip.last {
		// Archiving moved to this node: start after the last archived
		// transaction.
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		tx, found, err := binlog.FindGTID(f, ni.domain, tip.last+1)
		f.Close()
		if err != nil || !found {
			return fmt.Errorf("find %d-*-%d in %s: %v", ni.domain, tip.last+1, name, err)
		}
		seg.From, seg.ReplayFrom, seg.FirstCommit = tip.last, tx.Offset, tx.Commit
	}
	if len(o.Recipients) > 0 {
		seg.Codecs = append(seg.Codecs, "age")
	}
	if err := a.upload(ctx, seg, path, sum, o); err != nil {
		return err
	}
	log.Info("archived binlog", "file", name, "node", ni.name, "gtids", fmt.Sprintf("%d-%d-%d…%d", seg.Domain, seg.Server, seg.From+1, seg.To),
		"bytes", seg.Object.PlainSize, "stored", seg.Object.Size)
	rep.Archived = append(rep.Archived, seg)
	tip.last, tip.server, tip.have = seg.To, seg.Server, true
	return nil
}

// endSeq reads the Gtid_list at the start of a binlog file: the sequence
// number of domain d at the end of the file before it.
func endSeq(path string, d uint32) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	gl, err := binlog.FirstGtidList(f)
	if err != nil {
		return 0, false
	}
	return seqOf(binlog.Position(gl), d)
}

// indexFile indexes a local binlog file and hashes it.
func indexFile(path string) (*binlog.FileIndex, [32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return nil, sum, err
	}
	defer f.Close()
	h := sha256.New()
	x, err := binlog.Index(io.TeeReader(f, h), binlog.IndexOptions{AllowTruncated: true})
	if err != nil {
		return nil, sum, err
	}
	if x.ValidSize < x.Size && !x.InUse {
		return nil, sum, fmt.Errorf("%w: file ends inside an event but was closed cleanly", binlog.ErrFormat)
	}
	// Index stops reading at a cut event: hash the rest too.
	if _, err := io.Copy(h, f); err != nil {
		return nil, sum, err
	}
	copy(sum[:], h.Sum(nil))
	return x, sum, nil
}

// upload stores the file (sealed, compressed, optionally encrypted), then
// its index.
func (a *Archive) upload(ctx context.Context, seg *Segment, path string, plainSum [32]byte, o ArchiveOptions) error {
	ext := "." + o.Codec.Name()
	if len(o.Recipients) > 0 {
		ext += ".age"
	}
	key := seg.Key() + "/data.binlog" + ext
	plain, stored, err := a.storeSealed(ctx, key, path, o)
	if err != nil {
		return err
	}
	if plain.SHA256 != plainSum || plain.Size != seg.Binlog.Size {
		return fmt.Errorf("binlog %s changed while it was archived (%d bytes indexed, %d uploaded)", path, seg.Binlog.Size, plain.Size)
	}
	seg.Object = backup.Object{Key: key, Size: stored.Size(), SHA256: stored.SHA256(),
		PlainSize: plain.Size, PlainSHA256: hex.EncodeToString(plain.SHA256[:])}
	seg.Archived = time.Now().UTC()
	data, err := json.MarshalIndent(seg, "", "  ")
	if err != nil {
		return err
	}
	if err := seg.validate(); err != nil {
		return err
	}
	if err := a.Store.Put(ctx, seg.Key()+"/index.json", bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("write index of %s (the data is stored, the next pass writes it again): %w", seg.File, err)
	}
	return nil
}

// storeSealed seals the file at path into the object key: one goroutine
// seals into a pipe, the store reads the other end. Both run under one
// errgroup and are joined on every path, so when it returns nothing reads
// the file or writes the pipe any more.
func (a *Archive) storeSealed(ctx context.Context, key, path string, o ArchiveOptions) (stream.Sum, *backup.HashCounter, error) {
	f, err := os.Open(path)
	if err != nil {
		return stream.Sum{}, nil, err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	stored := backup.NewHashCounter()
	var plain stream.Sum
	var sealErr error
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// Its error reaches the store through the pipe, which reports it
		// wrapped with the key; sealErr only catches a store that ends
		// without reading to the end.
		plain, sealErr = seal(io.MultiWriter(pw, stored), f, path, o)
		pw.CloseWithError(sealErr)
		return nil
	})
	g.Go(func() error {
		err := a.Store.Put(gctx, key, pr, -1)
		if err == nil {
			// A store that returns before the end must not leave the
			// sealing goroutine blocked on the pipe.
			pr.CloseWithError(errors.New("the storage ended the upload before the end of the stream"))
			return nil
		}
		pr.CloseWithError(err) // stops the sealing goroutine's writes
		return fmt.Errorf("upload %s: %w", key, err)
	})
	if err := g.Wait(); err != nil {
		return stream.Sum{}, nil, err
	}
	if sealErr != nil {
		return stream.Sum{}, nil, fmt.Errorf("upload %s: %w", key, sealErr)
	}
	return plain, stored, nil
}

// seal writes the file f (at path) to w as a sealed stream: compressed,
// optionally encrypted, with the end marker only if f was read to its end.
func seal(w io.Writer, f io.Reader, path string, o ArchiveOptions) (stream.Sum, error) {
	sw, err := stream.NewWriter(w, stream.WriteOptions{Codec: o.Codec, Recipients: o.Recipients})
	if err != nil {
		return stream.Sum{}, err
	}
	if _, err := io.Copy(sw, f); err != nil {
		sw.Abort() // never seal a partly read file
		return stream.Sum{}, fmt.Errorf("read %s: %w", path, err)
	}
	return sw.Close()
}

// FollowOptions configures Follow.
type FollowOptions struct {
	ArchiveOptions
	// MaxLag bounds how long a committed transaction may stay unarchived:
	// the active binlog is rotated (FLUSH LOCAL BINARY LOGS) when it holds
	// transactions older than this (default 60 s).
	MaxLag time.Duration
	// StandbyAfter, when set, makes archivers on several nodes share the
	// work: the one holding the lease (binlogs/<lineage>/archiver.json)
	// archives and renews it every pass; the others stand by and take over
	// when it has not been renewed for StandbyAfter (its node or process
	// went away). The new holder continues from the last archived GTID.
	StandbyAfter time.Duration
	// OnPass, when set, is called after every pass.
	OnPass func(*ArchiveReport, error)
}

// Lease names the archiver currently doing the work for a lineage.
type Lease struct {
	Node    string    `json:"node"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Renewed time.Time `json:"renewed"`
}

func leaseKey(lineage string) string { return binlogsPrefix + lineage + "/archiver.json" }

func (a *Archive) readLease(ctx context.Context, lineage string) (*Lease, error) {
	rc, err := a.Store.Get(ctx, leaseKey(lineage), 0, -1)
	if errors.Is(err, backend.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var l Lease
	if err := json.NewDecoder(io.LimitReader(rc, 1<<16)).Decode(&l); err != nil {
		return nil, nil // unreadable: treat as absent
	}
	return &l, nil
}

func (a *Archive) writeLease(ctx context.Context, lineage string, l Lease) error {
	data, _ := json.Marshal(l)
	return a.Store.Put(ctx, leaseKey(lineage), bytes.NewReader(data), int64(len(data)))
}

// claim renews or takes the lease for node; it reports whether this
// archiver may work, and the current holder otherwise.
func (a *Archive) claim(ctx context.Context, lineage, node string, standbyAfter time.Duration) (bool, *Lease, error) {
	cur, err := a.readLease(ctx, lineage)
	if err != nil {
		return false, nil, fmt.Errorf("read the archiver lease: %w", err)
	}
	now := time.Now().UTC()
	if cur != nil && cur.Node != node && now.Sub(cur.Renewed) < standbyAfter {
		return false, cur, nil
	}
	host, _ := os.Hostname()
	me := Lease{Node: node, Host: host, PID: os.Getpid(), Renewed: now}
	if err := a.writeLease(ctx, lineage, me); err != nil {
		return false, nil, fmt.Errorf("write the archiver lease: %w", err)
	}
	if cur != nil && cur.Node == node {
		return true, nil, nil
	}
	// Taking over: let a competing standby's write land, then see who won.
	select {
	case <-ctx.Done():
		return false, nil, ctx.Err()
	case <-time.After(time.Second):
	}
	got, err := a.readLease(ctx, lineage)
	if err != nil {
		return false, nil, fmt.Errorf("read the archiver lease: %w", err)
	}
	if got == nil || got.Node != node || got.PID != me.PID {
		return false, got, nil
	}
	return true, nil, nil
}

// Follow archives until ctx is cancelled: a pass every MaxLag/4 (at most
// 15 s), rotating the active binlog when its first transaction is MaxLag
// old. A node that is unreachable is retried; a GTID split stops it.
func Follow(ctx context.Context, a *Archive, o FollowOptions) error {
	if o.MaxLag <= 0 {
		o.MaxLag = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Codec == nil {
		c, err := stream.DefaultCodec()
		if err != nil {
			return err
		}
		o.Codec = c
	}
	tick := o.MaxLag / 4
	if tick > 15*time.Second {
		tick = 15 * time.Second
	}
	if tick < 100*time.Millisecond {
		tick = 100 * time.Millisecond
	}
	log := o.Logger
	f := &follower{a: a, o: o}
	for {
		err := f.pass(ctx)
		if errors.Is(err, ErrGTIDSplit) {
			return err
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("archive pass failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(tick):
		}
	}
}

// follower is Follow's state between passes.
type follower struct {
	a          *Archive
	o          FollowOptions
	lastPos    string    // @@gtid_binlog_pos at the last rotation
	dirtySince time.Time // when it first differed from lastPos
	standing   bool      // standing by for another archiver
}

// pass connects to the node and, unless another archiver holds the lease,
// rotates the binlog if it has held unarchived transactions for MaxLag,
// then archives the closed files.
func (f *follower) pass(ctx context.Context) error {
	a, o, log := f.a, f.o, f.o.Logger
	db, err := mariadb.Open(ctx, o.Node)
	if err != nil {
		return err
	}
	defer db.Close()
	if o.StandbyAfter > 0 {
		ni, err := readNodeInfo(ctx, db)
		if err != nil {
			return err
		}
		ok, holder, err := a.claim(ctx, ni.lineage, ni.name, o.StandbyAfter)
		if err != nil {
			return err
		}
		if !ok {
			if !f.standing && holder != nil {
				log.Info("standing by: another archiver holds the lease", "holder", holder.Node, "host", holder.Host, "renewed", holder.Renewed)
			}
			f.standing = true
			return nil
		}
		if f.standing {
			log.Warn("taking over binlog archiving: the previous archiver stopped renewing its lease", "node", ni.name)
		}
		f.standing = false
	}
	var pos string
	if err := db.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		return err
	}
	now := time.Now()
	if pos != f.lastPos && f.dirtySince.IsZero() {
		f.dirtySince = now
	}
	if !f.dirtySince.IsZero() && now.Sub(f.dirtySince) >= o.MaxLag {
		if _, err := db.ExecContext(ctx, "FLUSH LOCAL BINARY LOGS"); err != nil {
			return fmt.Errorf("rotate the binlog (needs RELOAD): %w", err)
		}
		f.lastPos, f.dirtySince = pos, time.Time{}
	}
	rep, err := archivePass(ctx, a, o.ArchiveOptions, db)
	if o.OnPass != nil {
		o.OnPass(rep, err)
	}
	return err
}

// seqOf returns the sequence number of domain d in a GTID list "d-s-n,…".
func seqOf(list string, d uint32) (uint64, bool) {
	for _, p := range strings.Split(list, ",") {
		g, err := binlog.ParseGTID(p)
		if err == nil && g.Domain == d {
			return g.Seq, true
		}
	}
	return 0, false
}
