package schedule

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gosst/gosst/ist"
)

// ISTSampler reads the local node's Galera counters (one reading; At set
// to when it was read).
type ISTSampler func(ctx context.Context) (ist.StatusSample, error)

// horizonMinSample is the shortest span two readings must cover to give a
// horizon; scrapes closer together reuse the last value.
const horizonMinSample = 10 * time.Second

// HorizonReadTimeout bounds one reading of the node during a scrape.
const HorizonReadTimeout = 5 * time.Second

// istHorizon computes gosst_ist_horizon_seconds from successive readings,
// each scrape against the last reading at least horizonMinSample older.
type istHorizon struct {
	read ISTSampler
	log  *slog.Logger

	mu    sync.Mutex
	prev  *ist.StatusSample
	value float64
}

// WatchISTHorizon registers gosst_ist_horizon_seconds: on each scrape the
// local node is read through read, and the horizon is computed as
// `galera-backup advise` does (ist.AdviseNode) between this reading and an
// earlier one at least 10s older. The value is -1 until two readings exist
// or when a reading fails (logged at warn), and +Inf when no write-set
// arrived between them.
func (m *Metrics) WatchISTHorizon(read ISTSampler, log *slog.Logger) {
	if m == nil || read == nil {
		return
	}
	if log == nil {
		log = slog.Default()
	}
	h := &istHorizon{read: read, log: log, value: -1}
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gosst_ist_horizon_seconds",
		Help: "How long a node can be down and still rejoin by IST, at the write rate between the last readings of this node (its gcache as donor); -1 unknown, +Inf no writes."},
		h.scrape))
}

func (h *istHorizon) scrape() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), HorizonReadTimeout)
	defer cancel()
	cur, err := h.read(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.log.Warn("ist_horizon_seconds: cannot read the local node", "err", err)
		h.prev, h.value = nil, -1
		return h.value
	}
	if h.prev == nil {
		h.prev = &cur
		return h.value
	}
	if cur.At.Sub(h.prev.At) < horizonMinSample {
		// Too close to the last reading, or older than it (two scrapes
		// at once can finish in either order): keep the value.
		return h.value
	}
	a, err := ist.AdviseNode("", *h.prev, cur, 0)
	h.prev = &cur
	switch {
	case err != nil:
		h.log.Warn("ist_horizon_seconds: readings unusable", "err", err)
		h.value = -1
	case a.HorizonSeconds == nil:
		h.value = math.Inf(1)
	default:
		h.value = *a.HorizonSeconds
	}
	return h.value
}
