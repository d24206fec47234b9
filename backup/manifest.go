// Package backup takes, catalogues and restores physical backups of a
// Galera node: mariabackup's xbstream, sealed and optionally encrypted by
// the stream package, stored through a storage backend, described by a
// manifest that is written last. A backup without its manifest does not
// exist.
package backup

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/stream"
)

// ManifestFormat is the manifest version this package writes. Readers
// refuse manifests with a higher version.
const ManifestFormat = 1

// Backup types.
const (
	TypeFull        = "full"
	TypeIncremental = "incremental"
)

// Manifest describes one backup. It is plain JSON (no secrets) so that
// list works without keys; the data object it names is verified against
// the sizes and hashes recorded here.
type Manifest struct {
	Format    int       `json:"format"`
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Parent    string    `json:"parent,omitempty"` // incremental: the backup it builds on
	StartTime time.Time `json:"start_time"`
	EndTime   time.Time `json:"end_time"`
	Node      string    `json:"node,omitempty"` // wsrep_node_name or host of the source
	// Lineage identifies the datadir the backup was read from (see
	// datadirLineage): an incremental is only taken on a base with the same
	// Node and Lineage, because InnoDB LSNs only order changes within one
	// datadir history.
	Lineage string `json:"datadir_lineage,omitempty"`

	Galera GaleraPosition `json:"galera"`
	Binlog BinlogPosition `json:"binlog"`
	LSN    LSNRange       `json:"lsn"`

	MariaDBVersion     string `json:"mariadb_version,omitempty"`
	MariaBackupVersion string `json:"mariabackup_version,omitempty"`
	ToolVersion        string `json:"tool_version"`

	// Codec chain, outermost last: e.g. ["xbstream", "zstd", "age"].
	Codecs         []string `json:"codecs"`
	KeyFingerprint []string `json:"key_fingerprints,omitempty"`

	Objects []Object `json:"objects"`
	// Tables found in the backup (schema/table and engine from the file
	// names); verify --restore-test checks each one after a restore.
	Tables []Table `json:"tables"`
}

// GaleraPosition is the cluster position the backup is consistent with.
type GaleraPosition struct {
	UUID     string `json:"uuid,omitempty"`
	Seqno    int64  `json:"seqno"`
	DomainID int64  `json:"gtid_domain_id"`
}

// Position is g as the project's one position type (ist.Position). The
// manifest always records a domain (0 when the galera info had none).
func (g GaleraPosition) Position() ist.Position {
	return ist.Position{UUID: g.UUID, Seqno: g.Seqno}.WithDomain(g.DomainID)
}

// GaleraPositionOf is p in the manifest's JSON form; a position without a
// domain is recorded with domain 0, as manifests always have been.
func GaleraPositionOf(p ist.Position) GaleraPosition {
	return GaleraPosition{UUID: p.UUID, Seqno: p.Seqno, DomainID: int64(p.Domain)}
}

// BinlogPosition is the binary log coordinate of the backup.
type BinlogPosition struct {
	File     string `json:"file,omitempty"`
	Position int64  `json:"position,omitempty"`
	GTID     string `json:"gtid,omitempty"` // gtid_current_pos, may list several domains
}

// LSNRange is the InnoDB LSN window of the backup.
type LSNRange struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
	Last int64 `json:"last"`
}

// Object is one stored object of a backup.
type Object struct {
	Key         string `json:"key"`
	Size        int64  `json:"size"`   // stored bytes
	SHA256      string `json:"sha256"` // of the stored bytes
	PlainSize   int64  `json:"plain_size"`
	PlainSHA256 string `json:"plain_sha256"` // of the xbstream
}

// Table is one table found in the backup.
type Table struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Engine string `json:"engine"` // InnoDB, Aria, MyISAM, other
}

