package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

const realGrastate = "# GALERA saved state\nversion: 2.1\nuuid:    6b94087a-e947-11f1-b506-2f33047b60b8\nseqno:   125\nsafe_to_bootstrap: 0\n"

func TestWriteFileDurable(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "grastate.dat")
	if err := os.WriteFile(p, []byte(realGrastate), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileDurable(p, []byte("new\n"), 0o660); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(data) != "new\n" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("got %q mode %v", data, fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary file left behind: %v", entries)
	}
	// A directory that cannot take the temporary file: the old file stays.
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o700)
		if err := WriteFileDurable(p, []byte("newer\n"), 0o660); err == nil {
			t.Fatal("want error")
		}
		if data, _ := os.ReadFile(p); string(data) != "new\n" {
			t.Fatalf("old content lost: %q", data)
		}
	}
}

func TestSyncDir(t *testing.T) {
	dir := t.TempDir()
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing directory: got %v", err)
	}
}

func TestFreeBytes(t *testing.T) {
	n, err := FreeBytes(t.TempDir())
	if err != nil || n <= 0 {
		t.Fatalf("got %d, %v", n, err)
	}
	if _, err := FreeBytes(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("missing directory: got %v", err)
	}
}

func TestWriteFileDurableNewFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sst_in_progress")
	if err := WriteFileDurable(p, []byte("receive\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(data) != "receive\n" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("got %q mode %v", data, fi.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary file left behind: %v", entries)
	}
}

func TestWriteFileSync(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "marker")
	for _, tc := range []struct {
		name string
		data string
	}{
		{"new file", "first, longer content\n"},
		{"truncates an existing one", "second\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := WriteFileSync(p, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(p)
			fi, _ := os.Stat(p)
			if string(data) != tc.data || fi.Mode().Perm() != 0o600 {
				t.Fatalf("got %q mode %v", data, fi.Mode())
			}
		})
	}
	if err := WriteFileSync(filepath.Join(dir, "missing", "x"), nil, 0o600); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing directory: %v", err)
	}
}
