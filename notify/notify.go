// Package notify records Galera membership and node-state changes as
// mariadbd reports them to wsrep_notify_cmd: one JSON line per call,
// appended durably to a file, and optionally POSTed to a webhook.
//
// mariadbd (10.11) runs the command through the shell as
//
//	<wsrep_notify_cmd> --status <state> [--uuid <cluster state uuid>
//	  --primary yes|no --index <own index> [--members <id>/<name>/<addr>,...]]
//
// and waits for it to exit before it goes on, so everything here is
// bounded in time. A non-zero exit status is only logged by mariadbd.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gosst/gosst/internal/fsutil"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Member is one entry of --members: the member's gcomm UUID, its
// wsrep_node_name and its wsrep_node_incoming_address.
type Member struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Event is one call of wsrep_notify_cmd. Fields that mariadbd did not pass
// are omitted (a plain state change carries only the status).
type Event struct {
	Time    time.Time `json:"time"`
	Host    string    `json:"host,omitempty"`
	Status  string    `json:"status"`
	UUID    string    `json:"uuid,omitempty"`
	Primary *bool     `json:"primary,omitempty"`
	Index   *int      `json:"index,omitempty"`
	Members []Member  `json:"members,omitempty"`
	// Raw holds arguments as passed when they could not be interpreted
	// (an unknown --primary value, a non-numeric --index, a --members
	// entry that is not id/name/address, extra words), so nothing is lost.
	Raw map[string]string `json:"raw,omitempty"`
}

// Args are the arguments mariadbd passed, as strings.
type Args struct {
	Status, UUID, Primary, Index, Members string
	// Set records which of them were given.
	HasPrimary, HasIndex, HasMembers bool
	// Extra are words the command line had beyond the known flags.
	Extra []string
}

// NewEvent interprets the arguments. It never fails: what cannot be
// interpreted is kept verbatim in Raw.
func NewEvent(now time.Time, host string, a Args) Event {
	ev := Event{Time: now.UTC(), Host: host, Status: strings.TrimSpace(a.Status), UUID: strings.TrimSpace(a.UUID)}
	raw := map[string]string{}
	if a.HasPrimary {
		switch p := strings.TrimSpace(a.Primary); p {
		case "yes":
			t := true
			ev.Primary = &t
		case "no":
			f := false
			ev.Primary = &f
		default:
			raw["primary"] = a.Primary
		}
	}
	if a.HasIndex {
		if i, err := strconv.Atoi(strings.TrimSpace(a.Index)); err == nil {
			ev.Index = &i
		} else {
			raw["index"] = a.Index
		}
	}
	if a.HasMembers {
		ms, ok := ParseMembers(a.Members)
		ev.Members = ms
		if !ok {
			raw["members"] = a.Members
		}
	}
	if len(a.Extra) > 0 {
		raw["extra"] = strings.Join(a.Extra, " ")
	}
	if len(raw) > 0 {
		ev.Raw = raw
	}
	return ev
}

// ParseMembers parses mariadbd's --members value: comma-separated
// <gcomm uuid>/<node name>/<incoming address>. The UUID is up to the first
// slash, the address after the last one, the name in between (so a name
// holding a slash survives). ok is false when an entry does not have that
// shape; such entries are returned with only Name set to the entry text.
func ParseMembers(s string) (members []Member, ok bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, true
	}
	ok = true
	for _, e := range strings.Split(s, ",") {
		first := strings.IndexByte(e, '/')
		last := strings.LastIndexByte(e, '/')
		if first < 0 || first == last {
			members = append(members, Member{Name: e})
			ok = false
			continue
		}
		members = append(members, Member{ID: e[:first], Name: e[first+1 : last], Address: e[last+1:]})
	}
	return members, ok
}

// Line encodes the event as one JSON line ending in '\n'.
func (ev Event) Line() ([]byte, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode notification: %w", err)
	}
	return append(b, '\n'), nil
}

// Append adds line to the file at path with a single write under an
// exclusive flock on the file, opened O_APPEND, then fsyncs it (and the
// directory when the file was created), so lines from concurrent callers
// never interleave and a recorded line survives a crash. The lock is
// waited for until ctx ends; then the line is written without it (one
// O_APPEND write of a local file is still not interleaved on Linux)
// rather than being lost or blocking mariadbd.
func Append(ctx context.Context, path string, line []byte) (lockTimedOut bool, err error) {
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return false, fmt.Errorf("open notify file: %w", err)
	}
	defer f.Close()
	locked, err := lock(ctx, f)
	if err != nil {
		return false, fmt.Errorf("lock notify file %s: %w", path, err)
	}
	n, err := f.Write(line)
	if err == nil && n != len(line) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return !locked, fmt.Errorf("append to notify file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return !locked, fmt.Errorf("fsync notify file %s: %w", path, err)
	}
	if created {
		if err := fsutil.SyncDir(filepath.Dir(path)); err != nil {
			return !locked, fmt.Errorf("fsync directory of notify file %s: %w", path, err)
		}
	}
	return !locked, f.Close()
}

// lock takes an exclusive flock on f, polling until ctx ends. It reports
// false (and no error) when ctx ended first. The lock goes with the file
// descriptor when f is closed.
func lock(ctx context.Context, f *os.File) (bool, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return false, err
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-tick.C:
		}
	}
}

// CheckWebhook validates a webhook URL: http or https with a host.
func CheckWebhook(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("webhook URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("webhook URL %s: want an http:// or https:// URL", Redact(u))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("webhook URL %s: no host", Redact(u))
	}
	return u, nil
}

// Redact shows a URL without user info, query or fragment: webhook URLs
// often carry a token there, and it must not reach a log.
func Redact(u *url.URL) string {
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return c.String()
}

// Post sends line as the body of a POST (application/json) to u and
// returns when the server answered or ctx ended. Any status other than
// 2xx is an error. Redirects are not followed.
func Post(ctx context.Context, client *http.Client, u *url.URL, line []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(line))
	if err != nil {
		return fmt.Errorf("webhook %s: %w", Redact(u), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "galera-backup-notify")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the full URL, token included
		}
		return fmt.Errorf("webhook %s: %w", Redact(u), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: server answered %s", Redact(u), resp.Status)
	}
	return nil
}

// NewClient is an HTTP client for Post that does not follow redirects
// (a redirect could carry the event somewhere the operator did not name).
func NewClient() *http.Client {
	return &http.Client{
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
