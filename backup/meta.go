package backup

import (
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/gosst/gosst/binlog"
	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/mariabackup"
	"github.com/gosst/gosst/stream/xbstream"
)

// metaFiles are the small files mariabackup writes into the stream that
// the manifest is built from (10.11 names and the 11.x renames).
var metaFiles = func() map[string]bool {
	m := map[string]bool{}
	for _, l := range [][]string{mariabackup.CheckpointsFiles, mariabackup.GaleraInfoFiles, mariabackup.BinlogInfoFiles, mariabackup.InfoFiles} {
		for _, n := range l {
			m[n] = true
		}
	}
	return m
}()

const maxMetaFile = 64 << 10

// binlogName matches the binlog file mariabackup --galera-info ships at the
// top level (a fresh file holding only the GTID state of the snapshot).
var binlogName = regexp.MustCompile(`^[^/]+\.[0-9]{6}$`)

// Scan reads an xbstream (CRC-checked) and collects the metadata files
// and the list of tables, without keeping data. It is meant to run on a
// tee of the stream while the stream is uploaded.
type Scan struct {
	mu     sync.Mutex
	files  map[string][]byte
	tables map[Table]bool
	chunks int64
}

// NewScan returns an empty scan.
func NewScan() *Scan {
	return &Scan{files: map[string][]byte{}, tables: map[Table]bool{}}
}

// Run consumes r to the end. A stream error is returned.
func (s *Scan) Run(r io.Reader) error {
	xr := xbstream.NewReader(r)
	for {
		c, err := xr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.chunks++
		if (metaFiles[c.Path] || binlogName.MatchString(c.Path)) && c.Type == xbstream.TypePayload {
			b := s.files[c.Path]
			if int64(len(b))+int64(len(c.Payload)) <= maxMetaFile {
				s.files[c.Path] = append(b, c.Payload...)
			}
		}
		if t, ok := tableOf(c.Path); ok {
			s.tables[t] = true
		}
		s.mu.Unlock()
	}
}

// tableOf recognises table files: db/t.frm, or engine files.
func tableOf(p string) (Table, bool) {
	dir, file := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" || strings.Contains(dir, "/") {
		return Table{}, false
	}
	switch dir {
	case "mysql", "performance_schema", "sys", "information_schema":
		return Table{}, false
	}
	ext := path.Ext(file)
	name := strings.TrimSuffix(file, ext)
	if strings.Contains(name, "#") { // partitions (t#P#p0) and temp names
		return Table{}, false
	}
	engine := ""
	switch ext {
	case ".ibd", ".new", ".delta":
		engine = "InnoDB"
	case ".MAD":
		engine = "Aria"
	case ".MYD":
		engine = "MyISAM"
	default:
		return Table{}, false
	}
	return Table{Schema: dir, Name: name, Engine: engine}, true
}

// File returns a captured metadata file by either of its names.
func (s *Scan) File(names ...string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		if b, ok := s.files[n]; ok {
			return string(b), true
		}
	}
	return "", false
}

// Tables returns the tables seen, sorted.
func (s *Scan) Tables() []Table {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Table, 0, len(s.tables))
	for t := range s.tables {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Schema != out[j].Schema {
			return out[i].Schema < out[j].Schema
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Fill sets the manifest's positions from the captured metadata.
func (s *Scan) Fill(m *Manifest) error {
	cp, ok := s.File(mariabackup.CheckpointsFiles...)
	if !ok {
		return fmt.Errorf("the stream has no xtrabackup_checkpoints: not a complete mariabackup backup")
	}
	kv := mariabackup.ParseCheckpoints(cp)
	var err error
	if m.LSN.From, err = kv.LSN("from_lsn"); err != nil {
		return err
	}
	if m.LSN.To, err = kv.LSN("to_lsn"); err != nil {
		return err
	}
	m.LSN.Last, _ = kv.LSN("last_lsn")
	if gi, ok := s.File(mariabackup.GaleraInfoFiles...); ok {
		g, err := ParseGaleraInfo(gi)
		if err != nil {
			return err
		}
		m.Galera = g
	} else {
		m.Galera.Seqno = -1
	}
	if bi, ok := s.File(mariabackup.BinlogInfoFiles...); ok {
		m.Binlog = ParseBinlogInfo(bi)
	}
	if m.Binlog.GTID == "" && m.Binlog.File != "" {
		// mariabackup writes @@gtid_current_pos, which is empty on a Galera
		// node whose server_id differs from the one in the cluster's GTIDs.
		// The shipped binlog's Gtid_list is the binlog state at the
		// snapshot: use its per-domain position instead.
		if data, ok := s.File(path.Base(m.Binlog.File)); ok {
			if gl, err := binlog.FirstGtidList(strings.NewReader(data)); err == nil {
				m.Binlog.GTID = binlog.Position(gl)
			}
		}
	}
	if info, ok := s.File(mariabackup.InfoFiles...); ok {
		kv := mariabackup.KeyValues(info)
		m.MariaBackupVersion = kv["tool_version"]
		m.MariaDBVersion = kv["server_version"]
	}
	m.Tables = s.Tables()
	return nil
}

// ParseGaleraInfo parses line 1 of a galera info file ("uuid:seqno
// [domain]", see ist.ParseGaleraInfo) into the manifest's form.
func ParseGaleraInfo(s string) (GaleraPosition, error) {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	p, err := ist.ParseGaleraInfo(line)
	if err != nil {
		return GaleraPosition{}, fmt.Errorf("galera info: %w", err)
	}
	return GaleraPositionOf(p), nil
}

// ParseBinlogInfo parses xtrabackup_binlog_info
// ("file<TAB>position[<TAB>gtid]").
func ParseBinlogInfo(s string) BinlogPosition {
	return BinlogPosition(mariabackup.ParseBinlogInfo(s))
}