var idRE = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$`)

// ErrManifest marks an unreadable or inconsistent manifest.
var ErrManifest = errors.New("backup manifest")

// NewID returns a sortable backup id: UTC time plus 6 random hex digits.
func NewID(t time.Time, rnd uint32) string {
	return fmt.Sprintf("%s-%06x", t.UTC().Format("20060102T150405Z"), rnd&0xffffff)
}

// ValidID reports whether s is a backup id.
func ValidID(s string) bool { return idRE.MatchString(s) }

// Marshal encodes the manifest as indented JSON.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.MarshalIndent(m, "", "  ")
}

// ParseManifest decodes and validates a manifest. Unknown fields are
// ignored (a newer minor writer may add some); a newer format is refused.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > 16<<20 {
		return nil, fmt.Errorf("%w: %d bytes is too large", ErrManifest, len(data))
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if m.Format > ManifestFormat {
		return nil, fmt.Errorf("%w: format %d is newer than this gosst understands (%d); upgrade gosst", ErrManifest, m.Format, ManifestFormat)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the fields a restore relies on.
func (m *Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrManifest, m.ID, fmt.Sprintf(format, args...))
	}
	if m.Format < 1 {
		return bad("format %d", m.Format)
	}
	if !ValidID(m.ID) {
		return fmt.Errorf("%w: bad id %q", ErrManifest, m.ID)
	}
	switch m.Type {
	case TypeFull:
		if m.Parent != "" {
			return bad("a full backup has no parent")
		}
	case TypeIncremental:
		if !ValidID(m.Parent) {
			return bad("incremental without a valid parent id")
		}
	default:
		return bad("unknown type %q", m.Type)
	}
	if m.Type == TypeIncremental && m.Parent >= m.ID {
		return bad("parent %s is not older than the backup", m.Parent)
	}
	if len(m.Node) > MaxName || len(m.Lineage) > MaxName {
		return bad("node name or lineage longer than %d bytes", MaxName)
	}
	// The manifest is read from storage and may have been crafted: it
	// must not be able to point a restore at another backup's objects or
	// at keys outside this backup, nor make size arithmetic overflow.
	ext, err := dataExt(m.Codecs)
	if err != nil {
		return bad("%v", err)
	}
	if len(m.Objects) != 1 {
		return bad("%d data objects, format %d has exactly one", len(m.Objects), ManifestFormat)
	}
	for _, o := range m.Objects {
		if want := dataKey(m.ID, ext); o.Key != want {
			return bad("object key %q is not this backup's data object %q", o.Key, want)
		}
		if o.Size < 0 || o.PlainSize < 0 || o.Size > MaxObjectSize || o.PlainSize > MaxObjectSize {
			return bad("object %q: size %d (plain %d) outside 0..%d", o.Key, o.Size, o.PlainSize, int64(MaxObjectSize))
		}
		if !IsHexSHA256(o.SHA256) || !IsHexSHA256(o.PlainSHA256) {
			return bad("object %q is incomplete", o.Key)
		}
	}
	if m.LSN.From < 0 || m.LSN.To < m.LSN.From {
		return bad("LSN range %d..%d", m.LSN.From, m.LSN.To)
	}
	return nil
}

// The limits and checks below are shared with the pitr package, which
// validates the binlog segment indexes it reads from storage by the same
// rules as manifests.

// MaxObjectSize bounds the sizes a manifest or index may claim (1 PiB), so
// that sums over a chain cannot overflow.
const MaxObjectSize = 1 << 50

// MaxName bounds free-form names read from storage.
const MaxName = 256

// dataExt returns the data object's key suffix for a manifest's codec chain
// ["xbstream", zstd|s2|none] or [..., "age"]: ".zstd" or ".zstd.age".
func dataExt(codecs []string) (string, error) {
	if len(codecs) < 2 || len(codecs) > 3 || codecs[0] != "xbstream" || (len(codecs) == 3 && codecs[2] != "age") {
		return "", fmt.Errorf("codec chain %q is not xbstream, a compression, and optionally age", codecs)
	}
	return CompressionExt(codecs[1], len(codecs) == 3)
}

// CompressionExt is the data object's name suffix for compression c,
// with ".age" when encrypted; unknown compressions are an error.
func CompressionExt(c string, encrypted bool) (string, error) {
	if !stream.ValidCodec(c) {
		return "", fmt.Errorf("unknown compression %q", c)
	}
	if encrypted {
		return "." + c + ".age", nil
	}
	return "." + c, nil
}

// IsHexSHA256 reports whether s is a SHA-256 in hex (64 digits).
func IsHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Encrypted reports whether the data is age-encrypted.
func (m *Manifest) Encrypted() bool {
	for _, c := range m.Codecs {
		if c == "age" {
			return true
		}
	}
	return false
}
