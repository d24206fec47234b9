package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gosst/gosst/notify"
)

// mariadbdArgs are the arguments mariadbd 10.11 appends to wsrep_notify_cmd
// for a view change.
var mariadbdArgs = []string{"--status", "synced", "--uuid", "6b94087a-e947-11f1-b506-2f33047b60b8",
	"--primary", "yes", "--index", "1", "--members", "a1/node1/127.0.0.1:3306,b2/node2/AUTO"}

func readEvents(t *testing.T, path string) []notify.Event {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var evs []notify.Event
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var ev notify.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

type hook struct {
	mu     sync.Mutex
	bodies []string
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies = append(h.bodies, string(b))
	h.mu.Unlock()
}

func TestNotifyFromOptionFile(t *testing.T) {
	dir := t.TempDir()
	h := &hook{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	events := filepath.Join(dir, "events.jsonl")
	cnf := filepath.Join(dir, "gb.cnf")
	if err := os.WriteFile(cnf, []byte("[galera-backup]\nnotify-file="+events+"\nnotify-webhook="+srv.URL+"/hook?token=T0KEN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A state change (only --status), then a view change.
	if out, errOut, code := run(t, "notify", "--defaults-file", cnf, "--status", "joined"); code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if out, errOut, code := run(t, append([]string{"notify", "--defaults-file", cnf}, mariadbdArgs...)...); code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	evs := readEvents(t, events)
	if len(evs) != 2 || evs[0].Status != "joined" || evs[1].Status != "synced" {
		t.Fatalf("events %+v", evs)
	}
	v := evs[1]
	if v.UUID != "6b94087a-e947-11f1-b506-2f33047b60b8" || v.Primary == nil || !*v.Primary || v.Index == nil || *v.Index != 1 ||
		len(v.Members) != 2 || v.Members[1] != (notify.Member{ID: "b2", Name: "node2", Address: "AUTO"}) || v.Time.IsZero() {
		t.Fatalf("view event %+v", v)
	}
	b, _ := os.ReadFile(events)
	lines := strings.SplitAfter(string(b), "\n")
	if len(h.bodies) != 2 || h.bodies[0] != lines[0] || h.bodies[1] != lines[1] {
		t.Fatalf("webhook got %q, file has %q", h.bodies, lines)
	}
}

// A webhook that never answers costs at most --notify-timeout: the command
// succeeds, the event is in the file, and the token stays out of the log.
func TestNotifyHangingWebhookDoesNotFail(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	events := filepath.Join(dir, "events.jsonl")
	_, errOut, code := run(t, append([]string{"notify", "--no-defaults", "--notify-file", events,
		"--notify-webhook", srv.URL + "/?token=T0KEN", "--notify-timeout", "300ms"}, mariadbdArgs...)...)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(errOut, "webhook not reached") || strings.Contains(errOut, "T0KEN") {
		t.Fatalf("stderr %q: want a warning without the token", errOut)
	}
	if evs := readEvents(t, events); len(evs) != 1 || evs[0].Status != "synced" {
		t.Fatalf("events %+v", evs)
	}
}

// The file cannot be written: exit 1 (mariadbd logs it), the webhook still
// gets the event.
func TestNotifyFileFailureStillPosts(t *testing.T) {
	h := &hook{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	_, errOut, code := run(t, "notify", "--no-defaults", "--notify-file", filepath.Join(t.TempDir(), "missing", "e.jsonl"),
		"--notify-webhook", srv.URL, "--status", "donor")
	if code != ExitFailure || !strings.Contains(errOut, `event "donor" not recorded`) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if len(h.bodies) != 1 || !strings.Contains(h.bodies[0], `"status":"donor"`) {
		t.Fatalf("webhook got %q", h.bodies)
	}
}

func TestNotifyUsage(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "e.jsonl")
	if _, errOut, code := run(t, "notify", "--no-defaults", "--status", "synced"); code != ExitUsage || !strings.Contains(errOut, "notify-file") {
		t.Fatalf("nothing configured: exit %d, stderr %q", code, errOut)
	}
	// A bad webhook URL is a configuration error, but the event is recorded first.
	if _, errOut, code := run(t, "notify", "--no-defaults", "--notify-file", events, "--notify-webhook", "ftp://x/?token=T0KEN", "--status", "synced"); code != ExitUsage || strings.Contains(errOut, "T0KEN") {
		t.Fatalf("bad webhook: exit %d, stderr %q", code, errOut)
	}
	// Arguments a later mariadbd might add are recorded, not refused.
	if _, errOut, code := run(t, "notify", "--no-defaults", "--notify-file", events, "--status", "joiner", "--future", "x"); code != 0 {
		t.Fatalf("unknown flag: exit %d, stderr %q", code, errOut)
	}
	evs := readEvents(t, events)
	if len(evs) != 2 || evs[0].Status != "synced" || evs[1].Status != "joiner" {
		t.Fatalf("events %+v", evs)
	}
}
