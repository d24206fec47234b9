// Package scheduletest runs `galera-backup schedule` on every node of a
// real 3-node Galera cluster (real mariabackup, local storage) and checks
// that each scheduled backup is taken by exactly one node.
package scheduletest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gosst/gosst/backup"
	"github.com/gosst/gosst/pitr"
	"github.com/gosst/gosst/test/cluster"
	"github.com/gosst/gosst/test/gbtest"
)

var (
	clu    *cluster.Cluster
	binDir string
)

func TestMain(m *testing.M) {
	os.Exit(gbtest.Main(m, "schedule", func(c *cluster.Cluster, bin string) { clu, binDir = c, bin }))
}

// proc is one running `galera-backup schedule`.
type proc struct {
	node    string
	cmd     *exec.Cmd
	exited  chan struct{}
	mu      sync.Mutex
	lines   []map[string]any // JSON log lines
	metrics chan string      // the metrics address, once
}

func startSchedule(t *testing.T, n *cluster.Node, store string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"schedule", "--storage", store, "--socket", n.Socket, "--user", "root",
		"--log-format", "json", "--nodes", "node1,node2,node3", "--metrics-addr", "127.0.0.1:0"}, extra...)
	p := &proc{node: n.Name, cmd: exec.Command(filepath.Join(binDir, "galera-backup"), args...), exited: make(chan struct{}), metrics: make(chan string, 1)}
	logf, err := os.Create(filepath.Join(t.TempDir(), n.Name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	p.cmd.Stderr = pw
	p.cmd.Stdout = logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(io.TeeReader(pr, logf))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			p.mu.Lock()
			p.lines = append(p.lines, m)
			p.mu.Unlock()
			if m["msg"] == "serving metrics" {
				p.metrics <- m["addr"].(string)
			}
		}
	}()
	go func() {
		_ = p.cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("--- %s schedule log ---\n%s", p.node, tailLines(string(b), 40))
		}
	})
	return p
}

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// jobEnds returns the "job end" lines with ok=true: node, job, slot.
func (p *proc) jobEnds() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, l := range p.lines {
		if l["msg"] == "job end" && l["ok"] == true {
			out = append(out, l)
		}
	}
	return out
}

func list(t *testing.T, store string) []*backup.Manifest {
	t.Helper()
	out := gbtest.MustGB(t, "list", "--json", "--storage", store, "--log-level", "error")
	var ms []*backup.Manifest
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	return ms
}

// waitFor polls the storage until cond holds (the schedule runs on its own
// clock; the storage is what it leaves behind). The timeout is a safety net.
func waitFor(t *testing.T, what string, store string, seen *[]*backup.Manifest, cond func([]*backup.Manifest) bool) []*backup.Manifest {
	t.Helper()
	deadline := time.Now().Add(6 * time.Minute)
	for {
		ms := list(t, store)
		record(seen, ms)
		if cond(ms) {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; backups: %s", what, describe(ms))
		}
		time.Sleep(time.Second)
	}
}

// record keeps every manifest ever listed (retention deletes old ones).
func record(seen *[]*backup.Manifest, ms []*backup.Manifest) {
	for _, m := range ms {
		known := false
		for _, s := range *seen {
			known = known || s.ID == m.ID
		}
		if !known {
			*seen = append(*seen, m)
		}
	}
}

func describe(ms []*backup.Manifest) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "\n  %s %s %s %s…%s", m.ID, m.Type, m.Node, m.StartTime.Format("15:04:05.000"), m.EndTime.Format("15:04:05.000"))
	}
	return b.String()
}

func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

