package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosst/gosst/ist"
)

const testUUID = "6b94087a-e947-11f1-b506-2f33047b60b8"

// cleanGrastate is grastate.dat as galera 26.4 writes it on a clean stop.
func cleanGrastate(seqno string, safe string) string {
	return "# GALERA saved state\nversion: 2.1\nuuid:    " + testUUID + "\nseqno:   " + seqno + "\nsafe_to_bootstrap: " + safe + "\n"
}

// localNodeDir makes a stopped node's datadir (a clean grastate.dat, so no
// server is run) and its option file.
func localNodeDir(t *testing.T, seqno, safe string) (datadir, cnf string) {
	t.Helper()
	dir := t.TempDir()
	datadir = filepath.Join(dir, "data")
	if err := os.Mkdir(datadir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(datadir, "grastate.dat"), []byte(cleanGrastate(seqno, safe)), 0o660); err != nil {
		t.Fatal(err)
	}
	cnf = filepath.Join(dir, "my.cnf")
	if err := os.WriteFile(cnf, []byte("[mysqld]\nwsrep_node_name=local\nwsrep_cluster_address=gcomm://a,b,c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return datadir, cnf
}

func writeNodeJSON(t *testing.T, st ist.NodeState) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), st.Name+".json")
	data, _ := json.Marshal(st)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func remote(name string, seqno int64) ist.NodeState {
	return ist.NodeState{Name: name, Host: name, DataDir: "/var/lib/mysql", UUID: testUUID, Seqno: seqno, Source: ist.SourceWsrepRecover}
}

func TestBootstrapApplyLocal(t *testing.T) {
	datadir, cnf := localNodeDir(t, "41", "0")
	a, b := writeNodeJSON(t, remote("a", 30)), writeNodeJSON(t, remote("b", 40))
	host, _ := os.Hostname()
	// The local node's own JSON, as copied around, agrees and is dropped.
	self := writeNodeJSON(t, ist.NodeState{Name: "local", Host: host, DataDir: datadir, UUID: testUUID, Seqno: 41, Source: ist.SourceGrastate})
	args := []string{"bootstrap", "--datadir", datadir, "--defaults-file", cnf, "--from", a, "--from", b, "--from", self}

	out, errOut, code := run(t, args...)
	if code != 0 || !strings.Contains(out, "Bootstrap from local") || !strings.Contains(out, "--apply") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if got, _ := os.ReadFile(filepath.Join(datadir, "grastate.dat")); string(got) != cleanGrastate("41", "0") {
		t.Fatalf("changed without --apply: %q", got)
	}
	out, errOut, code = run(t, append(args, "--apply")...)
	if code != 0 || !strings.Contains(out, "done: safe_to_bootstrap: 1 set") {
		t.Fatalf("--apply: exit %d\n%s%s", code, out, errOut)
	}
	if got, _ := os.ReadFile(filepath.Join(datadir, "grastate.dat")); string(got) != cleanGrastate("41", "1") {
		t.Fatalf("after --apply: %q", got)
	}
	entries, _ := os.ReadDir(datadir)
	if len(entries) != 1 {
		t.Fatalf("left behind in the datadir: %v", entries)
	}
}

func TestBootstrapRefusals(t *testing.T) {
	datadir, cnf := localNodeDir(t, "41", "0")
	host, _ := os.Hostname()
	ahead := writeNodeJSON(t, remote("ahead", 50))
	behind := writeNodeJSON(t, remote("behind", 30))
	stale := writeNodeJSON(t, ist.NodeState{Name: "local", Host: host, DataDir: datadir, UUID: testUUID, Seqno: 39, Source: ist.SourceGrastate})
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"--apply for a node on another host", []string{"--datadir", datadir, "--defaults-file", cnf, "--from", ahead, "--from", behind, "--apply"}, "not a --datadir on this host"},
		{"node missing", []string{"--datadir", datadir, "--defaults-file", cnf, "--from", behind, "--apply"}, "2 of 3 nodes given"},
		{"local JSON disagrees with the datadir", []string{"--datadir", datadir, "--defaults-file", cnf, "--from", stale, "--from", behind, "--from", ahead}, "changed since the file was written"},
		{"datadir missing", []string{"--datadir", datadir + ".nope", "--defaults-file", cnf, "--from", behind, "--from", ahead}, "every node's position is needed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, append([]string{"bootstrap"}, tt.args...)...)
			if code != ExitFailure || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, want %d with %q\n%s%s", code, ExitFailure, tt.want, out, errOut)
			}
			if got, _ := os.ReadFile(filepath.Join(datadir, "grastate.dat")); string(got) != cleanGrastate("41", "0") {
				t.Fatalf("grastate.dat changed: %q", got)
			}
		})
	}
	if _, errOut, code := run(t, "bootstrap", "--node", "root@tcp(127.0.0.1:1)/", "--apply"); code != ExitUsage {
		t.Fatalf("--node with --apply: exit %d %s", code, errOut)
	}
}

