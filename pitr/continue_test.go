package pitr

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/binlog"
)

const goodFP = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func goodMarkerJSON() string {
	return `{"version":1,"state":"done","backup":"20261126T120000Z-full","lineage":"0e5f6b3c-0000-11ee-8000-000000000001","domain":7,` +
		`"reached_seq":41,"target":"before GTID 7-11-42","last_commit":"2026-11-26T12:01:02Z","archive_position":"node1 mysql-bin.000003:1234",` +
		`"replay":"applier","fingerprint":"` + goodFP + `","written":"2026-11-26T12:05:00Z"}`
}

func TestParseMarker(t *testing.T) {
	good := goodMarkerJSON()
	for _, tc := range []struct {
		name, data, err string
	}{
		{"good", good, ""},
		{"continuing", strings.Replace(good, `"done"`, `"continuing"`, 1), ""},
		{"empty", "", "not a marker"},
		{"garbage", "\x00\x01binary", "not a marker"},
		{"array", "[]", "not a marker"},
		{"trailing data", good + "{}", "data after"},
		{"unknown field", strings.Replace(good, `"version":1`, `"version":1,"extra":true`, 1), "unknown field"},
		{"wrong version", strings.Replace(good, `"version":1`, `"version":2`, 1), "version 2"},
		{"bad state", strings.Replace(good, `"done"`, `"started"`, 1), "state"},
		{"no lineage", strings.Replace(good, `"lineage":"0e5f6b3c-0000-11ee-8000-000000000001"`, `"lineage":""`, 1), "lineage"},
		{"bad replay", strings.Replace(good, `"applier"`, `"magic"`, 1), "replay mode"},
		{"short fingerprint", strings.Replace(good, goodFP, "sha256:00", 1), "fingerprint"},
		{"non-hex fingerprint", strings.Replace(good, goodFP, "sha256:"+strings.Repeat("z", 64), 1), "fingerprint"},
		{"negative seq", strings.Replace(good, `"reached_seq":41`, `"reached_seq":-1`, 1), "not a marker"},
		{"huge", strings.Repeat(" ", maxMarkerSize+1), "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMarker([]byte(tc.data))
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.Reached != 41 || m.Domain != 7 || m.Fingerprint != goodFP {
					t.Fatalf("parsed %+v", m)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want an error with %q", err, tc.err)
			}
		})
	}
}

func FuzzParseMarker(f *testing.F) {
	f.Add([]byte(goodMarkerJSON()))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMarker(data)
		if err != nil {
			return
		}
		// What parses survives a round trip.
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseMarker(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if m2.Fingerprint != m.Fingerprint || m2.Reached != m.Reached || m2.State != m.State {
			t.Fatalf("round trip changed %+v to %+v", m, m2)
		}
	})
}

