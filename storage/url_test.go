package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosst/gosst/storage"
)

func TestParseURL(t *testing.T) {
	good := []struct {
		raw  string
		kind storage.Kind
		path string
	}{
		{"/var/backups/galera", storage.KindLocal, "/var/backups/galera"},
		{"backups", storage.KindLocal, "backups"},
		{"./backup:2026", storage.KindLocal, "./backup:2026"},
		{"/srv/s3:/x", storage.KindLocal, "/srv/s3:/x"},
		{"2026-11:x", storage.KindLocal, "2026-11:x"}, // not scheme syntax
		{"s3/bucket", storage.KindLocal, "s3/bucket"}, // one slash: a directory named s3
		{"file:///var/backups/galera", storage.KindLocal, "/var/backups/galera"},
		{"FILE:///var/b", storage.KindLocal, "/var/b"},
		{"file://localhost/var/b", storage.KindLocal, "/var/b"},
		{"s3://bucket/prefix?region=eu-west-1", storage.KindS3, ""},
		{"S3://bucket", storage.KindS3, ""},
		{"minio://127.0.0.1:9000/b/p?tls=false", storage.KindMinio, ""},
	}
	for _, tc := range good {
		loc, err := storage.ParseURL(tc.raw)
		if err != nil || loc.Kind != tc.kind || loc.Path != tc.path {
			t.Errorf("ParseURL(%q) = %+v, %v; want kind %s path %q", tc.raw, loc, err, tc.kind, tc.path)
		}
	}
	bad := []struct{ raw, want string }{
		{"", "empty URL"},
		{"s3:/bucket", `did you mean "s3://bucket"`},
		{"s3:bucket/prefix", `did you mean "s3://bucket/prefix"`},
		{"S3:bucket", `did you mean "s3://bucket"`},
		{"s3:", `did you mean "s3://"`},
		{"s3//bucket/p", `did you mean "s3://bucket/p"`},
		{"minio:/host:9000/b", `did you mean "minio://host:9000/b"`},
		{"minio:host:9000/b", `did you mean "minio://host:9000/b"`},
		{"file:/var/backups", `did you mean "file:///var/backups"`},
		{"file:var", `did you mean "file:///var"`},
		{"file:", `did you mean "file:///"`},
		{"file://", "without a path"},
		{"file:///x?y=1", "no parameters"},
		{"file:///x#frag", "fragment"},
		{"gs://bucket", `unknown URL scheme "gs"`},
		{"gs:/bucket", `unknown scheme "gs:"`},
		{"backuphost:/var/backups", `unknown scheme "backuphost:"`},
		{"backup:2026", "./backup:2026"},
		{" /var/backups", "white space"},
		{"s3://b\n", "white space"},
		{"/var/\x01", "control characters"},
	}
	for _, tc := range bad {
		loc, err := storage.ParseURL(tc.raw)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseURL(%q) = %+v, %v; want an error containing %q", tc.raw, loc, err, tc.want)
		}
	}
}

// FuzzParseURL: never panics, and never takes for a local directory
// something that starts like a URL of a scheme gosst knows.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"/var/backups/galera", "file:///x", "s3:/b", "s3//b", "S3:b", "minio://h:1/b/p?tls=false",
		"file://h/x", "gs://b", "./a:b", "a:b", "s3://%zz", "", " ", "file:", "s3://u:p@b/p", "minio:/h/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		loc, err := storage.ParseURL(raw)
		if err != nil {
			return
		}
		if loc.Kind == storage.KindLocal {
			l := strings.ToLower(raw)
			for _, s := range []string{"s3:", "minio:", "s3//", "minio//"} {
				if strings.HasPrefix(l, s) {
					t.Fatalf("ParseURL(%q) = local directory %q", raw, loc.Path)
				}
			}
			if strings.HasPrefix(l, "file:") && !strings.HasPrefix(l, "file://") {
				t.Fatalf("ParseURL(%q) = local directory %q", raw, loc.Path)
			}
			if loc.Path == "" {
				t.Fatalf("ParseURL(%q): local with an empty path", raw)
			}
		} else if loc.URL == nil && loc.Kind != storage.KindLocal {
			t.Fatalf("ParseURL(%q): %s without URL", raw, loc.Kind)
		}
	})
}

// TestOpenNeverCreates: Open without Create (what list, show, verify and
// restore use) leaves a missing directory missing and says so; a
// mistyped URL creates nothing either; with Create only the last directory
// is made.
func TestOpenNeverCreates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Chdir(dir)
	missing := filepath.Join(dir, "galera")
	for _, u := range []string{missing, "file://" + missing} {
		_, err := storage.Open(ctx, u, storage.Options{})
		if !errors.Is(err, storage.ErrNoStorage) || !strings.Contains(err.Error(), missing) {
			t.Errorf("Open(%q) of a missing directory: %v; want ErrNoStorage naming it", u, err)
		}
		if errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Open(%q): a missing store must not look like a missing object: %v", u, err)
		}
	}
	for _, u := range []string{"s3:/bucket", "s3:bucket", "minio:/h:1/b", "file:galera", "s3//bucket"} {
		if _, err := storage.Open(ctx, u, storage.Options{Create: true}); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("opening left %d entries behind in %s (first %s)", len(ents), dir, ents[0].Name())
	}
	// Create makes the last directory only, mode 0700.
	nested := filepath.Join(dir, "mnt", "backups")
	if _, err := storage.Open(ctx, nested, storage.Options{Create: true}); !errors.Is(err, storage.ErrNoStorage) || !strings.Contains(err.Error(), "parent directory") {
		t.Errorf("Open with Create under a missing parent: %v; want ErrNoStorage about the parent", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "mnt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Create made the missing parent: %v", err)
	}
	be, err := storage.Open(ctx, missing, storage.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	be.Close()
	fi, err := os.Stat(missing)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("Create: %v, %v", fi, err)
	}
	if be, err = storage.Open(ctx, missing, storage.Options{}); err != nil {
		t.Fatalf("Open of the existing directory: %v", err)
	}
	be.Close()
	f := filepath.Join(dir, "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.Open(ctx, f, storage.Options{Create: true}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Open of a file: %v", err)
	}
}