func gauge(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for _, lp := range m.Label {
			if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

func TestScheduleOneWriterPerRun(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a cluster")
	}
	store := t.TempDir()
	common := []string{"--full-schedule", "@every 20s", "--lease-ttl", "9s", "--rank-delay", "2s", "--retry-backoff", "3s",
		"--keep-full", "2", "--standby-after", "10s", "--max-lag", "5s", "--coverage-interval", "2s"}
	var procs []*proc
	for i := 1; i <= 3; i++ {
		procs = append(procs, startSchedule(t, clu.Node(i), store, common...))
	}
	addr := <-procs[0].metrics
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", err, resp)
	}
	resp.Body.Close()
	// The first scrape takes the IST horizon's first reading of node1;
	// the one after three runs (40 s later at least) has a value.
	scrape(t, addr)

	var seen []*backup.Manifest
	// Three runs: all by node1, the first listed healthy node.
	waitFor(t, "3 backups", store, &seen, func([]*backup.Manifest) bool { return len(seen) >= 3 })
	for _, m := range seen {
		if m.Node != "node1" {
			t.Errorf("backup %s taken by %s, want node1 (first in --nodes): %s", m.ID, m.Node, describe(seen))
		}
	}

	// Metrics of node1 against what list reports.
	ms := list(t, store)
	record(&seen, ms)
	fams := scrape(t, addr)
	newest := ms[len(ms)-1]
	last, ok := gauge(fams, "gosst_schedule_last_success_timestamp_seconds", map[string]string{"job": "full"})
	if !ok || last < float64(newest.EndTime.Unix())-1 {
		t.Errorf("last success %v (present %v), want at or after the newest backup's end %s", last, ok, newest.EndTime)
	}
	if b, _ := gauge(fams, "gosst_schedule_last_bytes", map[string]string{"job": "full"}); b <= 0 {
		t.Errorf("gosst_schedule_last_bytes %v, want > 0", b)
	}
	if f, _ := gauge(fams, "gosst_schedule_failures_total", map[string]string{"job": "full"}); f != 0 {
		t.Errorf("failures %v, want 0", f)
	}
	// The IST horizon is wired to this node: two readings over 10 s
	// apart give seconds (or +Inf with no writes in between); -1 would
	// mean node1 could not be read.
	if h, ok := gauge(fams, "gosst_ist_horizon_seconds", nil); !ok || !(h > 0) {
		t.Errorf("gosst_ist_horizon_seconds %v (present %v), want > 0", h, ok)
	}
	checkWindowMetrics(t, store, addr)
	if len(ms) > 3 {
		t.Errorf("retention --keep-full 2 after every backup: %d backups listed: %s", len(ms), describe(ms))
	}

	// Kill node1's service: the next run goes to node2.
	if err := procs[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-procs[0].exited
	n := len(seen)
	waitFor(t, "a backup after the kill", store, &seen, func([]*backup.Manifest) bool { return len(seen) >= n+2 })
	for _, m := range seen[n:] {
		if m.Node == "node1" && m.StartTime.After(time.Now().Add(-30*time.Second)) {
			t.Errorf("backup %s by node1 after its service was killed", m.ID)
		}
	}
	if got := seen[len(seen)-1].Node; got != "node2" {
		t.Errorf("after node1's service died the runs went to %s, want node2: %s", got, describe(seen))
	}

	// SIGTERM stops the others cleanly.
	for _, p := range procs[1:] {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs[1:] {
		<-p.exited
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("%s: exit %d after SIGTERM", p.node, code)
		}
	}

	// Never two at once, and every slot taken by one node only.
	sort.Slice(seen, func(i, j int) bool { return seen[i].StartTime.Before(seen[j].StartTime) })
	for i := 1; i < len(seen); i++ {
		if seen[i].StartTime.Before(seen[i-1].EndTime) {
			t.Errorf("backups overlap: %s", describe(seen[i-1:i+1]))
		}
	}
	slots := map[string]string{}
	for _, p := range procs {
		for _, l := range p.jobEnds() {
			key := fmt.Sprint(l["job"], " ", l["slot"])
			if prev, dup := slots[key]; dup {
				t.Errorf("slot %s taken twice: by %s and %s", key, prev, p.node)
			}
			slots[key] = p.node
		}
	}
	final := list(t, store)
	if len(final) != 2 {
		t.Errorf("retention --keep-full 2: %d backups left: %s", len(final), describe(final))
	}
	t.Logf("backups taken: %s", describe(seen))
}

// newestWindow returns the newest restorable window of list --pitr --json
// as Unix seconds (0, 0 when there is none).
func newestWindow(t *testing.T, store string) (float64, float64) {
	t.Helper()
	out := gbtest.MustGB(t, "list", "--pitr", "--json", "--storage", store, "--log-level", "error")
	var cov pitr.Coverage
	if err := json.Unmarshal([]byte(out), &cov); err != nil {
		t.Fatalf("list --pitr --json: %v\n%s", err, out)
	}
	if len(cov.Windows) == 0 {
		return 0, 0
	}
	w := cov.Windows[len(cov.Windows)-1]
	return float64(w.FromTime.UnixNano()) / 1e9, float64(w.ToTime.UnixNano()) / 1e9
}

// checkWindowMetrics compares the restorable-window metrics with list
// --pitr. Both move while archiving runs and the metrics are refreshed
// every --coverage-interval, so it retries until a scrape between two
// identical lists agrees with them (bounded).
func checkWindowMetrics(t *testing.T, store, addr string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		from, to := newestWindow(t, store)
		fams := scrape(t, addr)
		from2, to2 := newestWindow(t, store)
		if from != from2 || to != to2 {
			continue
		}
		ms, _ := gauge(fams, "gosst_restorable_window_start_timestamp_seconds", nil)
		me, _ := gauge(fams, "gosst_restorable_window_end_timestamp_seconds", nil)
		if abs(ms-from) < 1e-3 && abs(me-to) < 1e-3 {
			if from == 0 {
				t.Logf("no restorable window yet; metrics agree (0)")
			}
			return
		}
		last = fmt.Sprintf("metrics %f…%f, list --pitr %f…%f", ms, me, from, to)
	}
	t.Errorf("restorable window metrics never matched list --pitr: %s", last)
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
