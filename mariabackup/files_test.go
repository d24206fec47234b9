package mariabackup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, s := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	cp1011 = "backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 48312\nlast_lsn = 48324\nrecover_binlog_info = 0\n"
	uuid   = "6b94087a-e947-11f1-b506-2f33047b60b8"
)

func TestReadCheckpoints(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		typ     string
		to      int64
		wantErr string
	}{
		{name: "10.11 name", files: map[string]string{"xtrabackup_checkpoints": cp1011}, typ: "full-backuped", to: 48312},
		{name: "11.x name", files: map[string]string{"mariadb_backup_checkpoints": strings.Replace(cp1011, "full-backuped", "log-applied", 1)}, typ: "log-applied", to: 48312},
		{name: "10.11 name wins", files: map[string]string{"xtrabackup_checkpoints": cp1011, "mariadb_backup_checkpoints": "backup_type = incremental\n"}, typ: "full-backuped", to: 48312},
		{name: "missing", files: nil, wantErr: "xtrabackup_checkpoints: no such file"},
		{name: "empty", files: map[string]string{"xtrabackup_checkpoints": "\n"}, wantErr: "xtrabackup_checkpoints is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp, err := ReadCheckpoints(writeFiles(t, tc.files))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if to, err := cp.LSN("to_lsn"); cp.Type() != tc.typ || to != tc.to || err != nil {
				t.Errorf("type %q to_lsn %d %v", cp.Type(), to, err)
			}
		})
	}
	if _, err := ParseCheckpoints("from_lsn = x\n").LSN("from_lsn"); err == nil || err.Error() != `xtrabackup_checkpoints: from_lsn "x"` {
		t.Errorf("bad LSN: %v", err)
	}
}

func TestReadGaleraInfo(t *testing.T) {
	for _, tc := range []struct {
		name             string
		files            map[string]string
		wantName, wantLn string
	}{
		{"donor first", map[string]string{"donor_galera_info": uuid + ":9 0\n", "xtrabackup_galera_info": uuid + ":8 0\n"}, "donor_galera_info", uuid + ":9 0"},
		{"10.11", map[string]string{"xtrabackup_galera_info": uuid + ":8 0\nsecond line\n"}, "xtrabackup_galera_info", uuid + ":8 0"},
		{"11.x", map[string]string{"mariadb_backup_galera_info": uuid + ":7"}, "mariadb_backup_galera_info", uuid + ":7"},
	} {
		n, l, err := ReadGaleraInfo(writeFiles(t, tc.files))
		if err != nil || n != tc.wantName || l != tc.wantLn {
			t.Errorf("%s: %q %q %v", tc.name, n, l, err)
		}
	}
	if _, _, err := ReadGaleraInfo(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("none: %v", err)
	}
}

func TestBinlogInfo(t *testing.T) {
	for in, want := range map[string]BinlogInfo{
		"mariadb-bin.000003\t11810\t0-11-3,7-11-39\n": {"mariadb-bin.000003", 11810, "0-11-3,7-11-39"},
		"mysql-bin.000001\t329\t\n":                   {"mysql-bin.000001", 329, ""},
		"mysql-bin.000001\tx\n":                       {"mysql-bin.000001", 0, ""},
		"":                                            {},
	} {
		if got := ParseBinlogInfo(in); got != want {
			t.Errorf("ParseBinlogInfo(%q) = %+v, want %+v", in, got, want)
		}
	}
	bi, err := ReadBinlogInfo(writeFiles(t, map[string]string{"mariadb_backup_binlog_info": "/var/lib/mysql/b.000002\t4\t0-1-2\n"}))
	if err != nil || bi.File != "/var/lib/mysql/b.000002" {
		t.Errorf("%+v %v", bi, err)
	}
}

// The metadata files come from a backup stream or a donor: untrusted.
func FuzzParseCheckpoints(f *testing.F) {
	f.Add(cp1011)
	f.Add("backup_type=incremental\r\nfrom_lsn= 5 \n=\n")
	f.Fuzz(func(t *testing.T, s string) {
		c := ParseCheckpoints(s)
		for _, k := range []string{"from_lsn", "to_lsn", "last_lsn"} {
			if n, err := c.LSN(k); err == nil && c[k] == "" {
				t.Fatalf("empty %s parsed as %d", k, n)
			}
		}
		for k, v := range c {
			if strings.Contains(k+v, "\n") || k != strings.TrimSpace(k) || v != strings.TrimSpace(v) {
				t.Fatalf("key %q value %q", k, v)
			}
		}
	})
}

func FuzzParseBinlogInfo(f *testing.F) {
	f.Add("mariadb-bin.000003\t11810\t0-11-3,7-11-39\n")
	f.Add("a\tb\tc\td\n\tx")
	f.Fuzz(func(t *testing.T, s string) {
		b := ParseBinlogInfo(s)
		if strings.ContainsAny(b.File+b.GTID, "\n\t") {
			t.Fatalf("%+v", b)
		}
	})
}

func FuzzRedactLine(f *testing.F) {
	f.Add("[00] \t Encryption plugin parameter :  '--file_key_management_filekey=s3cr3t'")
	f.Add("--password=x --token=y")
	f.Fuzz(func(t *testing.T, s string) {
		r := RedactLine(s)
		if RedactLine(r) != r {
			t.Fatalf("not idempotent: %q -> %q", s, r)
		}
	})
}
