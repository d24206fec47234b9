package ist

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gosst/gosst/internal/text"
)

// StatusSample is one reading of a running node's Galera counters, the
// input of Advise. Counters are cumulative since the server started (or the
// last FLUSH STATUS); averages are Galera's own.
type StatusSample struct {
	At                  time.Time `json:"at"`
	ReplicatedBytes     int64     `json:"replicated_bytes"`       // wsrep_replicated_bytes
	ReceivedBytes       int64     `json:"received_bytes"`         // wsrep_received_bytes
	Replicated          int64     `json:"replicated"`             // wsrep_replicated (write-sets)
	Received            int64     `json:"received"`               // wsrep_received (actions)
	FlowControlPausedNS int64     `json:"flow_control_paused_ns"` // wsrep_flow_control_paused_ns
	FlowControlSent     int64     `json:"flow_control_sent"`      // wsrep_flow_control_sent
	RecvQueueAvg        float64   `json:"local_recv_queue_avg"`   // wsrep_local_recv_queue_avg
	CertDepsDistance    float64   `json:"cert_deps_distance"`     // wsrep_cert_deps_distance
	CachedDownto        int64     `json:"local_cached_downto"`    // wsrep_local_cached_downto
	LastCommitted       int64     `json:"last_committed"`         // wsrep_last_committed
	GcacheSize          int64     `json:"gcache_size"`            // gcache.size from wsrep_provider_options
	FCLimit             int64     `json:"fc_limit"`               // gcs.fc_limit (-1: not shown)
	SlaveThreads        int       `json:"slave_threads"`          // @@wsrep_slave_threads
}

// AdviseStatusNames are the global status variables SampleFromStatus reads.
var AdviseStatusNames = []string{"wsrep_replicated_bytes", "wsrep_received_bytes", "wsrep_replicated",
	"wsrep_received", "wsrep_flow_control_paused_ns", "wsrep_flow_control_sent",
	"wsrep_local_recv_queue_avg", "wsrep_cert_deps_distance", "wsrep_local_cached_downto",
	"wsrep_last_committed"}

// ErrSample marks status values advise cannot use.
var ErrSample = errors.New("galera status")

// SampleFromStatus builds a sample from the status variables named in
// AdviseStatusNames (keys lower-case), @@wsrep_provider_options and
// @@wsrep_slave_threads, as read at `at`. A missing or malformed counter is
// an error: the rates would be wrong without it.
func SampleFromStatus(vars map[string]string, providerOptions string, slaveThreads int, at time.Time) (StatusSample, error) {
	s := StatusSample{At: at, SlaveThreads: slaveThreads, FCLimit: -1}
	ints := []struct {
		name string
		dst  *int64
		min  int64
	}{
		{"wsrep_replicated_bytes", &s.ReplicatedBytes, 0}, {"wsrep_received_bytes", &s.ReceivedBytes, 0},
		{"wsrep_replicated", &s.Replicated, 0}, {"wsrep_received", &s.Received, 0},
		{"wsrep_flow_control_paused_ns", &s.FlowControlPausedNS, 0}, {"wsrep_flow_control_sent", &s.FlowControlSent, 0},
		{"wsrep_local_cached_downto", &s.CachedDownto, -1}, {"wsrep_last_committed", &s.LastCommitted, -1},
	}
	for _, f := range ints {
		v, ok := vars[f.name]
		if !ok {
			return s, fmt.Errorf("%w: %s is missing (is this a Galera node with wsrep_on=ON?)", ErrSample, f.name)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if _, uerr := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err != nil && uerr == nil && f.min < 0 {
			n, err = -1, nil // Galera shows 2^64-1 for "none"
		}
		if err != nil || n < f.min {
			return s, fmt.Errorf("%w: %s = %q is not a counter", ErrSample, f.name, v)
		}
		*f.dst = n
	}
	// Galera shows a huge unsigned value for "nothing cached"; treat it as
	// none.
	if s.CachedDownto > s.LastCommitted && s.LastCommitted >= 0 {
		s.CachedDownto = -1
	}
	floats := []struct {
		name string
		dst  *float64
	}{{"wsrep_local_recv_queue_avg", &s.RecvQueueAvg}, {"wsrep_cert_deps_distance", &s.CertDepsDistance}}
	for _, f := range floats {
		v, ok := vars[f.name]
		if !ok {
			return s, fmt.Errorf("%w: %s is missing", ErrSample, f.name)
		}
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || x < 0 || math.IsInf(x, 0) || math.IsNaN(x) {
			return s, fmt.Errorf("%w: %s = %q is not a number", ErrSample, f.name, v)
		}
		*f.dst = x
	}
	po := ProviderOptions(providerOptions)
	size, ok := po["gcache.size"]
	if !ok {
		return s, fmt.Errorf("%w: wsrep_provider_options shows no gcache.size", ErrSample)
	}
	n, err := text.ParseSize(size)
	if err != nil || n <= 0 {
		return s, fmt.Errorf("%w: gcache.size = %q: not a size", ErrSample, size)
	}
	s.GcacheSize = n
	if v, ok := po["gcs.fc_limit"]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			s.FCLimit = n
		}
	}
	if slaveThreads < 1 {
		return s, fmt.Errorf("%w: wsrep_slave_threads = %d", ErrSample, slaveThreads)
	}
	return s, nil
}

