package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gosst/gosst/backup"
)

// scheduleTour is `make demo-schedule`: galera-backup schedule on all three
// nodes, configured by option files only, a few scheduled full backups,
// which node took each, the metrics, a failover when the first node's
// service stops, and a clean stop of every service.
func (d *demo) scheduleTour() (err error) {
	defer func() {
		if err != nil {
			d.showServiceLogs()
		}
	}()
	step("galera-backup status: every node should be Synced")
	if err := d.status(); err != nil {
		return fmt.Errorf("status on a healthy cluster failed: %w", err)
	}
	if err := d.c.Node(1).Exec(d.ctx, "CREATE DATABASE demo; CREATE TABLE demo.t (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(64))"); err != nil {
		return err
	}
	store := filepath.Join(d.dir, "backups")
	files, err := d.writeScheduleConfig(store)
	if err != nil {
		return err
	}
	var svcs []*service
	defer func() { stopServices(svcs) }() // on any failure below; a no-op after the clean stop
	step("starting `galera-backup schedule --defaults-file nodeN.cnf` on node1, node2 and node3")
	for i, f := range files {
		s, err := d.startService(d.c.Nodes[i].Name, f)
		if err != nil {
			return err
		}
		svcs = append(svcs, s)
	}
	step("waiting for three scheduled full backups (one every 20 s, each run taken by exactly one node)")
	if _, err := d.waitBackups(store, "three backups", 4*time.Minute, func(ms []*backup.Manifest) bool { return len(ms) >= 3 }); err != nil {
		return err
	}
	step("which node took each run (from list --json, polled while they ran); keep-full = 2 leaves the two newest listed")
	d.showTaken()
	if err := d.gb("list", "--storage", store, "--log-level", "warn"); err != nil {
		return err
	}
	if err := d.showMetrics(svcs[0]); err != nil {
		return err
	}
	if err := d.failover(store, svcs); err != nil {
		return err
	}
	step("stopping the other services (SIGTERM): each exits 0")
	if err := stopServices(svcs); err != nil {
		return err
	}
	for _, s := range svcs {
		fmt.Printf("    %s's service ended %d runs successfully\n", s.node, len(s.jobEnds()))
	}
	step("every backup the services took, and what retention left")
	d.showTaken()
	return d.gb("list", "--storage", store, "--log-level", "warn")
}

// writeScheduleConfig writes the one [galera-backup] group every node
// shares and, per node, a file with its own [client] connection that
// includes it. It returns the per-node files.
func (d *demo) writeScheduleConfig(store string) ([]string, error) {
	common := filepath.Join(d.dir, "galera-backup.cnf")
	text := `# The same [galera-backup] group on every node. Fast schedules for the demo:
# a full backup every 20 s, the two newest kept.
[galera-backup]
storage           = ` + store + `
full-schedule     = @every 20s
keep-full         = 2
nodes             = node1,node2,node3
lease-ttl         = 9s
rank-delay        = 2s
retry-backoff     = 3s
max-lag           = 5s
standby-after     = 10s
coverage-interval = 2s
metrics-addr      = 127.0.0.1:0
log-format        = json
`
	if err := os.WriteFile(common, []byte(text), 0o600); err != nil {
		return nil, err
	}
	step("the option files (%s and one per node)", common)
	fmt.Print(indent(text))
	var files []string
	for _, n := range d.c.Nodes {
		f := filepath.Join(d.dir, n.Name+".cnf")
		t := fmt.Sprintf("[client]\nuser   = root\nsocket = %s\n\n!include %s\n", n.Socket, common)
		if err := os.WriteFile(f, []byte(t), 0o600); err != nil {
			return nil, err
		}
		if n.Name == "node1" {
			fmt.Printf("    --- %s ---\n%s", f, indent(t))
		}
		files = append(files, f)
	}
	return files, nil
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

// service is one running `galera-backup schedule`, started by this demo.
type service struct {
	node    string
	cmd     *exec.Cmd
	done    chan struct{} // closed once its log is read and the process waited for
	waitErr error
	metrics chan string // the metrics address, once

	mu   sync.Mutex
	ends []string // its "job end" lines, summarised
}

// startService starts schedule with only an option file; its JSON log goes
// to dir/NODE-schedule.log and its job ends to stdout.
func (d *demo) startService(node, cnf string) (*service, error) {
	logf, err := os.Create(filepath.Join(d.dir, node+"-schedule.log"))
	if err != nil {
		return nil, err
	}
	s := &service{node: node, done: make(chan struct{}), metrics: make(chan string, 1),
		cmd: exec.Command(d.gbPath, "schedule", "--defaults-file", cnf)}
	s.cmd.Stdout = logf
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	fmt.Printf("$ galera-backup schedule --defaults-file %s\n", cnf)
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		defer close(s.done)
		defer logf.Close()
		s.readLog(io.TeeReader(stderr, logf))
		s.waitErr = s.cmd.Wait()
	}()
	return s, nil
}