// TestFingerprint: any change to a file (content, size, time, a new or
// removed file) changes it; the marker itself, renaming the directory and
// changing modes do not.
func TestFingerprint(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	write("ibdata1", "pages")
	write("db/t.ibd", "rows")
	fp := func() string {
		t.Helper()
		s, err := Fingerprint(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := fp()
	if !validFingerprint(base) {
		t.Fatalf("fingerprint %q", base)
	}
	if err := writeMarker(dir, &Marker{State: MarkerContinuing, BackupID: "b", Lineage: "l", Replay: ReplayApplier, Fingerprint: goodFP}); err != nil {
		t.Fatal(err)
	}
	// A mount point's lost+found and a restore staged inside the target.
	for _, d := range []string{"lost+found", ".gosst-restore-123/data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "ibdata1"), 0o640); err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(parent, "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	dir = moved
	if got := fp(); got != base {
		t.Fatal("the marker, lost+found, a staging directory, a mode change or a rename changed the fingerprint")
	}
	for _, change := range []func(){
		func() { write("db/t.ibd", "more rows") },
		func() {
			later := at.Add(time.Nanosecond)
			if err := os.Chtimes(filepath.Join(dir, "ibdata1"), later, later); err != nil {
				t.Fatal(err)
			}
		},
		func() { write("ddl_recovery.log", "") },
		func() { os.Remove(filepath.Join(dir, "db/t.ibd")) },
	} {
		before := fp()
		change()
		if fp() == before {
			t.Fatal("a change to the files kept the fingerprint")
		}
	}
	// Not seen: a rewrite of equal size that also puts the old
	// modification time back. A server start does not do that.
}

func TestForward(t *testing.T) {
	last := time.Date(2026, 11, 26, 12, 1, 2, 0, time.UTC)
	gtidMarker := &Marker{Domain: 7, Reached: 41, Target: "before GTID 7-11-42", LastCommit: last}
	timeMarker := &Marker{Domain: 7, Reached: 41, Target: "before 2026-11-26T12:01:05Z", LastCommit: last, TargetTime: last.Add(3 * time.Second)}
	g := func(seq uint64) PITROptions { return PITROptions{GTID: &binlog.GTID{Domain: 7, Server: 11, Seq: seq}} }
	at := func(d time.Duration) PITROptions { return PITROptions{Time: last.Add(d)} }
	for _, tc := range []struct {
		name string
		m    *Marker
		o    PITROptions
		err  string
	}{
		{"gtid forward", gtidMarker, g(43), ""},
		{"gtid same point", gtidMarker, g(42), "the same point"},
		{"gtid backward", gtidMarker, g(30), "before it"},
		{"gtid reached itself", gtidMarker, g(41), "before it"},
		{"gtid other domain", gtidMarker, PITROptions{GTID: &binlog.GTID{Domain: 0, Server: 1, Seq: 99}}, "not in the archived domain 7"},
		{"time after last commit", gtidMarker, at(time.Second), ""},
		{"time at last commit second", gtidMarker, at(0), "commit second"},
		{"time before last commit", gtidMarker, at(-time.Hour), "commit second"},
		{"time after time target", timeMarker, at(4 * time.Second), ""},
		{"time equal to time target", timeMarker, at(3 * time.Second), "the same point"},
		{"time before time target", timeMarker, at(2 * time.Second), "before it"},
		{"gtid after time target", timeMarker, g(43), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := forward(tc.m, tc.o)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want an error with %q", err, tc.err)
			}
			if !strings.Contains(err.Error(), tc.m.Target) {
				t.Fatalf("the error does not name what the directory holds (%s): %v", tc.m.Target, err)
			}
		})
	}
}

// TestContinueLocked: a second --continue on a directory another one
// holds is refused.
func TestContinueLocked(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	_, err = Continue(context.Background(), &Archive{}, PITROptions{
		RestoreOptions: backup.RestoreOptions{TargetDir: dir}, GTID: &binlog.GTID{Domain: 7, Server: 11, Seq: 50}})
	if err == nil || !strings.Contains(err.Error(), "another --continue is running") {
		t.Fatalf("got %v", err)
	}
	unlock()
	if _, err = Continue(context.Background(), &Archive{}, PITROptions{
		RestoreOptions: backup.RestoreOptions{TargetDir: dir}, GTID: &binlog.GTID{Domain: 7, Server: 11, Seq: 50}}); err == nil || !strings.Contains(err.Error(), "not a gosst PITR result") {
		t.Fatalf("after unlock: got %v", err)
	}
}

// TestContinueRefuses: the refusals that need no archive, each leaving the
// directory as it was.
func TestContinueRefuses(t *testing.T) {
	mk := func(t *testing.T, m *Marker) string {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "ibdata1"), []byte("pages"), 0o600); err != nil {
			t.Fatal(err)
		}
		if m != nil {
			if err := writeMarker(dir, m); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	done := func() *Marker {
		return &Marker{State: MarkerDone, BackupID: "b1", Lineage: "lin", Domain: 7, Reached: 41, Target: "before GTID 7-11-42", Replay: ReplayApplier}
	}
	for _, tc := range []struct {
		name   string
		marker *Marker
		change func(dir string)
		seq    uint64
		err    string
	}{
		{"no marker", nil, nil, 50, "is not a gosst PITR result"},
		{"garbage marker", nil, func(dir string) {
			os.WriteFile(filepath.Join(dir, MarkerFile), []byte("{not json"), 0o600)
		}, 50, "not a usable gosst PITR result"},
		{"started as a server", done(), func(dir string) {
			os.WriteFile(filepath.Join(dir, "ddl_recovery.log"), nil, 0o600)
		}, 50, "was started as a server"},
		{"interrupted continue", &Marker{State: MarkerContinuing, BackupID: "b1", Lineage: "lin", Domain: 7, Reached: 41,
			Target: "before GTID 7-11-42", ContinuingTo: "before GTID 7-11-60", Replay: ReplayApplier, Fingerprint: goodFP}, nil, 50, "did not finish"},
		{"backward", done(), nil, 30, "only moves forward"},
		{"same point", done(), nil, 42, "only moves forward"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := mk(t, tc.marker)
			if tc.change != nil {
				tc.change(dir)
			}
			before, _ := os.ReadFile(filepath.Join(dir, MarkerFile))
			fp, err := Fingerprint(dir)
			if err != nil {
				t.Fatal(err)
			}
			// No store: a refusal must come before the archive is read.
			_, err = Continue(context.Background(), &Archive{}, PITROptions{
				RestoreOptions: backup.RestoreOptions{TargetDir: dir}, GTID: &binlog.GTID{Domain: 7, Server: 11, Seq: tc.seq}})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want an error with %q", err, tc.err)
			}
			after, _ := os.ReadFile(filepath.Join(dir, MarkerFile))
			fp2, _ := Fingerprint(dir)
			if string(after) != string(before) || fp2 != fp {
				t.Fatal("a refused --continue changed the directory")
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".data.gosst-continue-*"))
			if len(left) != 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
}
