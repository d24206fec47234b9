package backup

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/gosst/gosst/binlog"
	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/stream/xbstream"
)

// metaFiles are the small files mariabackup writes into the stream that
// the manifest is built from (10.11 names and the 11.x renames).
var metaFiles = map[string]bool{
	"xtrabackup_checkpoints": true, "mariadb_backup_checkpoints": true,
	"xtrabackup_galera_info": true, "mariadb_backup_galera_info": true,
	"donor_galera_info":      true,
	"xtrabackup_binlog_info": true, "mariadb_backup_binlog_info": true,
	"xtrabackup_info": true, "mariadb_backup_info": true,
}

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
	cp, ok := s.File("xtrabackup_checkpoints", "mariadb_backup_checkpoints")
	if !ok {
		return fmt.Errorf("the stream has no xtrabackup_checkpoints: not a complete mariabackup backup")
	}
	kv := parseKV(cp)
	var err error
	if m.LSN.From, err = strconv.ParseInt(kv["from_lsn"], 10, 64); err != nil {
		return fmt.Errorf("xtrabackup_checkpoints: from_lsn %q", kv["from_lsn"])
	}
	if m.LSN.To, err = strconv.ParseInt(kv["to_lsn"], 10, 64); err != nil {
		return fmt.Errorf("xtrabackup_checkpoints: to_lsn %q", kv["to_lsn"])
	}
	m.LSN.Last, _ = strconv.ParseInt(kv["last_lsn"], 10, 64)
	if gi, ok := s.File("xtrabackup_galera_info", "mariadb_backup_galera_info", "donor_galera_info"); ok {
		g, err := ParseGaleraInfo(gi)
		if err != nil {
			return err
		}
		m.Galera = g
	} else {
		m.Galera.Seqno = -1
	}
	if bi, ok := s.File("xtrabackup_binlog_info", "mariadb_backup_binlog_info"); ok {
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
	if info, ok := s.File("xtrabackup_info", "mariadb_backup_info"); ok {
		kv := parseKV(info)
		m.MariaBackupVersion = kv["tool_version"]
		m.MariaDBVersion = kv["server_version"]
	}
	m.Tables = s.Tables()
	return nil
}

// parseKV parses "key = value" lines.
func parseKV(s string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
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

// ParseBinlogInfo parses "file<TAB>position[<TAB>gtid]".
func ParseBinlogInfo(s string) BinlogPosition {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	f := strings.Split(line, "\t")
	var b BinlogPosition
	if len(f) > 0 {
		b.File = strings.TrimSpace(f[0])
	}
	if len(f) > 1 {
		b.Position, _ = strconv.ParseInt(strings.TrimSpace(f[1]), 10, 64)
	}
	if len(f) > 2 {
		b.GTID = strings.TrimSpace(f[2])
	}
	return b
}
