package plantest

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gosst/gosst/cli"
	"github.com/gosst/gosst/ist"
)

// adviseRow is the size of each write-set the advise test drives: one
// INSERT of this many bytes is one seqno.
const adviseRow = 8 << 10

// cachedDownto reads each running node's wsrep_local_cached_downto.
func cachedDownto(t *testing.T, ctx context.Context) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, n := range clu.Nodes {
		if !n.Running() {
			continue
		}
		v, err := n.Status(ctx, "wsrep_local_cached_downto")
		if err != nil {
			t.Fatal(err)
		}
		out[n.Name], _ = strconv.ParseInt(v, 10, 64)
	}
	return out
}

// fillGcache writes rows of row bytes until every running node's gcache
// has discarded at least once since the call: the ring is full, as on a
// cluster that has run for a while.
func fillGcache(t *testing.T, ctx context.Context, row int) {
	t.Helper()
	batchRows := max(100, (8<<20)/row/10) // a tenth of the gcache per batch
	start := cachedDownto(t, ctx)
	for batch := 0; ; batch++ {
		full := true
		for name, c := range cachedDownto(t, ctx) {
			if c <= start[name] {
				full = false
			}
		}
		if full {
			t.Logf("every gcache is full and discarding after %d batches", batch)
			return
		}
		if batch == 40 { // 4 times the 8 MiB gcache; a safety net
			t.Fatalf("gcache has not wrapped after %d batches: %v -> %v", batch, start, cachedDownto(t, ctx))
		}
		write(t, ctx, batchRows, row)
	}
}

// advise runs galera-backup advise over every node while a writer drives
// inserts of row bytes through node1, and returns its JSON.
func advise(t *testing.T, ctx context.Context, row int) ist.Advice {
	t.Helper()
	args := []string{"advise", "--json", "--no-defaults", "--log-level", "error", "--sample", "10s", "--downtime", "1h"}
	for _, n := range clu.Nodes {
		args = append(args, "--node", n.DSN())
	}
	var out, errOut strings.Builder
	var code int
	wctx, stopWriter := context.WithCancel(ctx)
	eg, ectx := errgroup.WithContext(wctx)
	eg.Go(func() error {
		for ectx.Err() == nil {
			if err := clu.Node(1).Exec(ectx, "INSERT INTO pt.t (b) VALUES (REPEAT('x', ?))", row); err != nil && ectx.Err() == nil {
				return err
			}
		}
		return nil
	})
	eg.Go(func() error {
		defer stopWriter()
		code = cli.Main(ctx, args, &out, &errOut)
		return nil
	})
	if err := eg.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("writer: %v", err)
	}
	if code != 0 {
		t.Fatalf("advise: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	var res cli.AdviseResult
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		t.Fatalf("advise --json: %v\n%s", err, out.String())
	}
	return res.Advice
}

// TestAdviseHorizonAgainstGalera checks advise's IST horizon against what
// Galera does. The horizon is a time at the measured rate; the test turns
// it into the volume it stands for (horizon × the measured seqno rate, at
// the same write-set size) and keeps node3 down for a fraction or a
// multiple of that volume, so the result does not depend on how fast this
// machine writes: 0.3× must rejoin by IST, 3× must need SST.
func TestAdviseHorizonAgainstGalera(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	startAll(t, ctx)
	fillGcache(t, ctx, adviseRow)
	a := advise(t, ctx, adviseRow)
	if a.HorizonSeconds == nil || !(*a.HorizonSeconds > 0) {
		t.Fatalf("no horizon under load: %+v", a)
	}
	if a.Method != ist.MethodSeqno {
		t.Errorf("method %s with a full, discarding gcache; want %s", a.Method, ist.MethodSeqno)
	}
	rate := a.Nodes[0].SeqnoRate
	logAdvice(t, a)
	if a.GcacheForDowntime < 8<<20 {
		t.Errorf("gcache for 1h %d is below the 8 MiB that holds only %.0fs", a.GcacheForDowntime, *a.HorizonSeconds)
	}
	volume := *a.HorizonSeconds * rate // seqnos the horizon stands for
	t.Logf("horizon %.1fs at %.1f seqnos/s: %.0f write-sets of %d bytes", *a.HorizonSeconds, rate, volume, adviseRow)
	if volume < 20 {
		t.Fatalf("horizon volume %.0f write-sets is too small to test", volume)
	}

	n3 := clu.Node(3)
	for _, tc := range []struct {
		factor float64
		want   string
	}{{0.3, "IST"}, {3, "SST"}} {
		if err := n3.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		rows := int(math.Ceil(tc.factor * volume))
		write(t, ctx, rows, adviseRow)
		transfer, donor := observed(t, ctx, n3)
		t.Logf("down for %.1f× the horizon (%d write-sets): Galera did %s from %s", tc.factor, rows, transfer, donor)
		if transfer != tc.want {
			t.Errorf("node3 down for %.1f× advise's horizon rejoined by %s, want %s", tc.factor, transfer, tc.want)
		}
	}
}

func startAll(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, n := range clu.Nodes {
		if !n.Running() {
			if err := n.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func logAdvice(t *testing.T, a ist.Advice) {
	t.Helper()
	for _, n := range a.Nodes {
		h, bh, of := math.NaN(), math.NaN(), math.NaN()
		if n.HorizonSeconds != nil {
			h = *n.HorizonSeconds
		}
		if n.BytesHorizonSeconds != nil {
			bh = *n.BytesHorizonSeconds
		}
		if n.OverheadFactor != nil {
			of = *n.OverheadFactor
		}
		t.Logf("advise %s: %.0f B/s, %.1f actions/s, %.1f seqnos/s, %d cached, method %s, horizon %.1fs (bytes estimate %.1fs, gcache bytes per counted byte %.3f); threads %s, flow control %s",
			n.Node, n.ByteRate, n.ActionRate, n.SeqnoRate, n.CachedSeqnos, n.Method, h, bh, of, n.SlaveThreads.Change, n.FlowControl.Change)
	}
}

// TestAdviseBytesEstimateSmallWriteSets checks the estimate advise uses
// before the gcache is full (gcache.size over the counted bytes plus a
// per-action overhead) against the one it uses once the gcache discards
// (cached seqnos over the discard rate), on small write-sets, where the
// per-action overhead matters most. Both come from the same sample.
func TestAdviseBytesEstimateSmallWriteSets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	startAll(t, ctx)
	const row = 200
	fillGcache(t, ctx, row)
	a := advise(t, ctx, row)
	logAdvice(t, a)
	for _, n := range a.Nodes {
		if n.SeqnoHorizonSeconds == nil || n.BytesHorizonSeconds == nil {
			t.Errorf("%s: a full, discarding gcache gives no seqno or bytes estimate: %+v", n.Node, n)
			continue
		}
		if r := *n.BytesHorizonSeconds / *n.SeqnoHorizonSeconds; r < 0.9 || r > 1.1 {
			t.Errorf("%s: bytes estimate %.1fs vs seqno estimate %.1fs (ratio %.2f): the per-action overhead is off", n.Node, *n.BytesHorizonSeconds, *n.SeqnoHorizonSeconds, r)
		}
	}
}
