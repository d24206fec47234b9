package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The network lab: two network namespaces, A and B, joined by one veth
// pair whose both ends are shaped with tc tbf. Nodes 1..N-1 live in A,
// node N in B, so every byte between node N and the others (gcomm, IST,
// SST) crosses the shaped link. The namespaces are connected to nothing
// else, so their private addresses cannot reach or clash with any other
// network: every lab uses the same 10.213.0.1 (A) and 10.213.0.2 (B).
//
// The kernels the suite runs on have tbf and htb but no netem: the link
// has a rate and can be cut, but adds no delay or loss.

// Link sides.
const (
	SideA = 0 // nodes 1..N-1
	SideB = 1 // node N
)

// linkPrefix starts every lab namespace name: <prefix><pid>-<seq>-a|b.
const linkPrefix = "gosst-lab-"

// linkDev is the veth end's name inside each namespace.
const linkDev = "lab0"

var linkAddrs = [2]string{"10.213.0.1", "10.213.0.2"}

var linkSeq atomic.Int64

// Link is a shaped veth pair between two network namespaces created and
// removed by this process.
type Link struct {
	// NS are the namespace names (ip netns), side A then side B.
	NS [2]string
	// Addr are the IPv4 addresses of side A and side B.
	Addr [2]string

	mu     sync.Mutex
	closed bool
}

// NewLink creates the two namespaces and the veth pair between them, up
// and unshaped. It first removes lab namespaces left by a previous run
// whose process is gone. On error nothing it created is left behind.
func NewLink(ctx context.Context) (*Link, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("cluster: the network lab needs root (network namespaces, tc)")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("cluster: the network lab needs %s; run `make deps` (apt-get install iproute2)", tool)
		}
	}
	if err := RemoveStaleLinks(ctx); err != nil {
		return nil, err
	}
	base := fmt.Sprintf("%s%d-%d-", linkPrefix, os.Getpid(), linkSeq.Add(1))
	l := &Link{NS: [2]string{base + "a", base + "b"}, Addr: linkAddrs}
	if err := l.setup(ctx); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

func (l *Link) setup(ctx context.Context) error {
	for _, ns := range l.NS {
		if err := run(ctx, "ip", "netns", "add", ns); err != nil {
			return err
		}
	}
	if err := run(ctx, "ip", "link", "add", linkDev, "netns", l.NS[SideA], "type", "veth",
		"peer", "name", linkDev, "netns", l.NS[SideB]); err != nil {
		return err
	}
	for side, ns := range l.NS {
		for _, args := range [][]string{
			{"addr", "add", l.Addr[side] + "/24", "dev", linkDev},
			{"link", "set", "lo", "up"},
			{"link", "set", linkDev, "up"},
		} {
			if err := run(ctx, "ip", append([]string{"-n", ns}, args...)...); err != nil {
				return err
			}
		}
	}
	return nil
}

// SetRate shapes both directions of the link to rate, in tc's notation
// ("100mbit", "1gbit", "500kbit"); "" removes the shaping.
func (l *Link) SetRate(ctx context.Context, rate string) error {
	for _, ns := range l.NS {
		if rate == "" {
			// Deleting an absent root qdisc fails; replace with the
			// default-like pfifo first so the delete always has one.
			if err := run(ctx, "tc", "-n", ns, "qdisc", "replace", "dev", linkDev, "root", "pfifo"); err != nil {
				return err
			}
			if err := run(ctx, "tc", "-n", ns, "qdisc", "del", "dev", linkDev, "root"); err != nil {
				return err
			}
			continue
		}
		bps, err := ParseRate(rate)
		if err != nil {
			return err
		}
		if err := run(ctx, "tc", "-n", ns, "qdisc", "replace", "dev", linkDev, "root", "tbf",
			"rate", strconv.FormatInt(bps, 10)+"bit", "burst", strconv.FormatInt(tbfBurst(bps), 10), "latency", "100ms"); err != nil {
			return err
		}
	}
	return nil
}

// Qdisc returns tc's description of side's root queueing discipline on
// the link (e.g. "qdisc tbf 8001: root refcnt 2 rate 1Gbit burst …").
func (l *Link) Qdisc(ctx context.Context, side int) (string, error) {
	out, err := exec.CommandContext(ctx, "tc", "-n", l.NS[side], "qdisc", "show", "dev", linkDev).Output()
	if err != nil {
		return "", fmt.Errorf("cluster: qdisc of %s: %w", l.NS[side], err)
	}
	return string(out), nil
}