// The file changed between the decision and --apply (a node started and
// stopped meanwhile): nothing is written.
func TestApplyRefusesChangedGrastate(t *testing.T) {
	datadir, cnf := localNodeDir(t, "41", "0")
	for _, tt := range []struct {
		name   string
		chosen ist.NodeState
	}{
		{"other seqno", ist.NodeState{DataDir: datadir, UUID: testUUID, Seqno: 40, Source: ist.SourceGrastate}},
		{"recovered after a crash, file now clean", ist.NodeState{DataDir: datadir, UUID: testUUID, Seqno: 41, Source: ist.SourceWsrepRecover}},
		{"other history", ist.NodeState{DataDir: datadir, UUID: "0c779d86-e950-11f1-8b2a-1e2f3a4b5c6d", Seqno: 41, Source: ist.SourceGrastate}},
	} {
		err := applySafeToBootstrap(tt.chosen, localNode{datadir: datadir, defaultsFile: cnf})
		if err == nil || !strings.Contains(err.Error(), "changed since it was read") {
			t.Errorf("%s: got %v", tt.name, err)
		}
		if got, _ := os.ReadFile(filepath.Join(datadir, "grastate.dat")); string(got) != cleanGrastate("41", "0") {
			t.Fatalf("%s: grastate.dat changed: %q", tt.name, got)
		}
	}
}

// A node whose grastate.dat holds the all-zero UUID (Galera marked its
// state unsafe) reports the position InnoDB recovers, flagged, and is
// never chosen, however far ahead that position is.
func TestRecoverUnsafeState(t *testing.T) {
	datadir, cnf := localNodeDir(t, "-1", "0")
	gs := "# GALERA saved state\nversion: 2.1\nuuid:    " + ist.ZeroUUID + "\nseqno:   -1\nsafe_to_bootstrap: 0\n"
	if err := os.WriteFile(filepath.Join(datadir, "grastate.dat"), []byte(gs), 0o660); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(datadir, "ibdata1"), nil, 0o660); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(t.TempDir(), "mariadbd")
	script := "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --log-error=*) log=\"${a#--log-error=}\";; esac; done\n" +
		"echo '[Note] WSREP: Recovered position: " + testUUID + ":99,7-11-90' > \"$log\"\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "recover", "--datadir", datadir, "--defaults-file", cnf, "--mariadbd", fake, "--json")
	var st ist.NodeState
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || !st.StateUnsafe || st.Seqno != 99 || st.Source != ist.SourceWsrepRecover {
		t.Fatalf("recover: exit %d %+v\n%s%s", code, st, out, errOut)
	}
	other := writeNodeJSON(t, remote("other", 40))
	_, errOut, code = run(t, "bootstrap", "--datadir", datadir, "--defaults-file", cnf, "--mariadbd", fake, "--from", other, "--expect-nodes", "2")
	if code != ExitFailure || !strings.Contains(errOut, "marked its state unsafe") {
		t.Fatalf("bootstrap: exit %d\n%s", code, errOut)
	}
	if got, _ := os.ReadFile(filepath.Join(datadir, "grastate.dat")); string(got) != gs {
		t.Fatalf("grastate.dat changed: %q", got)
	}
}
