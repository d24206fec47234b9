// Package testport hands out loopback TCP ports to test servers (cluster
// nodes, the S3 server) so that they cannot collide with each other, with
// other test processes, or with any process's outgoing connections.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Ports for test nodes come from below the kernel's ephemeral range, so an
// outgoing connection of another process can never take one between our
// check and mariadbd's bind, and each is reserved across processes by an
// exclusive flock on a file named after it: the parallel test packages of
// `go test ./...` never hand out the same port. A lock is released when the
// process that holds it exits, however it exits.
const (
	portLo = 20000
	portHi = 32000 // exclusive; lowered further if the ephemeral range starts below it
)

var (
	portMu    sync.Mutex
	portLocks []*os.File // held for the life of the process
)

// Reserve reserves n distinct free TCP ports on 127.0.0.1 for the life of
// the process.
func Reserve(n int) ([]int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	lo, hi := portLo, portHi
	if eph := ephemeralStart(); eph > 0 && eph < hi {
		hi = eph
	}
	if hi-lo < 100 {
		return nil, fmt.Errorf("testport: no port range below the ephemeral range (it starts at %d)", hi)
	}
	dir := filepath.Join(os.TempDir(), "gosst-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("testport: port lock dir: %w", err)
	}
	ports := make([]int, 0, n)
	span := hi - lo
	start := rand.IntN(span)
	for i := 0; i < span && len(ports) < n; i++ {
		p := lo + (start+i)%span
		f, ok := lockPort(dir, p)
		if !ok {
			continue
		}
		if !bindable(p) {
			f.Close()
			continue
		}
		portLocks = append(portLocks, f)
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("testport: found only %d of %d free ports in %d-%d", len(ports), n, lo, hi-1)
	}
	return ports, nil
}

func lockPort(dir string, p int) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}

// bindable reports whether nothing listens on port p (TCP on 127.0.0.1;
// galera's gcomm and IST ports are TCP too).
func bindable(p int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// ephemeralStart is the first port of the kernel's ephemeral range, or 0.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.Atoi(f[0])
	return v
}
