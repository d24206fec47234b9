package ist

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

// sample is a node at t0 with an 8 MiB gcache, 4 threads, defaults.
func sample() StatusSample {
	return StatusSample{At: t0, GcacheSize: 8 << 20, SlaveThreads: 4, FCLimit: 16,
		CachedDownto: 1, LastCommitted: 1000, CertDepsDistance: 2}
}

// after returns s advanced by d with bytes counted bytes in actions
// write-sets (each one seqno), the gcache start moved by discarded.
func after(s StatusSample, d time.Duration, bytes, actions, discarded int64) StatusSample {
	s.At = s.At.Add(d)
	s.ReceivedBytes += bytes
	s.Received += actions
	s.LastCommitted += actions
	s.CachedDownto += discarded
	return s
}

func approx(t *testing.T, what string, got *float64, want float64) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: null, want %.3f", what, want)
		return
	}
	if math.Abs(*got-want) > 1e-6*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.6f, want %.6f", what, *got, want)
	}
}

func TestAdviseNodeHorizon(t *testing.T) {
	base := sample()
	wrappedStart := base
	wrappedStart.CachedDownto, wrappedStart.LastCommitted = 500, 1500 // 1000 seqnos cached
	for _, tc := range []struct {
		name        string
		t0, t1      StatusSample
		downtime    time.Duration
		method      string
		horizon     float64 // seconds; NaN: null
		bytesH      float64
		gcacheFor   int64
		wrapped     bool
		overheadNil bool
	}{
		{
			// 60 s, 6000 write-sets of 1000 bytes: 100 000 B/s counted,
			// 100 × 28 B/s overhead: 102 800 B/s in the ring.
			name: "not wrapped: bytes", t0: base, t1: after(base, time.Minute, 6_000_000, 6000, 0),
			method: MethodBytes, horizon: float64(8<<20) / 102_800, bytesH: float64(8<<20) / 102_800, overheadNil: true,
		},
		{
			// 2 h at that rate: 8 MiB × 7200 / 81.6 s.
			name: "downtime sizing", t0: base, t1: after(base, time.Minute, 6_000_000, 6000, 0), downtime: 2 * time.Hour,
			method: MethodBytes, horizon: float64(8<<20) / 102_800, bytesH: float64(8<<20) / 102_800, overheadNil: true,
			gcacheFor: int64(math.Ceil(7200 * 102_800)),
		},
		{
			// The ring discards 50 seqnos/s and holds 1000 after the
			// sample: a node stopping now is gone from the cache in
			// 1001/50 s, whatever the bytes say.
			name: "wrapped: seqno", t0: wrappedStart, t1: after(wrappedStart, 10*time.Second, 1_000_000, 500, 500),
			method: MethodSeqno, horizon: 1001.0 / 50, bytesH: float64(8<<20) / (100_000 + 28*50), wrapped: true,
		},
		{
			name: "idle", t0: base, t1: after(base, time.Minute, 0, 0, 0),
			method: MethodIdle, horizon: math.NaN(), bytesH: math.NaN(), overheadNil: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := AdviseNode("n1", tc.t0, tc.t1, tc.downtime)
			if err != nil {
				t.Fatal(err)
			}
			if a.Method != tc.method {
				t.Errorf("method %s, want %s", a.Method, tc.method)
			}
			if math.IsNaN(tc.horizon) {
				if a.HorizonSeconds != nil {
					t.Errorf("horizon %v, want null", *a.HorizonSeconds)
				}
			} else {
				approx(t, "horizon", a.HorizonSeconds, tc.horizon)
			}
			if math.IsNaN(tc.bytesH) {
				if a.BytesHorizonSeconds != nil {
					t.Errorf("bytes horizon %v, want null", *a.BytesHorizonSeconds)
				}
			} else {
				approx(t, "bytes horizon", a.BytesHorizonSeconds, tc.bytesH)
			}
			if a.Wrapped != tc.wrapped {
				t.Errorf("wrapped %v, want %v", a.Wrapped, tc.wrapped)
			}
			if (a.OverheadFactor == nil) != tc.overheadNil {
				t.Errorf("overhead factor %v, want nil=%v", a.OverheadFactor, tc.overheadNil)
			}
			if tc.gcacheFor > 0 && math.Abs(float64(a.GcacheForDowntime-tc.gcacheFor)) > 1 {
				t.Errorf("gcache for downtime %d, want %d", a.GcacheForDowntime, tc.gcacheFor)
			}
		})
	}
}

func TestAdviseNodeOverheadFactor(t *testing.T) {
	// 1000 seqnos of 2000 counted bytes each fill the 8 MiB ring: the
	// ring holds 2 000 000 counted bytes, so Galera spends 8 MiB/2e6 per
	// counted byte.
	s := sample()
	s.CachedDownto, s.LastCommitted = 500, 1500
	a, err := AdviseNode("n1", s, after(s, 10*time.Second, 200_000, 100, 100), 0)
	if err != nil {
		t.Fatal(err)
	}
	approx(t, "overhead factor", a.OverheadFactor, float64(8<<20)/2_000_000)
}

