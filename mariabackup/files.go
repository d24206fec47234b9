package mariabackup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The metadata files mariabackup writes into a backup. MariaDB 11.x
// renamed the xtrabackup_* files to mariadb_backup_*; both are read.
var (
	// CheckpointsFiles: backup_type and the InnoDB LSNs ("key = value").
	CheckpointsFiles = []string{"xtrabackup_checkpoints", "mariadb_backup_checkpoints"}
	// GaleraInfoFiles: the Galera position of the snapshot ("uuid:seqno
	// domain" on line 1), in the order the stock SST script reads them;
	// mariabackup --galera-info writes all it writes from the same state.
	GaleraInfoFiles = []string{"donor_galera_info", "xtrabackup_galera_info", "mariadb_backup_galera_info"}
	// BinlogInfoFiles: "file<TAB>position[<TAB>gtid]".
	BinlogInfoFiles = []string{"xtrabackup_binlog_info", "mariadb_backup_binlog_info"}
	// InfoFiles: tool and server versions ("key = value").
	InfoFiles = []string{"xtrabackup_info", "mariadb_backup_info"}
)

// KeyValues parses "key = value" lines (xtrabackup_checkpoints,
// xtrabackup_info); lines without "=" are ignored, a later key wins.
func KeyValues(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

// Checkpoints is xtrabackup_checkpoints: backup_type ("full-backuped",
// "incremental", after prepare "log-applied" or "full-prepared"),
// from_lsn, to_lsn, last_lsn, compact.
type Checkpoints map[string]string

// ParseCheckpoints parses the text of xtrabackup_checkpoints.
func ParseCheckpoints(s string) Checkpoints { return Checkpoints(KeyValues(s)) }

// Type is backup_type.
func (c Checkpoints) Type() string { return c["backup_type"] }

// LSN parses one of the LSN keys (from_lsn, to_lsn, last_lsn).
func (c Checkpoints) LSN(key string) (int64, error) {
	n, err := strconv.ParseInt(c[key], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("xtrabackup_checkpoints: %s %q", key, c[key])
	}
	return n, nil
}

// ReadCheckpoints reads the checkpoints file of the backup in dir under
// either name. A missing or empty file is an error.
func ReadCheckpoints(dir string) (Checkpoints, error) {
	name, b, err := readFirst(dir, CheckpointsFiles)
	if err != nil {
		return nil, err
	}
	c := ParseCheckpoints(string(b))
	if len(c) == 0 {
		return nil, fmt.Errorf("%s is empty", name)
	}
	return c, nil
}

// ReadGaleraInfo returns the name and line 1 of the backup's galera info
// file (the first of GaleraInfoFiles present in dir). With none present
// the error wraps os.ErrNotExist.
func ReadGaleraInfo(dir string) (name, line string, err error) {
	name, b, err := readFirst(dir, GaleraInfoFiles)
	if err != nil {
		return "", "", err
	}
	return name, GaleraInfoLine(string(b)), nil
}

// GaleraInfoLine is the position line of a galera info file's text.
func GaleraInfoLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// BinlogInfo is xtrabackup_binlog_info: the binary log coordinate of the
// snapshot. GTID is @@gtid_current_pos, possibly several domains, and
// empty on a Galera node whose server_id differs from the cluster's GTIDs.
type BinlogInfo struct {
	File     string
	Position int64
	GTID     string
}

// ParseBinlogInfo parses "file<TAB>position[<TAB>gtid]"; missing or
// malformed fields are left empty.
func ParseBinlogInfo(s string) BinlogInfo {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	f := strings.Split(line, "\t")
	var b BinlogInfo
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

// ReadBinlogInfo reads the backup's binlog info file in dir under either
// name.
func ReadBinlogInfo(dir string) (BinlogInfo, error) {
	_, b, err := readFirst(dir, BinlogInfoFiles)
	if err != nil {
		return BinlogInfo{}, err
	}
	return ParseBinlogInfo(string(b)), nil
}

// readFirst reads the first of names present in dir. With none present it
// returns the first name's not-exist error.
func readFirst(dir string, names []string) (string, []byte, error) {
	var first error
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if errors.Is(err, os.ErrNotExist) {
			if first == nil {
				first = err
			}
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return n, b, nil
	}
	return "", nil, first
}