// ProviderOptions splits @@wsrep_provider_options ("k = v; k2 = v2") into
// a map; entries without '=' are ignored, later keys win.
func ProviderOptions(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if k = strings.TrimSpace(k); k != "" {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// BufferOverhead is what one cached action costs in the gcache ring beyond
// the bytes Galera counts in wsrep_replicated_bytes/wsrep_received_bytes:
// a 24-byte buffer header, and on average 4 bytes of padding to the next
// 8-byte boundary.
const BufferOverhead = 28

// Methods of the IST horizon estimate.
const (
	MethodSeqno = "seqno" // how fast wsrep_local_cached_downto advanced: the ring is full and discarding
	MethodBytes = "bytes" // gcache.size over the byte rate plus BufferOverhead per action: the ring has not wrapped in the sample
	MethodIdle  = "idle"  // no write-sets in the sample: the horizon is unbounded at this rate
)

// NodeAdvice is the result for one node.
type NodeAdvice struct {
	Node           string       `json:"node"`
	SampleSeconds  float64      `json:"sample_seconds"`
	Start          StatusSample `json:"start"`
	End            StatusSample `json:"end"`
	ByteRate       float64      `json:"byte_rate"`           // counted write-set bytes per second (replicated + received)
	ActionRate     float64      `json:"action_rate"`         // actions per second (replicated + received)
	SeqnoRate      float64      `json:"seqno_rate"`          // wsrep_last_committed per second
	DiscardRate    float64      `json:"discard_rate"`        // wsrep_local_cached_downto per second
	CachedSeqnos   int64        `json:"cached_seqnos"`       // last_committed - cached_downto at the end
	RingBytesRate  float64      `json:"ring_byte_rate"`      // ByteRate + BufferOverhead per action
	Wrapped        bool         `json:"wrapped"`             // the gcache discarded during the sample
	Method         string       `json:"method"`              // MethodSeqno, MethodBytes or MethodIdle
	HorizonSeconds *float64     `json:"ist_horizon_seconds"` // null when idle
	// BytesHorizonSeconds is the byte estimate, also when Method is
	// seqno; with SeqnoHorizonSeconds it gives the overhead Galera really
	// has (OverheadFactor).
	BytesHorizonSeconds *float64 `json:"bytes_horizon_seconds"`
	SeqnoHorizonSeconds *float64 `json:"seqno_horizon_seconds"`
	// OverheadFactor is gcache.size over the counted bytes the ring
	// really holds (bytes per seqno × cached seqnos); only when wrapped.
	OverheadFactor *float64 `json:"overhead_factor,omitempty"`
	// GcacheForDowntime is the gcache.size that holds Downtime of writes
	// at this rate (0 without a --downtime or when idle).
	GcacheForDowntime int64           `json:"gcache_size_for_downtime,omitempty"`
	SlaveThreads      Recommendation  `json:"slave_threads"`
	FlowControl       FlowControlInfo `json:"flow_control"`
}

// Recommendation is one piece of advice with the numbers behind it.
type Recommendation struct {
	Change    string `json:"change"` // "keep", "grow", "shrink"
	Current   int64  `json:"current"`
	Suggested int64  `json:"suggested"`
	Why       string `json:"why"`
}

// FlowControlInfo is the flow-control advice for one node.
type FlowControlInfo struct {
	PausedFraction float64 `json:"paused_fraction"` // of the sample the cluster was paused (as seen by this node)
	SentPerSecond  float64 `json:"sent_per_second"` // flow-control messages this node sent
	RecvQueueAvg   float64 `json:"local_recv_queue_avg"`
	Recommendation
}

// Advice is what `galera-backup advise --json` prints.
type Advice struct {
	// HorizonSeconds is how long a node can be down and still rejoin by
	// IST: for each node, the best horizon among the other nodes (any of
	// them can donate), and then the worst over nodes. Null when idle.
	HorizonSeconds *float64 `json:"ist_horizon_seconds"`
	// Method is the estimate behind HorizonSeconds (see Method* consts).
	Method          string  `json:"method"`
	DowntimeSeconds float64 `json:"downtime_seconds,omitempty"`
	// GcacheForDowntime is the largest per-node gcache.size needed for
	// DowntimeSeconds, with 25% headroom, rounded up to a MiB.
	GcacheForDowntime int64        `json:"gcache_size_for_downtime,omitempty"`
	Nodes             []NodeAdvice `json:"nodes"`
}

// Thresholds of the slave-thread and flow-control rules.
const (
	busyQueue       = 1.0  // wsrep_local_recv_queue_avg above this: the appliers lag
	pausedNotable   = 0.01 // more than 1% of the time paused is worth a look
	pausedHigh      = 0.10 // more than 10% paused throttles writers noticeably
	headroom        = 1.25
	defaultFCLimit  = 16
	maxSuggestedFCL = 1024
)

// AdviseNode computes one node's advice from two samples (t0 before t1).
// downtime 0 skips the gcache sizing.
func AdviseNode(name string, t0, t1 StatusSample, downtime time.Duration) (NodeAdvice, error) {
	a := NodeAdvice{Node: name, Start: t0, End: t1}
	dt := t1.At.Sub(t0.At).Seconds()
	if !(dt > 0) {
		return a, fmt.Errorf("%w: node %s: the second sample is not later than the first", ErrSample, name)
	}
	dBytes := (t1.ReplicatedBytes + t1.ReceivedBytes) - (t0.ReplicatedBytes + t0.ReceivedBytes)
	dActions := (t1.Replicated + t1.Received) - (t0.Replicated + t0.Received)
	dSeq := t1.LastCommitted - t0.LastCommitted
	if dBytes < 0 || dActions < 0 || dSeq < 0 || t1.FlowControlPausedNS < t0.FlowControlPausedNS || t1.FlowControlSent < t0.FlowControlSent {
		return a, fmt.Errorf("%w: node %s: counters went backwards during the sample (server restarted or FLUSH STATUS): sample again", ErrSample, name)
	}
	a.SampleSeconds = dt
	a.ByteRate = float64(dBytes) / dt
	a.ActionRate = float64(dActions) / dt
	a.SeqnoRate = float64(dSeq) / dt
	a.RingBytesRate = a.ByteRate + BufferOverhead*a.ActionRate
	if t1.CachedDownto >= 0 && t1.LastCommitted >= t1.CachedDownto {
		a.CachedSeqnos = t1.LastCommitted - t1.CachedDownto
	}
	if t0.CachedDownto >= 0 && t1.CachedDownto > t0.CachedDownto {
		a.Wrapped = true
		a.DiscardRate = float64(t1.CachedDownto-t0.CachedDownto) / dt
	}
	size := t1.GcacheSize
	if a.RingBytesRate > 0 && size > 0 {
		h := float64(size) / a.RingBytesRate
		a.BytesHorizonSeconds = &h
	}
	if a.Wrapped && a.DiscardRate > 0 {
		// A node that stops now needs its next seqno, CachedSeqnos
		// ahead of the oldest cached one; the oldest advances at
		// DiscardRate.
		h := float64(a.CachedSeqnos+1) / a.DiscardRate
		a.SeqnoHorizonSeconds = &h
		if a.SeqnoRate > 0 && a.CachedSeqnos > 0 && size > 0 {
			held := float64(a.CachedSeqnos) * a.ByteRate / a.SeqnoRate
			if held > 0 {
				f := float64(size) / held
				a.OverheadFactor = &f
			}
		}
	}
	switch {
	case a.SeqnoHorizonSeconds != nil:
		a.Method, a.HorizonSeconds = MethodSeqno, a.SeqnoHorizonSeconds
	case a.BytesHorizonSeconds != nil:
		a.Method, a.HorizonSeconds = MethodBytes, a.BytesHorizonSeconds
	default:
		a.Method = MethodIdle
	}
	if downtime > 0 && a.HorizonSeconds != nil && size > 0 {
		a.GcacheForDowntime = int64(math.Ceil(float64(size) * downtime.Seconds() / *a.HorizonSeconds))
	}
	paused := min(1, float64(t1.FlowControlPausedNS-t0.FlowControlPausedNS)/1e9/dt)
	a.SlaveThreads = slaveThreadAdvice(t1, paused)
	a.FlowControl = flowControlAdvice(t0, t1, dt, paused, a.SlaveThreads)
	return a, nil
}

// slaveThreadAdvice: wsrep_cert_deps_distance is how many write-sets could
// on average be applied in parallel. More threads than that only wait; fewer
// leave parallelism unused, which matters only when the appliers lag.
func slaveThreadAdvice(s StatusSample, paused float64) Recommendation {
	cur := int64(s.SlaveThreads)
	dist := s.CertDepsDistance
	r := Recommendation{Change: "keep", Current: cur, Suggested: cur}
	lagging := s.RecvQueueAvg > busyQueue || paused > pausedNotable
	switch {
	case lagging && dist >= float64(cur)+1:
		r.Change = "grow"
		r.Suggested = min(int64(math.Floor(dist)), 4*cur)
		if r.Suggested <= cur {
			r.Suggested = cur + 1
		}
		r.Why = fmt.Sprintf("the appliers lag (receive queue %.2f, flow control paused %.1f%%) and wsrep_cert_deps_distance %.1f says about %d write-sets can apply in parallel, but only %d threads apply: grow to %d (at most 4x per step; watch wsrep_local_recv_queue_avg afterwards)",
			s.RecvQueueAvg, 100*paused, dist, int64(math.Floor(dist)), cur, r.Suggested)
	case lagging:
		r.Why = fmt.Sprintf("the appliers lag (receive queue %.2f, flow control paused %.1f%%) but wsrep_cert_deps_distance %.1f leaves no more parallelism for %d threads: more threads would wait on each other; look at the write load (large transactions, hot rows) or the node's disk",
			s.RecvQueueAvg, 100*paused, dist, cur)
	case cur > 1 && float64(cur) > 2*math.Max(dist, 1):
		r.Why = fmt.Sprintf("wsrep_cert_deps_distance %.1f is well below %d threads; the extra threads cost little while idle, so no change is needed, but more would not help", dist, cur)
	default:
		r.Why = fmt.Sprintf("the appliers keep up (receive queue %.2f, flow control paused %.1f%%); %d threads for a parallelism of %.1f", s.RecvQueueAvg, 100*paused, cur, dist)
	}
	return r
}

// flowControlAdvice: flow control pauses every writer in the cluster when
// some node's receive queue passes gcs.fc_limit.
func flowControlAdvice(t0, t1 StatusSample, dt, paused float64, threads Recommendation) FlowControlInfo {
	sent := float64(t1.FlowControlSent-t0.FlowControlSent) / dt
	fc := FlowControlInfo{PausedFraction: paused, SentPerSecond: sent, RecvQueueAvg: t1.RecvQueueAvg}
	limit := t1.FCLimit
	shown := limit
	if limit <= 0 {
		limit = defaultFCLimit
	}
	fc.Recommendation = Recommendation{Change: "keep", Current: shown, Suggested: shown}
	switch {
	case paused <= pausedNotable:
		fc.Why = fmt.Sprintf("the cluster was paused by flow control %.2f%% of the sample: nothing to change", 100*paused)
	case sent == 0:
		fc.Why = fmt.Sprintf("the cluster was paused %.1f%% of the sample, but this node sent no flow-control message: look at the node that did (its wsrep_flow_control_sent grows)", 100*paused)
	case threads.Change == "grow":
		fc.Why = fmt.Sprintf("this node paused the cluster %.1f%% of the sample (%.2f flow-control messages/s, receive queue %.2f): first grow wsrep_slave_threads to %d (see slave_threads); raising gcs.fc_limit only lets this node fall further behind",
			100*paused, sent, t1.RecvQueueAvg, threads.Suggested)
	case paused > pausedHigh && limit < maxSuggestedFCL:
		fc.Change = "grow"
		fc.Suggested = min(2*limit, maxSuggestedFCL)
		fc.Why = fmt.Sprintf("this node paused the cluster %.1f%% of the sample (%.2f flow-control messages/s, receive queue %.2f, gcs.fc_limit %d) and more applier threads would not help: raising gcs.fc_limit to %d (dynamic: SET GLOBAL wsrep_provider_options='gcs.fc_limit=%d') absorbs bursts, at the price of this node lagging further behind; if the pauses persist, the node is too slow for the write load",
			100*paused, sent, t1.RecvQueueAvg, limit, fc.Suggested, fc.Suggested)
	default:
		fc.Why = fmt.Sprintf("this node paused the cluster %.1f%% of the sample (%.2f flow-control messages/s, receive queue %.2f): noticeable but below %.0f%%; keep gcs.fc_limit %d and watch", 100*paused, sent, t1.RecvQueueAvg, 100*pausedHigh, limit)
	}
	return fc
}

// Sampled is one node's pair of samples.
type Sampled struct {
	Node   string
	T0, T1 StatusSample
}

// Advise combines the nodes' advice. With several nodes, the cluster's
// horizon is, for each node, the best horizon among the others (Galera
// picks a donor that still has the write-sets), then the worst of those;
// with one node it is that node's own horizon as a donor.
func Advise(nodes []Sampled, downtime time.Duration) (Advice, error) {
	if len(nodes) == 0 {
		return Advice{}, fmt.Errorf("%w: no nodes sampled", ErrSample)
	}
	out := Advice{Method: MethodIdle}
	if downtime > 0 {
		out.DowntimeSeconds = downtime.Seconds()
	}
	for _, n := range nodes {
		a, err := AdviseNode(n.Node, n.T0, n.T1, downtime)
		if err != nil {
			return out, err
		}
		out.Nodes = append(out.Nodes, a)
		out.GcacheForDowntime = max(out.GcacheForDowntime, a.GcacheForDowntime)
	}
	if out.GcacheForDowntime > 0 {
		const mib = 1 << 20
		out.GcacheForDowntime = int64(math.Ceil(float64(out.GcacheForDowntime)*headroom/mib)) * mib
	}
	var worst *NodeAdvice
	var worstH float64
	for i := range out.Nodes {
		var best *NodeAdvice
		for j := range out.Nodes {
			if len(out.Nodes) > 1 && j == i {
				continue
			}
			d := &out.Nodes[j]
			if best == nil || horizon(d) > horizon(best) {
				best = d
			}
		}
		if h := horizon(best); worst == nil || h < worstH {
			worst, worstH = best, h
		}
	}
	if worst.HorizonSeconds != nil {
		h := *worst.HorizonSeconds
		out.HorizonSeconds, out.Method = &h, worst.Method
	}
	return out, nil
}

// horizon orders nodes: idle (unbounded) is the largest.
func horizon(a *NodeAdvice) float64 {
	if a.HorizonSeconds == nil {
		return math.Inf(1)
	}
	return *a.HorizonSeconds
}