// readLog reads the service's JSON log until it ends.
func (s *service) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		switch m["msg"] {
		case "serving metrics":
			if addr, ok := m["addr"].(string); ok {
				select { // never block the log reader: it drains stderr
				case s.metrics <- addr:
				default:
				}
			}
		case "job end":
			line := fmt.Sprintf("%s: job end %v slot=%v ok=%v %v%v", s.node, m["job"], m["slot"], m["ok"], orEmpty(m["detail"]), orEmpty(m["err"]))
			s.mu.Lock()
			s.ends = append(s.ends, line)
			s.mu.Unlock()
			fmt.Println("    " + line)
		}
	}
	_, _ = io.Copy(io.Discard, r) // a line too long for the scanner: keep the pipe drained
}

func orEmpty(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func (s *service) jobEnds() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ends...)
}

// stop sends SIGTERM to the service's process (by its PID) and waits for
// it; it is SIGKILLed if it has not exited after two minutes. A stopped
// service is not signalled again. The error is set unless it exited 0.
func (s *service) stop() error {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(2 * time.Minute):
			_ = s.cmd.Process.Kill()
			<-s.done
			return fmt.Errorf("%s: galera-backup schedule did not stop within 2 minutes of SIGTERM; killed", s.node)
		}
	}
	if s.waitErr != nil {
		return fmt.Errorf("%s: galera-backup schedule: %w (see its log)", s.node, s.waitErr)
	}
	return nil
}

// stopServices stops every service, all at once, and waits for each.
func stopServices(svcs []*service) error {
	errs := make([]error, len(svcs))
	var wg sync.WaitGroup
	for i, s := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.stop()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// waitBackups lists the storage every 2 s until cond holds for every
// backup listed so far (retention deletes old ones), for at most limit.
func (d *demo) waitBackups(store, what string, limit time.Duration, cond func([]*backup.Manifest) bool) ([]*backup.Manifest, error) {
	deadline := time.Now().Add(limit)
	for {
		ms, err := d.listBackups(store)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if !slices.ContainsFunc(d.seen, func(s *backup.Manifest) bool { return s.ID == m.ID }) {
				d.seen = append(d.seen, m)
			}
		}
		if cond(d.seen) {
			return d.seen, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no %s after %s", what, limit)
		}
		select {
		case <-d.ctx.Done():
			return nil, d.ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// listBackups is `list --json`.
func (d *demo) listBackups(store string) ([]*backup.Manifest, error) {
	out, err := exec.CommandContext(d.ctx, d.gbPath, "list", "--json", "--storage", store, "--log-level", "error").Output()
	if err != nil {
		return nil, fmt.Errorf("list --json: %w", err)
	}
	var ms []*backup.Manifest
	if err := json.Unmarshal(out, &ms); err != nil {
		return nil, fmt.Errorf("list --json: %w", err)
	}
	return ms, nil
}

// showTaken prints every backup the services took, oldest first, and
// which node took it.
func (d *demo) showTaken() {
	sort.Slice(d.seen, func(i, j int) bool { return d.seen[i].StartTime.Before(d.seen[j].StartTime) })
	for _, m := range d.seen {
		fmt.Printf("    %s %-11s taken by %s  %s-%s\n", m.ID, m.Type, m.Node, m.StartTime.Format("15:04:05"), m.EndTime.Format("15:04:05"))
	}
}

// showMetrics scrapes the service's /metrics once and prints gosst's
// lines.
func (d *demo) showMetrics(s *service) error {
	var addr string
	select {
	case addr = <-s.metrics:
		select { // for a later look
		case s.metrics <- addr:
		default:
		}
	case <-s.done:
		return fmt.Errorf("%s: the service exited before serving metrics", s.node)
	case <-d.ctx.Done():
		return d.ctx.Err()
	}
	step("scraping %s's metrics once: http://%s/metrics (gosst_ lines)", s.node, addr)
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("scrape %s: %w", s.node, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "gosst_") {
			fmt.Println("    " + l)
		}
	}
	return sc.Err()
}

// failover stops node1's service and waits for node2 to take a run.
func (d *demo) failover(store string, svcs []*service) error {
	step("stopping node1's service (SIGTERM): it releases the writer lease; node2, next in --nodes, takes the next run")
	stopped := time.Now()
	if err := svcs[0].stop(); err != nil {
		return err
	}
	fmt.Printf("    node1's service exited 0\n")
	ms, err := d.waitBackups(store, "backup by node2", 3*time.Minute, func(ms []*backup.Manifest) bool {
		for _, m := range ms {
			if m.Node == "node2" && m.StartTime.After(stopped) {
				return true
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Node != "node2" && m.StartTime.After(stopped) {
			return fmt.Errorf("backup %s was taken by %s after node1's service stopped, want node2", m.ID, m.Node)
		}
	}
	return nil
}

// showServiceLogs prints the end of each service's log (the directory is
// removed when the demo ends).
func (d *demo) showServiceLogs() {
	for _, n := range d.c.Nodes {
		b, err := os.ReadFile(filepath.Join(d.dir, n.Name+"-schedule.log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Printf("--- the end of %s's schedule log ---\n%s\n", n.Name, strings.Join(lines, "\n"))
	}
}
