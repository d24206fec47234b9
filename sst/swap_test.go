package sst

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/ist"
)

// swapFixture is a datadir with old data, separate InnoDB, undo and Aria
// directories, and a prepared backup in the staging directory.
func swapFixture(t *testing.T) (root, datadir string, l Layout) {
	t.Helper()
	root = t.TempDir()
	datadir = filepath.Join(root, "data")
	l = Layout{DataHome: filepath.Join(root, "ibd"), LogHome: "redo", UndoDir: filepath.Join(root, "undo"), AriaDir: filepath.Join(root, "aria"),
		Binlog: "mysql-bin"}
	files := map[string]string{
		"data/grastate.dat": "# GALERA saved state\nversion: 2.1\nuuid:    " + testUUID + "\nseqno:   17\nsafe_to_bootstrap: 0\n",
		"data/galera.cache": "", "data/node.err": "",
		"data/mysql/db.frm": "old", "data/olddb/t.ibd": "old", "data/olddb2/t.ibd": "old", "data/xtrabackup_galera_info": "old",
		"data/mysql-bin.000001": "old", "data/mysql-bin.index": "./mysql-bin.000001\n",
		"ibd/ibdata1": "old", "data/redo/ib_logfile0": "old", "undo/undo001": "old", "aria/aria_log_control": "old", "aria/aria_log.00000001": "old",
		"data/.gosst-sst/ibdata1": "new", "data/.gosst-sst/ib_logfile0": "new", "data/.gosst-sst/undo001": "new",
		"data/.gosst-sst/aria_log_control": "new", "data/.gosst-sst/aria_log.00000001": "new",
		"data/.gosst-sst/mysql/db.frm": "new", "data/.gosst-sst/db1/t.ibd": "new", "data/.gosst-sst/db2/t.ibd": "new",
		"data/.gosst-sst/db3/t.ibd": "new", "data/.gosst-sst/donor_galera_info": "new",
		"data/.gosst-sst/xtrabackup_checkpoints": "new", "data/.gosst-sst/mysql-bin.000002": "donor",
		"data/.gosst-sst/xtrabackup_binlog_info": "mysql-bin.000002\t4\t0-1-2\n",
	}
	for p, s := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return root, datadir, l
}

// systemState lists the system files (ibdata, redo, undo, Aria) present
// in the layout's directories, as "name=content".
func systemState(t *testing.T, datadir string, l Layout) []string {
	t.Helper()
	var got []string
	for _, dir := range systemDirs(datadir, l) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if isSystemFile(e.Name()) {
				b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
				got = append(got, e.Name()+"="+string(b))
			}
		}
	}
	slices.Sort(got)
	return got
}

