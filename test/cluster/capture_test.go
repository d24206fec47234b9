package cluster_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gosst/gosst/test/cluster"
)

// TestCaptureSeesLinkTraffic: a capture on side B's end of the link sees
// a needle that side A sends to a port on side B, and one that B sends
// back, counts the payload of both directions, and does not report a
// needle nobody sent. It needs no MariaDB.
func TestCaptureSeesLinkTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: creates network namespaces")
	}
	needNetlab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := newLink(t, ctx)
	if err := l.SetRate(ctx, "100mbit"); err != nil {
		t.Fatal(err)
	}
	ln, err := l.Listen(ctx, cluster.SideB, net.JoinHostPort(l.Addr[cluster.SideB], "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, portStr, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(portStr)
	toB, fromB, never := []byte("needle-sent-from-A-to-B"), []byte("needle-sent-back-from-B"), []byte("needle-nobody-sent")
	capt, err := l.StartCapture(ctx, cluster.SideB, port, toB, fromB, never)
	if err != nil {
		t.Fatal(err)
	}
	defer capt.Stop()

	// 4 MiB of random bytes with the needle in the middle.
	const size = 4 << 20
	payload := make([]byte, size)
	_, _ = rand.Read(payload)
	copy(payload[size/2:], toB)
	conn, err := l.Dial(ctx, cluster.SideA, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	g, gctx := errgroup.WithContext(ctx)
	var got []byte
	g.Go(func() error {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		defer c.Close()
		stop := context.AfterFunc(gctx, func() { c.Close() })
		defer stop()
		if got, err = io.ReadAll(c); err != nil {
			return err
		}
		_, err = c.Write(fromB)
		return err
	})
	g.Go(func() error {
		defer conn.Close()
		stop := context.AfterFunc(gctx, func() { conn.Close() })
		defer stop()
		if _, err := conn.Write(payload); err != nil {
			return err
		}
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			return err
		}
		back, err := io.ReadAll(conn)
		if err == nil && !bytes.Equal(back, fromB) {
			t.Errorf("A read back %q, want %q", back, fromB)
		}
		return err
	})
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("B received %d bytes, not the %d sent", len(got), len(payload))
	}
	res, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("capture: %d bytes to the port, %d from it, %d segments, %d dropped, %d truncated", res.ToPort, res.FromPort, res.Packets, res.Dropped, res.Truncated)
	if res.Dropped != 0 || res.Truncated != 0 {
		t.Fatalf("capture lost packets: %d dropped, %d truncated", res.Dropped, res.Truncated)
	}
	if res.ToPort < size || res.FromPort < int64(len(fromB)) {
		t.Errorf("capture counted %d bytes to the port and %d from it; sent %d and %d", res.ToPort, res.FromPort, size, len(fromB))
	}
	if want := []bool{true, true, false}; !slices.Equal(res.Found, want) {
		t.Errorf("found %v, want %v (A->B needle, B->A needle, unsent needle)", res.Found, want)
	}
}
