package schedule

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the service's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	Registry *prometheus.Registry
	node     string

	lastSuccess, lastDuration, lastBytes *prometheus.GaugeVec
	failures, runs, bytes                *prometheus.CounterVec
	holder                               *prometheus.GaugeVec
	archiverLag                          prometheus.GaugeFunc
	lastPass                             atomic.Int64 // unix nanoseconds; 0: none
	now                                  func() time.Time
	windowStart, windowEnd               prometheus.Gauge
	verifyResult, verifyTime             prometheus.Gauge
}

// NewMetrics registers the metrics in a new registry; node labels the
// writer-role gauge.
func NewMetrics(node string) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		node:     node,
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gosst_schedule_last_success_timestamp_seconds",
			Help: "Unix time of the last successful run of the job on this node."}, []string{"job"}),
		lastDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gosst_schedule_last_duration_seconds",
			Help: "Duration of the last run of the job on this node (success or failure)."}, []string{"job"}),
		lastBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gosst_schedule_last_bytes",
			Help: "Bytes stored by the last successful run of the job on this node."}, []string{"job"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gosst_schedule_failures_total",
			Help: "Failed runs of the job on this node (each retry counts)."}, []string{"job"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gosst_schedule_runs_total",
			Help: "Runs of the job started on this node."}, []string{"job"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gosst_schedule_stored_bytes_total",
			Help: "Bytes stored by successful runs of the job on this node."}, []string{"job"}),
		holder: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gosst_writer_holder",
			Help: "1 while this node holds the writer role for the lease (backup, verify), else 0."}, []string{"lease", "node"}),
		windowStart: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gosst_restorable_window_start_timestamp_seconds",
			Help: "Unix time of the earliest restorable point (start of the newest restorable window; 0: none)."}),
		windowEnd: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gosst_restorable_window_end_timestamp_seconds",
			Help: "Unix time of the latest restorable point (end of the newest restorable window; 0: none)."}),
		verifyResult: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gosst_verify_last_result",
			Help: "Result of the last verify --restore-test run on this node: 1 passed, 0 failed, -1 none yet."}),
		verifyTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gosst_verify_last_timestamp_seconds",
			Help: "Unix time the last verify run on this node ended."}),
	}
	m.now = time.Now
	m.archiverLag = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gosst_binlog_archiver_lag_seconds",
		Help: "Seconds since this node's binlog archiver last completed a pass (every closed binlog archived); -1 while it has not (standing by, or failing)."},
		func() float64 {
			t := m.lastPass.Load()
			if t == 0 {
				return -1
			}
			return m.now().Sub(time.Unix(0, t)).Seconds()
		})
	m.verifyResult.Set(-1)
	r.MustRegister(m.lastSuccess, m.lastDuration, m.lastBytes, m.failures, m.runs, m.bytes, m.holder,
		m.archiverLag, m.windowStart, m.windowEnd, m.verifyResult, m.verifyTime)
	return m
}

func (m *Metrics) jobStarted(kind, mutex string, holding bool) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(kind).Inc()
	m.SetHolder(mutex, holding)
}

func (m *Metrics) jobEnded(kind, mutex string, d time.Duration, bytes int64, err error, now time.Time) {
	if m == nil {
		return
	}
	m.SetHolder(mutex, false)
	m.lastDuration.WithLabelValues(kind).Set(d.Seconds())
	if kind == "verify" {
		m.verifyTime.Set(float64(now.UnixNano()) / 1e9)
		if err == nil {
			m.verifyResult.Set(1)
		} else {
			m.verifyResult.Set(0)
		}
	}
	if err != nil {
		m.failures.WithLabelValues(kind).Inc()
		return
	}
	m.lastSuccess.WithLabelValues(kind).Set(float64(now.UnixNano()) / 1e9)
	m.lastBytes.WithLabelValues(kind).Set(float64(bytes))
	m.bytes.WithLabelValues(kind).Add(float64(bytes))
}

// SetHolder records whether this node holds the writer role for lease.
func (m *Metrics) SetHolder(lease string, holding bool) {
	if m == nil {
		return
	}
	v := 0.0
	if holding {
		v = 1
	}
	m.holder.WithLabelValues(lease, m.node).Set(v)
}

// ArchivePassed records a successful binlog archive pass at t.
func (m *Metrics) ArchivePassed(t time.Time) {
	if m != nil {
		m.lastPass.Store(t.UnixNano())
	}
}

// SetWindow records the newest restorable window (zero times: none).
func (m *Metrics) SetWindow(start, end time.Time) {
	if m == nil {
		return
	}
	ts := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	}
	m.windowStart.Set(ts(start))
	m.windowEnd.Set(ts(end))
}

// Handler serves /metrics and /healthz.
func (m *Metrics) Handler(healthy func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}
