// Package backup takes, catalogues and restores physical backups of a
// Galera node: mariabackup's xbstream, sealed and optionally encrypted by
// the stream package, stored through a storage backend, described by a
// manifest that is written last. A backup without its manifest does not
// exist.
package backup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
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
	if len(m.Objects) == 0 {
		return bad("no objects")
	}
	for _, o := range m.Objects {
		if o.Key == "" || o.Size < 0 || len(o.SHA256) != 64 || len(o.PlainSHA256) != 64 || o.PlainSize < 0 {
			return bad("object %q is incomplete", o.Key)
		}
	}
	if m.LSN.To < m.LSN.From {
		return bad("LSN range %d..%d", m.LSN.From, m.LSN.To)
	}
	return nil
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
