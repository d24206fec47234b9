package notify

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseMembers(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []Member
		ok   bool
	}{
		{"empty", "", nil, true},
		{"one", "b4766c9f-e948-11f1-a07c-b3655ca7fb62/node1/127.0.0.1:3306",
			[]Member{{"b4766c9f-e948-11f1-a07c-b3655ca7fb62", "node1", "127.0.0.1:3306"}}, true},
		{"three, AUTO address", "a/n1/127.0.0.1:3306,b/n2/AUTO,c/n3/[::1]:3307",
			[]Member{{"a", "n1", "127.0.0.1:3306"}, {"b", "n2", "AUTO"}, {"c", "n3", "[::1]:3307"}}, true},
		{"empty name", "a//AUTO", []Member{{"a", "", "AUTO"}}, true},
		{"name with slash", "a/dc1/n1/AUTO", []Member{{"a", "dc1/n1", "AUTO"}}, true},
		{"not a member", "garbage", []Member{{Name: "garbage"}}, false},
		{"one slash", "a/b,c/d/e", []Member{{Name: "a/b"}, {"c", "d", "e"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseMembers(tc.in)
			if !reflect.DeepEqual(got, tc.want) || ok != tc.ok {
				t.Fatalf("ParseMembers(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestNewEvent(t *testing.T) {
	now := time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)
	yes, no, zero, two := true, false, 0, 2
	for _, tc := range []struct {
		name string
		in   Args
		want Event
	}{
		{"state change only", Args{Status: "joined"}, Event{Time: now, Host: "h", Status: "joined"}},
		{"view", Args{Status: "synced", UUID: "u", Primary: "yes", HasPrimary: true, Index: "2", HasIndex: true, Members: "a/n1/AUTO", HasMembers: true},
			Event{Time: now, Host: "h", Status: "synced", UUID: "u", Primary: &yes, Index: &two, Members: []Member{{"a", "n1", "AUTO"}}}},
		{"non-primary", Args{Status: "connected", Primary: "no", HasPrimary: true, Index: "0", HasIndex: true},
			Event{Time: now, Host: "h", Status: "connected", Primary: &no, Index: &zero}},
		{"uninterpretable kept raw", Args{Status: "x", Primary: "maybe", HasPrimary: true, Index: "one", HasIndex: true, Members: "zz", HasMembers: true, Extra: []string{"w1", "w2"}},
			Event{Time: now, Host: "h", Status: "x", Members: []Member{{Name: "zz"}},
				Raw: map[string]string{"primary": "maybe", "index": "one", "members": "zz", "extra": "w1 w2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NewEvent(now, "h", tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			line, err := got.Line()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(string(line), "\n") != 1 || !strings.HasSuffix(string(line), "\n") {
				t.Fatalf("not one line: %q", line)
			}
		})
	}
}

// Many writers at once (as with several nodes on one host sharing a file):
// every line arrives whole.
func TestAppendConcurrentLinesNeverInterleave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	const writers, each = 8, 50
	big := strings.Repeat("m", 20000) // larger than a pipe buffer
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				ev := Event{Status: fmt.Sprintf("w%d-%d", w, i), UUID: big}
				line, err := ev.Line()
				if err == nil {
					_, err = Append(context.Background(), path, line)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	seen := map[string]bool{}
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not one JSON event: %v", len(seen)+1, err)
		}
		seen[ev.Status] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct events, want %d", len(seen), writers*each)
	}
}

// A lock held elsewhere (a stuck process) must not block mariadbd: when the
// time is up the line is appended without the lock and nothing is lost.
func TestAppendLockHeldElsewhereStillRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte("{\"status\":\"old\"}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	holder, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the time budget is already spent
	unlocked, err := Append(ctx, path, []byte("{\"status\":\"new\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !unlocked {
		t.Fatal("Append reports it held the lock although another descriptor holds it")
	}
	b, _ := os.ReadFile(path)
	if string(b) != "{\"status\":\"old\"}\n{\"status\":\"new\"}\n" {
		t.Fatalf("file: %q", b)
	}
}

func TestAppendMissingDirectory(t *testing.T) {
	_, err := Append(context.Background(), filepath.Join(t.TempDir(), "no", "events.jsonl"), []byte("{}\n"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist", err)
	}
}

func TestPost(t *testing.T) {
	var got []byte
	var ctype string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		ctype = r.Header.Get("Content-Type")
		if r.URL.Query().Get("fail") != "" {
			http.Error(w, "no", http.StatusInternalServerError)
		}
		if r.URL.Query().Get("redirect") != "" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}
	}))
	defer srv.Close()
	u, err := CheckWebhook(srv.URL + "/hook?token=SECRET")
	if err != nil {
		t.Fatal(err)
	}
	if err := Post(context.Background(), NewClient(), u, []byte("{\"status\":\"synced\"}\n")); err != nil {
		t.Fatal(err)
	}
	if string(got) != "{\"status\":\"synced\"}\n" || ctype != "application/json" {
		t.Fatalf("server got %q (%s)", got, ctype)
	}
	for _, q := range []string{"fail=1&token=SECRET", "redirect=1&token=SECRET"} {
		u, _ := CheckWebhook(srv.URL + "/hook?" + q)
		err := Post(context.Background(), NewClient(), u, []byte("{}\n"))
		if err == nil {
			t.Fatalf("%s: no error", q)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("error shows the token: %v", err)
		}
	}
}

// A webhook that never answers: Post returns as soon as its context ends.
func TestPostHangingServerReturnsWhenContextEnds(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
	}))
	defer srv.Close()
	defer close(release)
	u, _ := CheckWebhook(srv.URL + "/?token=SECRET")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	err := Post(ctx, NewClient(), u, []byte("{}\n"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("error shows the token: %v", err)
	}
}

func TestCheckWebhook(t *testing.T) {
	for _, bad := range []string{"ftp://x/", "/just/a/path", "http://", "::"} {
		if _, err := CheckWebhook(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := CheckWebhook("https://user:pw@hooks.example.com/x?k=v"); err != nil {
		t.Fatal(err)
	}
}

func FuzzNewEvent(f *testing.F) {
	f.Add("synced", "6b94087a-e947-11f1-b506-2f33047b60b8", "yes", "1", "a/n1/127.0.0.1:3306,b/n2/AUTO")
	f.Add("joiner", "", "no", "-1", "")
	f.Add("x", "u", "maybe", "one", "a/b,c")
	f.Add("\xff", "\x00", "", "99999999999999999999", "//,/,,")
	f.Fuzz(func(t *testing.T, status, uuid, primary, index, members string) {
		ev := NewEvent(time.Unix(0, 0), "h", Args{Status: status, UUID: uuid, Primary: primary, HasPrimary: true,
			Index: index, HasIndex: true, Members: members, HasMembers: true})
		line, err := ev.Line()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(string(line), "\n") != 1 {
			t.Fatalf("not one line: %q", line)
		}
		var back Event
		if err := json.Unmarshal(line, &back); err != nil {
			t.Fatalf("line does not decode: %v", err)
		}
		ms, ok := ParseMembers(members)
		if ok {
			var parts []string
			for _, m := range ms {
				parts = append(parts, m.ID+"/"+m.Name+"/"+m.Address)
			}
			if strings.Join(parts, ",") != strings.TrimSpace(members) {
				t.Fatalf("members %q do not round-trip: %+v", members, ms)
			}
		} else if ev.Raw["members"] != members {
			t.Fatalf("uninterpretable members %q not kept raw", members)
		}
	})
}