// tbfBurst is the token bucket's size in bytes for a rate in bit/s: 10 ms
// of traffic (a kernel tick is at most 10 ms, and the bucket must refill
// at least one tick's worth), and never below 64 KiB so a full-size GSO
// segment fits.
func tbfBurst(bps int64) int64 {
	b := bps / 8 / 100
	if b < 64<<10 {
		b = 64 << 10
	}
	return b
}

// ParseRate parses a rate in tc's notation (decimal units, as tc reads
// them: bit, kbit, mbit, gbit; bare digits are bit/s) into bit/s.
func ParseRate(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}
	num, mult := strings.ToLower(strings.TrimSpace(s)), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSuffix(num, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v <= 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("cluster: link rate %q: want a positive number with bit, kbit, mbit or gbit (e.g. 100mbit)", s)
	}
	return v * mult, nil
}

// Cut takes both ends of the link down: no packet passes until Restore.
// Connections are not reset; they stall as on a pulled cable.
func (l *Link) Cut(ctx context.Context) error { return l.setLink(ctx, "down") }

// Restore brings both ends of the link back up after Cut.
func (l *Link) Restore(ctx context.Context) error { return l.setLink(ctx, "up") }

func (l *Link) setLink(ctx context.Context, state string) error {
	for _, ns := range l.NS {
		if err := run(ctx, "ip", "-n", ns, "link", "set", linkDev, state); err != nil {
			return err
		}
	}
	return nil
}

// TxBytes is the number of bytes side has sent over the link so far.
func (l *Link) TxBytes(ctx context.Context, side int) (uint64, error) {
	out, err := exec.CommandContext(ctx, "ip", "-n", l.NS[side], "-j", "-s", "link", "show", "dev", linkDev).Output()
	if err != nil {
		return 0, fmt.Errorf("cluster: link statistics of %s: %w", l.NS[side], err)
	}
	var links []struct {
		Stats struct {
			TX struct {
				Bytes uint64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("cluster: link statistics of %s: unexpected output %q", l.NS[side], out)
	}
	return links[0].Stats.TX.Bytes, nil
}

// Listen opens a TCP listener inside side's namespace (addr as for
// net.Listen, e.g. "10.213.0.2:0").
func (l *Link) Listen(ctx context.Context, side int, addr string) (net.Listener, error) {
	var ln net.Listener
	err := l.inNamespace(side, func() (err error) {
		ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp4", addr)
		return err
	})
	return ln, err
}

// Dial connects from inside side's namespace.
func (l *Link) Dial(ctx context.Context, side int, addr string) (net.Conn, error) {
	var c net.Conn
	err := l.inNamespace(side, func() (err error) {
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp4", addr)
		return err
	})
	return c, err
}

// inNamespace runs fn on an OS thread switched into side's network
// namespace; sockets created there stay in it. The thread is never
// switched back: its goroutine ends locked, so the runtime discards it.
func (l *Link) inNamespace(side int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		f, err := os.Open("/run/netns/" + l.NS[side])
		if err != nil {
			errc <- fmt.Errorf("cluster: namespace %s: %w", l.NS[side], err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("cluster: enter namespace %s: %w", l.NS[side], err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// command returns argv running argv inside side's namespace. `ip netns
// exec` execs the program, so the started process's PID is the program's.
func (l *Link) command(side int, argv ...string) []string {
	return append([]string{"ip", "netns", "exec", l.NS[side]}, argv...)
}

// Close removes both namespaces (and with them the veth pair). Processes
// still running inside keep the namespace alive but unreachable; stop
// nodes first. Close is idempotent.
func (l *Link) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for _, ns := range l.NS {
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			continue
		}
		if err := run(context.Background(), "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RemoveStaleLinks removes lab namespaces whose creating process no longer
// exists (a test run that crashed or was killed). Namespaces of live
// processes, including other test processes, are left alone.
func RemoveStaleLinks(ctx context.Context) error {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: list network namespaces: %w", err)
	}
	var errs []error
	for _, e := range entries {
		pid, ok := stalePID(e.Name())
		if !ok || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue // owner alive (or its PID reused): not ours to judge
		}
		if err := run(ctx, "ip", "netns", "del", e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stalePID extracts the owner PID from a lab namespace name.
func stalePID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, linkPrefix)
	if !ok {
		return 0, false
	}
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cluster: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
