package sst

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestKeepaliveWriter(t *testing.T) {
	var buf syncBuf
	k := &keepaliveWriter{w: &buf}
	if _, err := k.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go k.run(ctx, 200*time.Millisecond, func() {})
	time.Sleep(time.Second)
	if err := k.stop(); err != nil {
		t.Fatal(err)
	}
	n := bytes.Count([]byte(buf.String()), keepaliveFrame)
	if n < 3 || n > 6 {
		t.Errorf("%d keepalive frames in 1 s at 200 ms", n)
	}
	after := buf.String()
	time.Sleep(500 * time.Millisecond)
	if buf.String() != after {
		t.Error("keepalive after stop")
	}
}