func TestAdviseNodeRejects(t *testing.T) {
	base := sample()
	back := base
	back.At = base.At.Add(time.Minute)
	back.ReceivedBytes = -1
	for _, tc := range []struct {
		name   string
		t0, t1 StatusSample
		want   string
	}{
		{"same time", base, base, "not later"},
		{"counters reset", after(base, 0, 100, 1, 0), after(base, time.Minute, 0, 0, 0), "went backwards"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := AdviseNode("n1", tc.t0, tc.t1, 0)
			if !errors.Is(err, ErrSample) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want ErrSample with %q", err, tc.want)
			}
		})
	}
}

func TestSlaveThreadAdvice(t *testing.T) {
	for _, tc := range []struct {
		name       string
		threads    int
		dist, q    float64
		pausedNS   int64 // over a 100 s sample
		change     string
		suggested  int64
		whyContain string
	}{
		{"keeps up", 4, 20, 0.1, 0, "keep", 4, "keep up"},
		{"queue lags, parallelism there", 4, 10.5, 5, 0, "grow", 10, "grow to 10"},
		{"paused 5%, parallelism there", 2, 30, 0.2, 5e9, "grow", 8, "at most 4x"},
		{"lags, no parallelism", 8, 3, 5, 0, "keep", 8, "no more parallelism"},
		{"lags, one more thread", 1, 2.2, 3, 0, "grow", 2, "grow to 2"},
		{"too many threads", 32, 2, 0, 0, "keep", 32, "would not help"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sample()
			s.SlaveThreads, s.CertDepsDistance = tc.threads, tc.dist
			e := after(s, 100*time.Second, 1000, 10, 0)
			e.RecvQueueAvg = tc.q
			e.FlowControlPausedNS = tc.pausedNS
			e.FlowControlSent = 1
			a, err := AdviseNode("n1", s, e, 0)
			if err != nil {
				t.Fatal(err)
			}
			r := a.SlaveThreads
			if r.Change != tc.change || r.Suggested != tc.suggested || !strings.Contains(r.Why, tc.whyContain) {
				t.Errorf("got %+v, want %s %d with %q", r, tc.change, tc.suggested, tc.whyContain)
			}
		})
	}
}

func TestFlowControlAdvice(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pausedNS  int64 // over 100 s
		sent      int64
		q, dist   float64
		fcLimit   int64
		change    string
		suggested int64
		fraction  float64
		why       string
	}{
		{"not paused", 5e8, 0, 0, 1, 16, "keep", 16, 0.005, "nothing to change"},
		{"paused by another node", 20e9, 0, 0, 1, 16, "keep", 16, 0.2, "sent no flow-control"},
		{"this node, threads can grow", 20e9, 50, 8, 12, 16, "keep", 16, 0.2, "first grow wsrep_slave_threads to 12"},
		{"this node, no parallelism", 20e9, 50, 8, 1, 16, "grow", 32, 0.2, "gcs.fc_limit=32"},
		{"limit not shown: default 16", 20e9, 50, 8, 1, -1, "grow", 32, 0.2, "gcs.fc_limit 16"},
		{"limit capped", 20e9, 50, 8, 1, 1000, "grow", 1024, 0.2, "gcs.fc_limit=1024"},
		{"mild", 5e9, 10, 2, 1, 16, "keep", 16, 0.05, "below 10%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sample()
			s.FCLimit, s.CertDepsDistance = tc.fcLimit, tc.dist
			e := after(s, 100*time.Second, 1000, 10, 0)
			e.FlowControlPausedNS, e.FlowControlSent, e.RecvQueueAvg = tc.pausedNS, tc.sent, tc.q
			a, err := AdviseNode("n1", s, e, 0)
			if err != nil {
				t.Fatal(err)
			}
			fc := a.FlowControl
			if fc.Change != tc.change || fc.Suggested != tc.suggested || math.Abs(fc.PausedFraction-tc.fraction) > 1e-9 || !strings.Contains(fc.Why, tc.why) {
				t.Errorf("got %+v, want %s %d paused %.3f with %q", fc, tc.change, tc.suggested, tc.fraction, tc.why)
			}
		})
	}
}

