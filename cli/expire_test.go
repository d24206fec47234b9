package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/pitr"
	"github.com/gosst/gosst/storage/local"
)

// expireStore writes a full backup 40 days old with an incremental 39
// days old, and a full 30 days old, into a local directory storage.
func expireStore(t *testing.T) (dir string, ids []string) {
	t.Helper()
	ctx := context.Background()
	dir = t.TempDir()
	be, err := local.New(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	parent := ""
	for i, b := range []struct {
		typ string
		age time.Duration
	}{{backup.TypeFull, 40 * 24 * time.Hour}, {backup.TypeIncremental, 39 * 24 * time.Hour}, {backup.TypeFull, 30 * 24 * time.Hour}} {
		id := backup.NewID(now.Add(-b.age), uint32(i+1))
		m := &backup.Manifest{Format: backup.ManifestFormat, ID: id, Type: b.typ, StartTime: now.Add(-b.age - time.Minute), EndTime: now.Add(-b.age),
			ToolVersion: "test", Codecs: []string{"xbstream", "zstd"},
			Objects: []backup.Object{{Key: "backups/" + id + "/data.xbstream.zstd", Size: 3, SHA256: strings.Repeat("a", 64), PlainSize: 5, PlainSHA256: strings.Repeat("b", 64)}}}
		if b.typ == backup.TypeIncremental {
			m.Parent = parent
		}
		data, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := be.Put(ctx, m.Objects[0].Key, strings.NewReader("abc"), 3); err != nil {
			t.Fatal(err)
		}
		if err := be.Put(ctx, "backups/"+id+"/manifest.json", bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		parent = id
		ids = append(ids, id)
	}
	return dir, ids
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	var fs []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			fs = append(fs, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(fs)
	return fs
}

func TestExpireRefusedOrInvalid(t *testing.T) {
	dir, _ := expireStore(t)
	before := files(t, dir)
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no rule keeps anything"},
		{[]string{"--keep-days", "7"}, "would delete all 3 backups"},
		{[]string{"--keep-days", "-1"}, "negative"},
		{[]string{"--keep-full", "-3"}, "negative"},
		{[]string{"--pitr-window", "a week"}, "not a period"},
		{[]string{"--pitr-window", "-7d"}, "not a period"},
		{[]string{"--keep-full", "two"}, "invalid argument"},
	} {
		out, errOut, code := run(t, append([]string{"expire", "--storage", dir}, c.args...)...)
		if code != ExitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", c.args, code, errOut, ExitUsage, c.want)
		}
		if strings.Contains(out, "deleted ") && !strings.Contains(out, "nothing deleted") {
			t.Errorf("%q: output claims deletions:\n%s", c.args, out)
		}
		if got := files(t, dir); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Fatalf("%q deleted files: %v", c.args, got)
		}
	}
	// The refused plan is printed as a dry run.
	out, _, _ := run(t, "expire", "--storage", dir, "--keep-days", "7")
	if !strings.Contains(out, "would delete") || !strings.Contains(out, "summary (dry run, nothing deleted): 0 backups kept, 3 to delete") {
		t.Fatalf("refused plan:\n%s", out)
	}
}

func TestExpireDryRunThenDelete(t *testing.T) {
	dir, ids := expireStore(t)
	before := files(t, dir)
	out, errOut, code := run(t, "expire", "--storage", dir, "--keep-full", "1", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := files(t, dir); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("dry run deleted: %v", got)
	}
	for _, want := range []string{"would delete", ids[0], ids[1], "keep-full: one of the 1 newest full backups", "summary (dry run, nothing deleted): 1 backups kept, 2 to delete"} {
		if !strings.Contains(out, want) {
			t.Fatalf("dry run output lacks %q:\n%s", want, out)
		}
	}

	out, errOut, code = run(t, "expire", "--storage", dir, "--keep-full", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var plan pitr.RetentionPlan
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(plan.Backups) != 3 || !plan.Backups[0].Deleted || !plan.Backups[1].Deleted || !plan.Backups[2].Keep || plan.Backups[2].Deleted || plan.DryRun {
		t.Fatalf("plan %s", out)
	}
	want := []string{"backups/" + ids[2] + "/data.xbstream.zstd", "backups/" + ids[2] + "/manifest.json"}
	if got := files(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("left %v, want %v", got, want)
	}
	out, _, code = run(t, "list", "--storage", dir)
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, ids[2]) {
		t.Fatalf("list after expire:\n%s", out)
	}
}
