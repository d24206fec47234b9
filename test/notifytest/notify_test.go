// Package notifytest runs galera-backup notify as the wsrep_notify_cmd of
// a real 3-node Galera cluster and checks that a node leaving and rejoining
// is recorded, in order, on every node: in the JSON-lines file and at the
// webhook.
package notifytest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/notify"
	"github.com/gosst/gosst/test/cluster"
)

// webhook receives the POSTs of all nodes; the path names the node.
type webhook struct {
	events map[string]chan notify.Event
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var ev notify.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ch, ok := h.events[strings.Trim(r.URL.Path, "/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	ch <- ev // buffered generously; a full buffer would show as a test timeout
}

// await reads node's webhook events until one satisfies ok, returning all
// read. The timeout is only a safety net: events arrive as mariadbd reports
// them.
func await(t *testing.T, h *webhook, node string, what string, ok func(notify.Event) bool) []notify.Event {
	t.Helper()
	var seen []notify.Event
	safety := time.NewTimer(5 * time.Minute)
	defer safety.Stop()
	for {
		select {
		case ev := <-h.events[node]:
			seen = append(seen, ev)
			if ok(ev) {
				return seen
			}
		case <-safety.C:
			t.Fatalf("%s: no event %s; got %s", node, what, describe(seen))
		}
	}
}

func describe(evs []notify.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "\n  %s", oneLine(ev))
	}
	return b.String()
}

func oneLine(ev notify.Event) string {
	s := ev.Status
	if ev.Primary != nil {
		s += fmt.Sprintf(" primary=%v members=%v", *ev.Primary, names(ev))
	}
	return s
}

func names(ev notify.Event) []string {
	var n []string
	for _, m := range ev.Members {
		n = append(n, m.Name)
	}
	return n
}

// primaryView matches a Primary view of exactly these members, in any
// order: mariadbd lists members in Galera's index order, which follows
// their random node UUIDs (a full run once saw [node3 node1 node2]).
func primaryView(members ...string) func(notify.Event) bool {
	want := slices.Sorted(slices.Values(members))
	return func(ev notify.Event) bool {
		return ev.Primary != nil && *ev.Primary && slices.Equal(slices.Sorted(slices.Values(names(ev))), want)
	}
}

func readFile(t *testing.T, path string) []notify.Event {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var evs []notify.Event
	for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var ev notify.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("%s line %d: %v: %q", path, i+1, err, l)
		}
		evs = append(evs, ev)
	}
	return evs
}

// subsequence reports whether want occurs in got in order (not
// necessarily adjacent), matching with the predicates.
func subsequence(got []notify.Event, want []func(notify.Event) bool) bool {
	i := 0
	for _, ev := range got {
		if i < len(want) && want[i](ev) {
			i++
		}
	}
	return i == len(want)
}

func status(s string) func(notify.Event) bool {
	return func(ev notify.Event) bool { return ev.Status == s }
}

