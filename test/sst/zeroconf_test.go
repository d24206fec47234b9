package sst_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gosst/gosst/test/cluster"
)

// scanWriter counts what passes and reports whether needle was in it,
// across write boundaries, without keeping the stream.
type scanWriter struct {
	mu     sync.Mutex
	needle []byte
	tail   []byte
	n      int64
	found  bool
}

func (s *scanWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n += int64(len(p))
	buf := append(s.tail, p...)
	if bytes.Contains(buf, s.needle) {
		s.found = true
	}
	if k := len(s.needle) - 1; len(buf) > k {
		buf = buf[len(buf)-k:]
	}
	s.tail = append([]byte(nil), buf...)
	return len(p), nil
}

// TestZeroConfEncrypted: no certificate on any node (no tca/tcert/tkey,
// no ssl-*) and compression off. Node 3 joins by full gosst SST through a
// forwarder that sees every byte between donor and joiner; a marker row
// inserted before the SST arrives on node 3, and the bytes on the network
// never contain it (nor any other plaintext of it): the SST was encrypted
// with the joiner's ephemeral key without any configuration.
func TestZeroConfEncrypted(t *testing.T) {
	ctx, n3 := wipedJoiner(t)
	var rb [16]byte
	_, _ = rand.Read(rb[:])
	marker := "gosst-zeroconf-marker-" + hex.EncodeToString(rb[:])
	mustExec(t, ctx, shared.Node(1), "INSERT INTO sstfault.t (v) VALUES (?)", marker)
	zeroConf := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "tca=") || strings.HasPrefix(l, "tcert=") || strings.HasPrefix(l, "tkey=") || strings.HasPrefix(l, "ssl-mode=") {
				continue
			}
			keep = append(keep, l)
		}
		// Uncompressed, so that a cleartext transfer would show the row.
		return strings.TrimRight(strings.Join(keep, "\n"), "\n") + "\n\n[gosst]\ncompression=none\n"
	}
	for _, n := range shared.Nodes {
		editConfig(t, n, zeroConf)
	}
	// The joiner listens on inner; the forwarder takes the announced port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inner := l.Addr().String()
	l.Close()
	editConfig(t, n3, addSST("listen-address="+inner))
	outer, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", n3.SSTPort))
	if err != nil {
		t.Fatal(err)
	}
	seen := &scanWriter{needle: []byte(marker)}
	fwdDone := make(chan struct{})
	go func() {
		defer close(fwdDone)
		c, err := outer.Accept()
		outer.Close()
		if err != nil {
			return
		}
		defer c.Close()
		u, err := net.Dial("tcp", inner)
		if err != nil {
			return
		}
		defer u.Close()
		back := make(chan struct{})
		go func() { _, _ = io.Copy(io.MultiWriter(c, seen), u); c.Close(); close(back) }()
		_, _ = io.Copy(io.MultiWriter(u, seen), c)
		u.Close()
		<-back
	}()
	t.Cleanup(func() { outer.Close(); <-fwdDone })

	off := n3.LogSize()
	offs := map[int]int64{1: shared.Node(1).LogSize(), 2: shared.Node(2).LogSize()}
	if err := n3.Start(ctx); err != nil {
		t.Fatalf("node 3 did not join with zero configuration: %v\n%s", err, cluster.Tail(n3.LogSince(off), 40))
	}
	select {
	case <-fwdDone:
	case <-time.After(2 * time.Minute): // safety net: the donor closed long ago
		t.Fatal("the forwarder's connection did not end after the SST")
	}
	log3 := n3.LogSince(off)
	if l := cluster.GrepLines(log3, "ephemeral key"); len(l) == 0 {
		t.Errorf("joiner did not log the ephemeral key:\n%s", cluster.Tail(log3, 30))
	} else {
		t.Logf("joiner: %s", strings.TrimSpace(l[len(l)-1]))
	}
	donorLog := shared.Node(1).LogSince(offs[1]) + shared.Node(2).LogSince(offs[2])
	if l := cluster.GrepLines(donorLog, "pinned to the fingerprint"); len(l) == 0 {
		t.Errorf("no donor logged the pinned ephemeral key")
	} else {
		t.Logf("donor: %s", strings.TrimSpace(l[0]))
	}
	seen.mu.Lock()
	n, found := seen.n, seen.found
	seen.mu.Unlock()
	t.Logf("forwarded %d bytes between donor and joiner", n)
	if n < 1<<20 {
		t.Errorf("only %d bytes passed the forwarder: the SST did not go through it", n)
	}
	if found {
		t.Errorf("the marker row %q crossed the network in cleartext", marker)
	}
	got, err := n3.QueryString(ctx, "SELECT COUNT(*) FROM sstfault.t WHERE v = '"+marker+"'")
	if err != nil || got != "1" {
		t.Errorf("marker row on node 3: %q, %v", got, err)
	}
}
