// Package verify proves that backups restore: it re-reads every stored
// object against the manifest's sizes and hashes, and can restore a backup
// into a scratch directory, start a throwaway mariadbd on it (wsrep off,
// no network) and CHECK every table the manifest lists.
package verify

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/storage/backend"
)

// Objects re-reads every object of m and compares size and SHA-256 with
// the manifest. The error names the first damaged or missing object.
func Objects(ctx context.Context, cat *backup.Catalog, m *backup.Manifest) error {
	for _, o := range m.Objects {
		rc, err := cat.Store.Get(ctx, o.Key, 0, -1)
		if errors.Is(err, backend.ErrNotExist) {
			return fmt.Errorf("object %s is missing", o.Key)
		}
		if err != nil {
			return fmt.Errorf("read object %s: %w", o.Key, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("read object %s: %w", o.Key, err)
		}
		if n != o.Size {
			return fmt.Errorf("object %s is %d bytes, the manifest says %d", o.Key, n, o.Size)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != o.SHA256 {
			return fmt.Errorf("object %s has SHA-256 %s…, the manifest says %s…", o.Key, got[:16], o.SHA256[:16])
		}
	}
	return nil
}

// RestoreTestOptions configures RestoreTest.
type RestoreTestOptions struct {
	backup.RestoreOptions
	// ScratchDir is where the throwaway datadir goes (default os.TempDir()).
	ScratchDir string
	// Mariadbd is the server binary (default /usr/sbin/mariadbd).
	Mariadbd string
}

// TableResult is the CHECK TABLE verdict for one table.
type TableResult struct {
	Table  string `json:"table"`
	Status string `json:"status"` // "OK" or the server's message
}

// RestoreTest restores m into a scratch directory, starts mariadbd on it
// and runs CHECK TABLE on every table the manifest lists. It removes the
// scratch directory afterwards. The error says what failed; the table
// results are returned either way.
func RestoreTest(ctx context.Context, cat *backup.Catalog, m *backup.Manifest, o RestoreTestOptions) ([]TableResult, error) {
	scratch, err := os.MkdirTemp(o.ScratchDir, "gosst-verify-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	ro := o.RestoreOptions
	ro.TargetDir = filepath.Join(scratch, "data")
	ro.Force = false
	ro.Galera = false
	if _, err := backup.Restore(ctx, cat, m.ID, ro); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	srv, err := mariadb.StartScratch(ctx, mariadb.ScratchOptions{DataDir: ro.TargetDir, Mariadbd: o.Mariadbd})
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	db, err := srv.DB()
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var results []TableResult
	var bad []string
	for _, t := range m.Tables {
		name := fmt.Sprintf("`%s`.`%s`", strings.ReplaceAll(t.Schema, "`", "``"), strings.ReplaceAll(t.Name, "`", "``"))
		status, err := checkTable(ctx, db, name)
		if err != nil {
			status = err.Error()
		}
		results = append(results, TableResult{Table: t.Schema + "." + t.Name, Status: status})
		if status != "OK" {
			bad = append(bad, t.Schema+"."+t.Name+": "+status)
		}
	}
	if len(bad) > 0 {
		return results, fmt.Errorf("%d of %d tables failed CHECK TABLE: %s", len(bad), len(m.Tables), strings.Join(bad, "; "))
	}
	return results, nil
}

func checkTable(ctx context.Context, db *sql.DB, name string) (string, error) {
	rows, err := db.QueryContext(ctx, "CHECK TABLE "+name)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	status := ""
	for rows.Next() {
		var tbl, op, typ, text string
		if err := rows.Scan(&tbl, &op, &typ, &text); err != nil {
			return "", err
		}
		if strings.EqualFold(typ, "status") {
			status = text
		} else if strings.EqualFold(typ, "error") {
			return text, nil
		}
	}
	return status, rows.Err()
}