// TestSwapNeverLeavesAUsablePosition stops after every swap step and
// checks what a crash there would leave: the marker says "swap",
// grastate.dat has no position, and the system files (from which
// --wsrep-recover reads a position) are either all old and untouched
// (first step only), absent, or (last step) all new with every other new
// entry already in place.
func TestSwapNeverLeavesAUsablePosition(t *testing.T) {
	root, datadir, l := swapFixture(t)
	plan, err := PlanInstall(filepath.Join(datadir, StagingDir), datadir, l)
	if err != nil {
		t.Fatal(err)
	}
	oldSystem := systemState(t, datadir, l)
	newData := []string{"mysql/db.frm", "db1/t.ibd", "db2/t.ibd", "db3/t.ibd", "donor_galera_info", "xtrabackup_checkpoints"}
	var seen []string
	_, err = Swap(datadir, l, plan, func(step string) {
		seen = append(seen, step)
		if b, _ := os.ReadFile(filepath.Join(datadir, InProgressFile)); string(b) != markerSwap {
			t.Errorf("%s: marker %q, want %q", step, b, markerSwap)
		}
		if gs, err := ist.ReadGrastate(filepath.Join(datadir, "grastate.dat")); err != nil || gs.HasPosition() || gs.UUID != ist.ZeroUUID {
			t.Errorf("%s: grastate.dat %+v (%v) still carries a position", step, gs, err)
		}
		sys := systemState(t, datadir, l)
		switch step {
		case StepInvalidated:
			if !slices.Equal(sys, oldSystem) {
				t.Errorf("%s: system files changed before the first destructive step: %v", step, sys)
			}
		case StepSystemInstalled:
			want := []string{"aria_log.00000001=new", "aria_log_control=new", "ib_logfile0=new", "ibdata1=new", "undo001=new"}
			if !slices.Equal(sys, want) {
				t.Errorf("%s: system files %v, want %v", step, sys, want)
			}
			fallthrough
		case StepDataInstalled:
			for _, p := range newData {
				if b, err := os.ReadFile(filepath.Join(datadir, p)); err != nil || string(b) != "new" {
					t.Errorf("%s: %s not installed (%q, %v)", step, p, b, err)
				}
			}
			if step == StepDataInstalled && len(sys) > 0 {
				t.Errorf("%s: system files present before the last step: %v", step, sys)
			}
		default:
			if len(sys) > 0 {
				t.Errorf("%s: system files present mid-swap: %v", step, sys)
			}
		}
		switch step {
		case StepOldHalfRemoved:
			n := 0
			for _, d := range []string{"mysql", "olddb", "olddb2", "xtrabackup_galera_info"} {
				if exists(filepath.Join(datadir, d)) {
					n++
				}
			}
			if n == 0 || n == 4 {
				t.Errorf("%s: %d of 4 old entries left, want some", step, n)
			}
		case StepNewHalfInstalled:
			n := 0
			for _, p := range newData {
				if exists(filepath.Join(datadir, p)) {
					n++
				}
			}
			if n == 0 || n == len(newData) {
				t.Errorf("%s: %d of %d new entries installed, want some", step, n, len(newData))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, SwapSteps) {
		t.Errorf("steps %v, want %v", seen, SwapSteps)
	}
	for _, gone := range []string{"data/olddb", "data/olddb2", "data/mysql-bin.000001", "data/mysql-bin.index", "data/mysql-bin.000002"} {
		if exists(filepath.Join(root, gone)) {
			t.Errorf("%s still there after the swap", gone)
		}
	}
	for _, kept := range []string{"data/galera.cache", "data/node.err", "data/grastate.dat"} {
		if !exists(filepath.Join(root, kept)) {
			t.Errorf("%s removed by the swap", kept)
		}
	}
}

// TestPlanInstallsSystemFilesLast: the plan's order is the install order,
// and InnoDB must find its system tablespace only when everything else is
// in place, ibdata last of all.
func TestPlanInstallsSystemFilesLast(t *testing.T) {
	_, datadir, l := swapFixture(t)
	plan, err := PlanInstall(filepath.Join(datadir, StagingDir), datadir, l)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, m := range plan.Moves {
		order = append(order, filepath.Base(m.To))
	}
	firstSystem := -1
	for i, name := range order {
		sys := isSystemFile(name)
		if sys && firstSystem < 0 {
			firstSystem = i
		}
		if !sys && firstSystem >= 0 {
			t.Errorf("%s installed after the system file %s: %v", name, order[firstSystem], order)
		}
	}
	if firstSystem < 0 || order[len(order)-1] != "ibdata1" {
		t.Errorf("install order %v: want the system files last, ibdata1 at the very end", order)
	}
}

// TestStaleMarker runs an IST and a full SST into a datadir that an
// earlier run left with sst_in_progress. A swap marker (or one gosst did
// not write) refuses the IST, keeps the marker and makes the position
// unusable; a receive-phase marker (old data untouched) allows it; a full
// SST always replaces the data and removes the marker.
func TestStaleMarker(t *testing.T) {
	for _, tc := range []struct {
		name, marker string
		bypass       bool
		wantOK       bool
	}{
		{"swap marker refuses IST", markerSwap, true, false},
		{"foreign marker refuses IST", "", true, false},
		{"receive marker allows IST", markerReceive, true, true},
		{"swap marker allows full SST", markerSwap, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.writeCnf(t)
			marker := filepath.Join(f.joinerDir, InProgressFile)
			if err := os.WriteFile(marker, []byte(tc.marker), 0o640); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			addr, jres := f.startJoiner(t, ctx)
			d := f.runDonor(ctx, addr, tc.bypass, nil)
			j := <-jres
			if !tc.wantOK {
				if j.code == 0 || lastLine(j.lines) != "" {
					t.Fatalf("joiner accepted an IST into an interrupted swap: exit %d, lines %q\n%s", j.code, j.lines, j.stderr)
				}
				if !strings.Contains(j.stderr, "refusing IST") || !strings.Contains(j.stderr, "next start of this node takes a full SST") {
					t.Errorf("joiner log does not explain the refusal:\n%s", j.stderr)
				}
				if d.code == 0 || !strings.Contains(d.stderr, "joiner refused the transfer: refusing IST") {
					t.Errorf("donor: exit %d, log does not relay the refusal:\n%s", d.code, d.stderr)
				}
				if !exists(marker) {
					t.Errorf("%s removed after a refused IST", InProgressFile)
				}
				if exists(filepath.Join(f.joinerDir, "ibdata1")) {
					t.Errorf("ibdata1 left: --wsrep-recover could still read a position")
				}
				if gs, err := ist.ReadGrastate(filepath.Join(f.joinerDir, "grastate.dat")); err != nil || gs.UUID != ist.ZeroUUID {
					t.Errorf("grastate.dat %+v (%v): want the zero UUID", gs, err)
				}
				return
			}
			if j.code != 0 || d.code != 0 {
				t.Fatalf("joiner exit %d, donor exit %d\njoiner:\n%s\ndonor:\n%s", j.code, d.code, j.stderr, d.stderr)
			}
			if exists(marker) {
				t.Errorf("%s left after success", InProgressFile)
			}
		})
	}
}
