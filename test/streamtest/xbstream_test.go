package streamtest

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/gosst/gosst/stream/xbstream"
)

func mkdir(t *testing.T, name string) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(d, 0o750); err != nil {
		t.Fatal(err)
	}
	return d
}

// A real mariabackup stream extracts with our Extractor to the same tree
// as with mbstream -x.
func TestRealBackupExtractsLikeMbstream(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs the real backup TestMain takes from a cluster")
	}
	ours, theirs := mkdir(t, "ours"), mkdir(t, "mbstream")
	f, err := os.Open(backup)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := xbstream.Extract(context.Background(), f, ours, xbstream.ExtractOptions{Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := os.Open(backup)
	defer f2.Close()
	mbstreamExtract(t, f2, theirs)
	assertSameTree(t, theirs, ours)
	for _, want := range []string{"ibdata1", "shop/orders.frm", "shop/audit.MAD", "shop/legacy.MYD", "xtrabackup_checkpoints", "xtrabackup_galera_info"} {
		if _, err := os.Stat(filepath.Join(ours, want)); err != nil {
			t.Errorf("backup lacks %s: %v\nhas: %v", want, err, keys(tree(t, ours)))
		}
	}
	t.Logf("extracted %d files, %d bytes", st.Files, st.Bytes)
}

// A tree packed by our Writer extracts byte-identically with mbstream -x.
func TestOurWriterExtractsWithMbstream(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs the real backup TestMain takes from a cluster")
	}
	src := mkdir(t, "src")
	f, err := os.Open(backup)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := xbstream.Extract(context.Background(), f, src, xbstream.ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	var packed bytes.Buffer
	w := xbstream.NewWriter(&packed)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		_, err = w.WriteFile(filepath.ToSlash(rel), in, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	dst := mkdir(t, "dst")
	mbstreamExtract(t, io.Reader(&packed), dst)
	assertSameTree(t, src, dst)
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