func TestNotifyNodeLeavesAndRejoins(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	if err := cluster.CheckInstalled(); err != nil {
		t.Skip(err)
	}
	dir := cluster.TempDir(t)
	bin := filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", bin+"/", "github.com/gosst/gosst/cmd/galera-backup").CombinedOutput(); err != nil {
		t.Fatalf("build galera-backup: %v\n%s", err, out)
	}
	h := &webhook{events: map[string]chan notify.Event{}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	nodeConfig := map[int][]string{}
	files := map[string]string{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("node%d", i)
		h.events[name] = make(chan notify.Event, 1000)
		files[name] = filepath.Join(dir, name+"-events.jsonl")
		// mariadbd passes fixed arguments: the file and the webhook come
		// from the [galera-backup] group, as an operator would set them.
		cnf := filepath.Join(dir, name+"-notify.cnf")
		if err := os.WriteFile(cnf, []byte(fmt.Sprintf("[galera-backup]\nnotify-file=%s\nnotify-webhook=%s/%s\nnotify-timeout=10s\n",
			files[name], srv.URL, name)), 0o600); err != nil {
			t.Fatal(err)
		}
		nodeConfig[i] = []string{fmt.Sprintf("wsrep_notify_cmd=%s/galera-backup notify --defaults-file=%s", bin, cnf)}
	}
	c := cluster.StartForTest(t, cluster.Options{Nodes: 3, Dir: filepath.Join(dir, "c"), NodeConfig: nodeConfig})
	for _, n := range c.Nodes {
		if n.Name != fmt.Sprintf("node%d", n.Index) {
			t.Fatalf("harness names node %d %q; this test assumes node<N>", n.Index, n.Name)
		}
	}
	all := []string{"node1", "node2", "node3"}
	// Every node has seen the full cluster.
	before := map[string][]notify.Event{}
	for _, n := range all {
		before[n] = await(t, h, n, "primary view of all three", primaryView(all...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	n3 := c.Node(3)
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	left := map[string][]notify.Event{}
	for _, n := range all[:2] {
		left[n] = await(t, h, n, "primary view without node3", primaryView("node1", "node2"))
	}
	// The leaving node reports its own shutdown; mariadbd waits for the
	// command, so its events are all in before the process has exited.
	left["node3"] = drain(h, "node3")

	if err := n3.Start(ctx); err != nil {
		t.Fatal(err)
	}
	back := map[string][]notify.Event{}
	for _, n := range all[:2] {
		back[n] = await(t, h, n, "primary view with node3 back", primaryView(all...))
	}
	back["node3"] = await(t, h, "node3", "synced", status("synced"))
	for _, n := range all {
		t.Logf("%s: start:%s\n stop:%s\n rejoin:%s", n, describe(before[n]), describe(left[n]), describe(back[n]))
	}

	// Order on the remaining nodes: all three, node3 gone, all three again.
	seq := []func(notify.Event) bool{primaryView(all...), primaryView("node1", "node2"), primaryView(all...)}
	for _, n := range all[:2] {
		got := readFile(t, files[n])
		if !subsequence(got, seq) {
			t.Errorf("%s's notify file lacks view all → node1,node2 → all in order:%s", n, describe(got))
		}
	}
	// On node3: synced in the full cluster, then its own shutdown, then it
	// comes back (by IST, so no "joiner" state: initialized, then joined)
	// and syncs in the full cluster.
	got := readFile(t, files["node3"])
	both := func(a, b func(notify.Event) bool) func(notify.Event) bool {
		return func(ev notify.Event) bool { return a(ev) && b(ev) }
	}
	want3 := []func(notify.Event) bool{both(status("synced"), primaryView(all...)), status("disconnecting"), status("disconnected"),
		both(status("joined"), primaryView(all...)), both(status("synced"), primaryView(all...))}
	if !subsequence(got, want3) {
		t.Errorf("node3's notify file lacks synced → disconnecting → disconnected → joined → synced in order:%s", describe(got))
	}
	if last := got[len(got)-1]; last.Status != "synced" || !primaryView(all...)(last) {
		t.Errorf("node3's last event is %s, want synced in the full cluster", oneLine(last))
	}
	// The file and the webhook saw the same events in the same order.
	for _, n := range all {
		var hooked []notify.Event
		hooked = append(hooked, before[n]...)
		hooked = append(hooked, left[n]...)
		hooked = append(hooked, back[n]...)
		hooked = append(hooked, drain(h, n)...)
		fileEvs := readFile(t, files[n])
		if len(fileEvs) < len(hooked) {
			t.Errorf("%s: %d events at the webhook but only %d in the file", n, len(hooked), len(fileEvs))
			continue
		}
		for i, ev := range hooked {
			if !ev.Time.Equal(fileEvs[i].Time) || ev.Status != fileEvs[i].Status {
				t.Errorf("%s: event %d: webhook %s, file %s", n, i, oneLine(ev), oneLine(fileEvs[i]))
			}
		}
	}
}

// drain returns the events already delivered for node.
func drain(h *webhook, node string) []notify.Event {
	var evs []notify.Event
	for {
		select {
		case ev := <-h.events[node]:
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}