func TestAdviseCluster(t *testing.T) {
	mk := func(name string, bytesPerMin int64) Sampled {
		s := sample()
		return Sampled{Node: name, T0: s, T1: after(s, time.Minute, bytesPerMin, bytesPerMin/1000, 0)}
	}
	h := func(bytesPerMin int64) float64 {
		return float64(8<<20) / (float64(bytesPerMin)/60 + 28*float64(bytesPerMin/1000)/60)
	}
	for _, tc := range []struct {
		name  string
		nodes []Sampled
		want  float64
	}{
		{"one node: its own", []Sampled{mk("a", 6e6)}, h(6e6)},
		// a's horizon is short (it writes more, e.g. a bigger rate
		// counted), b and c longer: any node can be down as long as
		// the best other donor holds it; the worst case is b or c
		// down, leaving c or b.
		{"three nodes", []Sampled{mk("a", 12e6), mk("b", 6e6), mk("c", 6e6)}, h(6e6)},
		{"two nodes: each needs the other", []Sampled{mk("a", 12e6), mk("b", 6e6)}, h(12e6)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Advise(tc.nodes, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			approx(t, "cluster horizon", a.HorizonSeconds, tc.want)
			if a.Method != MethodBytes {
				t.Errorf("method %s", a.Method)
			}
			// gcache for 1 h: size × 3600/horizon of the worst node,
			// +25%, rounded up to a MiB.
			worst := math.Inf(1)
			for _, n := range a.Nodes {
				worst = math.Min(worst, *n.HorizonSeconds)
			}
			want := int64(math.Ceil(math.Ceil(float64(8<<20)*3600/worst)*1.25/(1<<20))) << 20
			if a.GcacheForDowntime != want {
				t.Errorf("gcache for 1h: %d, want %d", a.GcacheForDowntime, want)
			}
		})
	}
	if _, err := Advise(nil, 0); !errors.Is(err, ErrSample) {
		t.Errorf("no nodes: %v", err)
	}
}

func statusVars() map[string]string {
	return map[string]string{"wsrep_replicated_bytes": "100", "wsrep_received_bytes": "200", "wsrep_replicated": "1",
		"wsrep_received": "2", "wsrep_flow_control_paused_ns": "0", "wsrep_flow_control_sent": "0",
		"wsrep_local_recv_queue_avg": "0.5", "wsrep_cert_deps_distance": "1.25", "wsrep_local_cached_downto": "1",
		"wsrep_last_committed": "3"}
}

const provOpts = "base_dir = /var/lib/mysql/; gcache.dir = /var/lib/mysql/; gcache.size = 8M; gcs.fc_limit = 16; gcs.fc_factor = 1.0"

func TestSampleFromStatus(t *testing.T) {
	s, err := SampleFromStatus(statusVars(), provOpts, 4, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := StatusSample{At: t0, ReplicatedBytes: 100, ReceivedBytes: 200, Replicated: 1, Received: 2, RecvQueueAvg: 0.5,
		CertDepsDistance: 1.25, CachedDownto: 1, LastCommitted: 3, GcacheSize: 8 << 20, FCLimit: 16, SlaveThreads: 4}
	if s != want {
		t.Errorf("got %+v\nwant %+v", s, want)
	}
	for _, tc := range []struct {
		name, key, val, opts string
		threads              int
		want                 string // "" = ok
	}{
		{"empty cache shows 2^64-1", "wsrep_local_cached_downto", "18446744073709551615", provOpts, 4, ""},
		{"missing counter", "wsrep_replicated_bytes", "", provOpts, 4, "missing"},
		{"negative counter", "wsrep_received_bytes", "-5", provOpts, 4, "not a counter"},
		{"bad float", "wsrep_cert_deps_distance", "NaN", provOpts, 4, "not a number"},
		{"no gcache.size", "", "", "gcs.fc_limit = 16", 4, "no gcache.size"},
		{"bad gcache.size", "", "", "gcache.size = lots", 4, "not a size"},
		{"no threads", "", "", provOpts, 0, "wsrep_slave_threads"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := statusVars()
			if tc.key != "" {
				if tc.val == "" {
					delete(v, tc.key)
				} else {
					v[tc.key] = tc.val
				}
			}
			s, err := SampleFromStatus(v, tc.opts, tc.threads, t0)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.CachedDownto != -1 {
					t.Errorf("cached_downto %d, want -1", s.CachedDownto)
				}
				return
			}
			if !errors.Is(err, ErrSample) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want ErrSample with %q", err, tc.want)
			}
		})
	}
}

func FuzzSampleFromStatus(f *testing.F) {
	f.Add("100", "1", "0.5", "1.25", provOpts)
	f.Add("18446744073709551615", "-1", "1e400", "", "gcache.size=1G;;=;x")
	f.Add("", "3", "-0", "0", "gcache.size = 0")
	f.Fuzz(func(t *testing.T, bytes, downto, queue, dist, opts string) {
		v := statusVars()
		v["wsrep_received_bytes"], v["wsrep_local_cached_downto"] = bytes, downto
		v["wsrep_local_recv_queue_avg"], v["wsrep_cert_deps_distance"] = queue, dist
		s, err := SampleFromStatus(v, opts, 2, t0)
		if err != nil {
			return
		}
		if s.GcacheSize <= 0 || s.ReceivedBytes < 0 || s.CachedDownto < -1 || s.RecvQueueAvg < 0 || math.IsNaN(s.CertDepsDistance) {
			t.Fatalf("accepted a bad sample: %+v", s)
		}
		e := s
		e.At = s.At.Add(time.Second)
		e.ReceivedBytes++
		if _, err := AdviseNode("n", s, e, time.Hour); err != nil {
			t.Fatalf("advise on an accepted sample: %v", err)
		}
	})
}
