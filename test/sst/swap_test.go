package sst_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	fp "github.com/gosst/gosst/internal/failpoint"
	"github.com/gosst/gosst/sst"
	"github.com/gosst/gosst/test/cluster"
	"github.com/gosst/gosst/test/gbtest"
)

// TestSwapCrashAtEachStep stops node 3's joiner script (SIGKILL, through
// the failpoint of a build with the gosstfailpoint tag) right after each
// step of the datadir swap, then kills its mariadbd as a crash would. Node
// 3 holds old data of this cluster each time, so a position is there to be
// recovered. The crash must leave sst_in_progress and no usable position,
// and the next starts must bring node 3 back by a full SST (an IST offered
// from a recovered position is refused) with the same table checksums as
// the other nodes. The last case then also loses the invalidated
// grastate.dat (as if galera had written its running state back): the
// position recovered from the new InnoDB files makes Galera offer IST,
// which the joiner must refuse before the node rejoins by full SST.
func TestSwapCrashAtEachStep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	gbtest.FailpointBuild(t, "wsrep_sst_gosst") // before any node is stopped
	clusterSynced(t, ctx)
	faultTable(t, ctx)
	n1, n3 := shared.Node(1), shared.Node(3)
	type crash struct {
		step string
		lose bool // overwrite the invalidated grastate.dat with the cluster's running state
	}
	var cases []crash
	for _, step := range []string{sst.StepInvalidated, sst.StepSystemRemoved, sst.StepOldHalfRemoved,
		sst.StepNewHalfInstalled, sst.StepDataInstalled, sst.StepSystemInstalled} {
		cases = append(cases, crash{step: step})
	}
	cases = append(cases, crash{step: sst.StepSystemInstalled, lose: true})
	for i, tc := range cases {
		step := tc.step
		name := step
		if tc.lose {
			name += "+grastate-lost"
		}
		t.Run(name, func(t *testing.T) {
			clusterSynced(t, ctx)
			mustExec(t, ctx, n1, "INSERT INTO sstfault.t (v) VALUES (?)", fmt.Sprintf("before crash at %s", step))
			// Old data of this cluster, but a state Galera cannot IST
			// from: the first start needs a full SST.
			if err := n3.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			foreignState(t, n3)
			restore := failpoint(t, n3, step)
			off := n3.LogSize()
			if err := n3.StartNoWait(ctx); err != nil {
				t.Fatal(err)
			}
			hit := "test failpoint " + fp.Env + "=" + step
			if !waitFor(10*time.Minute, func() bool { return strings.Contains(n3.LogSince(off), hit) || !n3.Running() }) ||
				!strings.Contains(n3.LogSince(off), hit) {
				t.Fatalf("the joiner never reached swap step %s:\n%s", step, cluster.Tail(n3.LogSince(off), 40))
			}
			if !waitFor(time.Minute, func() bool { return len(sstProcs("joiner")) == 0 }) {
				t.Fatalf("joiner script still running after its failpoint: %v", sstProcs("joiner"))
			}
			if err := n3.Kill(); err != nil {
				t.Fatal(err)
			}
			restore()

			// What the crash left behind.
			if b, err := os.ReadFile(filepath.Join(n3.DataDir, sst.InProgressFile)); err != nil || !strings.Contains(string(b), "swap") {
				t.Errorf("after a crash at %s: %s = %q (%v), want the swap marker", step, sst.InProgressFile, b, err)
			}
			gs, err := n3.Grastate()
			if err != nil || gs.HasPosition() {
				t.Errorf("after a crash at %s: grastate.dat %v (%v) carries a position", step, gs, err)
			}
			_, ibdErr := os.Stat(filepath.Join(n3.DataDir, "ibdata1"))
			t.Logf("crash at %s left grastate.dat %v, ibdata1 present: %v", step, gs, ibdErr == nil)
			if tc.lose {
				uuid, err := n1.Status(ctx, "wsrep_cluster_state_uuid")
				if err != nil {
					t.Fatal(err)
				}
				running := fmt.Sprintf("# GALERA saved state\nversion: 2.1\nuuid:    %s\nseqno:   -1\nsafe_to_bootstrap: 0\n", uuid)
				if err := os.WriteFile(filepath.Join(n3.DataDir, "grastate.dat"), []byte(running), 0o660); err != nil {
					t.Fatal(err)
				}
			}

			// Restart until node 3 is back; at most one refused IST on the way.
			var final string
			refusedIST := false
			for attempt := 1; ; attempt++ {
				off := n3.LogSize()
				err := n3.Start(ctx)
				if err == nil {
					final = n3.LogSince(off)
					break
				}
				// mysqld aborts as soon as the donor reports the failure;
				// the joiner script may still be finishing.
				if !waitFor(time.Minute, func() bool { return len(sstProcs("joiner")) == 0 }) {
					t.Fatalf("joiner script still running after its mariadbd failed: %v", sstProcs("joiner"))
				}
				final = n3.LogSince(off)
				refused := cluster.GrepLines(final, "refusing IST")
				if attempt >= 2 || len(refused) == 0 {
					t.Fatalf("node3 did not rejoin after a crash at %s (attempt %d): %v\n%s", step, attempt, err, cluster.Tail(final, 40))
				}
				refusedIST = true
				t.Logf("attempt %d: %s", attempt, refused[0])
				if n3.Running() {
					if err := n3.Kill(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tc.lose && !refusedIST {
				t.Errorf("no IST was offered and refused although a position could be recovered")
			}
			if len(cluster.GrepLines(final, "gosst: joiner: received and verified")) == 0 || len(cluster.GrepLines(final, "donor reports IST")) > 0 {
				t.Errorf("node3 did not rejoin by full SST after a crash at %s:\n%s", step, cluster.Tail(final, 40))
			}
			if _, err := os.Stat(filepath.Join(n3.DataDir, sst.InProgressFile)); err == nil {
				t.Errorf("%s left after the full SST", sst.InProgressFile)
			}
			clusterSynced(t, ctx)
			// Galera rewrote the invalidated grastate.dat in place.
			uuid, err := n1.Status(ctx, "wsrep_cluster_state_uuid")
			if err != nil {
				t.Fatal(err)
			}
			if gs, err := n3.Grastate(); err != nil || gs.UUID != uuid {
				t.Errorf("node3's grastate.dat after the SST: %v (%v), want state %s", gs, err, uuid)
			}
			mustExec(t, ctx, n1, "INSERT INTO sstfault.t (v) VALUES (?)", fmt.Sprintf("after crash %d", i))
			want, err := n1.QueryString(ctx, "SELECT COUNT(*) FROM sstfault.t")
			if err != nil {
				t.Fatal(err)
			}
			w, _ := strconv.Atoi(want)
			sum := converge(t, ctx, "sstfault.t", w)
			t.Logf("crash at %s: node3 rejoined by full SST; CHECKSUM TABLE sstfault.t = %s on all nodes", step, sum)
		})
		if t.Failed() {
			return
		}
	}
}

// foreignState gives a stopped node's grastate.dat another history UUID:
// its data stays, but its next start needs a full SST.
func foreignState(t *testing.T, n *cluster.Node) {
	t.Helper()
	var b [16]byte
	_, _ = rand.Read(b[:])
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	gs := fmt.Sprintf("# GALERA saved state\nversion: 2.1\nuuid:    %s\nseqno:   5\nsafe_to_bootstrap: 0\n", uuid)
	if err := os.WriteFile(filepath.Join(n.DataDir, "grastate.dat"), []byte(gs), 0o660); err != nil {
		t.Fatal(err)
	}
}

// failpoint makes the node's wsrep_sst_gosst a wrapper that runs the
// failpoint build with GOSST_FAILPOINT=step (mysqld puts <basedir>/bin
// first in PATH, and each node has its own basedir). The returned
// function, also run at cleanup, puts the plain link to the release build
// back.
func failpoint(t *testing.T, n *cluster.Node, step string) func() {
	t.Helper()
	bin := gbtest.FailpointBuild(t, "wsrep_sst_gosst")
	link := filepath.Join(n.Dir, "basedir", "bin", "wsrep_sst_gosst")
	real, err := os.Readlink(link)
	if err != nil {
		t.Fatalf("%s: %v (the harness links the build into each node's basedir)", link, err)
	}
	script := fmt.Sprintf("#!/bin/sh\n%s=%s exec %s \"$@\"\n", fp.Env, step, bin)
	tmp := link + ".failpoint"
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	done := false
	restore := func() {
		if done {
			return
		}
		done = true
		_ = os.Remove(link)
		if err := os.Symlink(real, link); err != nil {
			t.Errorf("restore %s: %v", link, err)
		}
	}
	t.Cleanup(restore)
	return restore
}
