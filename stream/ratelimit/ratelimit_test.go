package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func TestWriterLargerThanBurst(t *testing.T) {
	l := NewLimiter(4<<20, 64<<10) // 4 MiB/s, 64 KiB burst
	var out bytes.Buffer
	w := NewWriter(context.Background(), &out, l)
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB in one Write
	start := time.Now()
	n, err := w.Write(data)
	el := time.Since(start)
	if err != nil || n != len(data) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("n=%d err=%v", n, err)
	}
	// (1 MiB - burst) at 4 MiB/s cannot take less than about 234 ms; the
	// lower bound is the limit itself, not a performance expectation.
	if el < 180*time.Millisecond {
		t.Fatalf("1 MiB passed a 4 MiB/s limiter in %v", el)
	}
}

func TestReader(t *testing.T) {
	l := NewLimiter(2<<20, 32<<10)
	data := bytes.Repeat([]byte{7}, 512<<10)
	start := time.Now()
	got, err := io.ReadAll(NewReader(context.Background(), bytes.NewReader(data), l))
	el := time.Since(start)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatal(err)
	}
	if el < 180*time.Millisecond { // the limit: at least about 234 ms
		t.Fatalf("512 KiB passed a 2 MiB/s limiter in %v", el)
	}
}

func TestUnlimited(t *testing.T) {
	l := NewLimiter(0, 0)
	var out bytes.Buffer
	if _, err := NewWriter(context.Background(), &out, l).Write(make([]byte, 10<<20)); err != nil {
		t.Fatal(err)
	}
}

func TestContextCancel(t *testing.T) {
	l := NewLimiter(1024, 1024) // 1 KiB/s: a 1 MiB write would take 17 minutes
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	n, err := NewWriter(ctx, io.Discard, l).Write(make([]byte, 1<<20))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("n=%d err=%v", n, err)
	}
	_, err = NewReader(ctx, bytes.NewReader(make([]byte, 10)), l).Read(make([]byte, 10))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("reader: %v", err)
	}
	dl, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := NewWriter(dl, io.Discard, l).Write(make([]byte, 1<<20)); err == nil {
		t.Fatal("deadline ignored")
	}
}
