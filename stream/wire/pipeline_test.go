package wire

import (
	"bytes"
	"crypto/rand"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// pipeOptions: adaptive options with a pipeline of workers compressors,
// against a modelled slow link, epochs of 16 frames.
func pipeOptions(sink *pacedSink, workers int, zstd bool) WriterOptions {
	sink.clock = &fakeClock{}
	return WriterOptions{Codec: "none", FrameSize: 4 << 10, CRC32C: true,
		Adaptive: &AdaptiveOptions{EpochBytes: 64 << 10, RunEpochs: 8, Now: sink.clock.Now, Workers: workers, Zstd: zstd}}
}

// mixedData is compressible text and incompressible bytes in turns (one
// 4 KiB frame in four, so every epoch holds the same mix), so that
// compressed modes also send some frames plain.
func mixedData(t *testing.T, n int) []byte {
	t.Helper()
	rows := text(n)
	for off := 0; off+4<<10 <= n; off += 16 << 10 { // one frame in four
		if _, err := rand.Read(rows[off : off+4<<10]); err != nil {
			t.Fatal(err)
		}
	}
	return rows
}

// TestPipeRoundTrip: with compressors on several goroutines, frames leave
// in stream order whatever each one's mode and size, the stream reads back
// unchanged, every frame is counted once, and on a modelled slow link the
// writer still ends up compressing.
func TestPipeRoundTrip(t *testing.T) {
	data := mixedData(t, 4<<20)
	for _, workers := range []int{2, 3, 4} {
		for _, zstd := range []bool{false, true} {
			sink := &pacedSink{perByte: time.Microsecond}
			fw, err := NewFrameWriter(sink, pipeOptions(sink, workers, zstd))
			if err != nil {
				t.Fatal(err)
			}
			if fw.pipe == nil {
				t.Fatalf("workers=%d: no pipeline", workers)
			}
			for p := data; len(p) > 0; {
				k := min(len(p), 10007) // frames straddle writes
				if _, err := fw.Write(p[:k]); err != nil {
					t.Fatal(err)
				}
				p = p[k:]
			}
			if err := fw.Close(); err != nil {
				t.Fatal(err)
			}
			st := fw.AdaptiveStats()
			if st.Plain+st.S2+st.Zstd != int64(len(data)/(4<<10)) {
				t.Fatalf("workers=%d zstd=%v: stats %+v do not add up to %d frames", workers, zstd, st, len(data)/(4<<10))
			}
			// Three quarters of the frames compress; the warm-up and
			// the probes send a share of those plain.
			if st.S2+st.Zstd < int64(len(data)/(4<<10))/2 || zstd && st.Zstd == 0 || !zstd && st.Zstd != 0 {
				t.Errorf("workers=%d zstd=%v: stats %+v, want mostly compressed", workers, zstd, st)
			}
			out, _, err := unframe(sink.Bytes(), ReaderOptions{})
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("workers=%d zstd=%v: round trip: err=%v equal=%v", workers, zstd, err, bytes.Equal(out, data))
			}
		}
	}
}

// failingSink fails every write from the n-th on and counts the writes
// it was asked for after the first failure.
type failingSink struct {
	bytes.Buffer
	n, writes, after int
}

var errSink = errors.New("connection reset")

func (s *failingSink) Write(p []byte) (int, error) {
	s.writes++
	if s.writes >= s.n {
		if s.writes > s.n {
			s.after++
		}
		return 0, errSink
	}
	return s.Buffer.Write(p)
}

// TestPipeWriteError: a failed write to the connection reaches the caller
// (from a later Write or from Close), nothing more is written after it,
// and Close leaves no goroutine behind.
func TestPipeWriteError(t *testing.T) {
	data := mixedData(t, 1<<20)
	for _, failAt := range []int{1, 2, 5, 40} {
		before := runtime.NumGoroutine()
		sink := &failingSink{n: failAt}
		o := pipeOptions(&pacedSink{}, 3, true)
		fw, err := NewFrameWriter(sink, o)
		if failAt == 1 {
			if !errors.Is(err, errSink) {
				t.Fatalf("hello write failed: err = %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		_, werr := fw.Write(data)
		cerr := fw.Close()
		if !errors.Is(cerr, errSink) || werr != nil && !errors.Is(werr, errSink) {
			t.Fatalf("fail at write %d: Write err %v, Close err %v", failAt, werr, cerr)
		}
		if sink.after != 0 {
			t.Errorf("fail at write %d: %d writes after the failure", failAt, sink.after)
		}
		if _, err := fw.Write([]byte("x")); !errors.Is(err, errSink) {
			t.Errorf("Write after the failure: %v", err)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("fail at write %d: %d goroutines after Close, %d before", failAt, n, before)
		}
	}
}

// TestPipeAbort: Abort stops the pipeline without an end frame, so the
// reader sees a truncated stream; later calls fail, and Abort after Close
// or twice is harmless.
func TestPipeAbort(t *testing.T) {
	data := mixedData(t, 1<<20)
	before := runtime.NumGoroutine()
	sink := &pacedSink{perByte: time.Microsecond}
	fw, err := NewFrameWriter(sink, pipeOptions(sink, 2, true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(data); err != nil {
		t.Fatal(err)
	}
	fw.Abort()
	fw.Abort()
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Abort, %d before", n, before)
	}
	if _, _, err := unframe(sink.Bytes(), ReaderOptions{}); !errors.Is(err, ErrTruncated) {
		t.Errorf("aborted stream: err = %v, want ErrTruncated", err)
	}
	if _, err := fw.Write([]byte("x")); err == nil {
		t.Error("Write after Abort succeeded")
	}
	if err := fw.Close(); err == nil {
		t.Error("Close after Abort succeeded")
	}

	sink = &pacedSink{perByte: time.Microsecond}
	fw, err = NewFrameWriter(sink, pipeOptions(sink, 2, true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	fw.Abort() // after Close: nothing
	if out, _, err := unframe(sink.Bytes(), ReaderOptions{}); err != nil || !bytes.Equal(out, data) {
		t.Fatalf("Abort after Close changed the stream: %v", err)
	}
}

// gateSink blocks every write until released.
type gateSink struct {
	gate chan struct{}
	mu   sync.Mutex
	n    int
}

func (s *gateSink) Write(p []byte) (int, error) {
	<-s.gate
	s.mu.Lock()
	s.n += len(p)
	s.mu.Unlock()
	return len(p), nil
}

// feed writes 1000 chunks of 1000 bytes, counting those accepted, and
// closes fw.
func feed(fw *FrameWriter, accepted *atomic.Int64) error {
	chunk := make([]byte, 1000)
	for range 1000 {
		if _, err := fw.Write(chunk); err != nil {
			return err
		}
		accepted.Add(int64(len(chunk)))
	}
	return fw.Close()
}

// TestPipeBounded: against a connection that takes nothing, the writer
// accepts a bounded amount of data (the pipeline's frames) and then
// blocks; released, it sends everything.
func TestPipeBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &gateSink{gate: make(chan struct{})}
		var accepted atomic.Int64
		done := make(chan error, 1)
		const frame, workers = 4 << 10, 3
		go func() {
			fw, err := NewFrameWriter(sink, WriterOptions{Codec: "none", FrameSize: frame, CRC32C: true,
				Adaptive: &AdaptiveOptions{Workers: workers, Zstd: true}})
			if err != nil {
				done <- err
				return
			}
			done <- feed(fw, &accepted)
		}()
		synctest.Wait() // everyone blocked: the hello's write holds the rest
		close(sink.gate)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if accepted.Load() != 1000*1000 {
			t.Fatalf("accepted %d bytes", accepted.Load())
		}
	})
	synctest.Test(t, func(t *testing.T) {
		// The hello goes through; then the connection stalls.
		sink := &gateSink{gate: make(chan struct{}, 1)}
		sink.gate <- struct{}{}
		var accepted atomic.Int64
		const frame, workers = 4 << 10, 3
		fw, err := NewFrameWriter(sink, WriterOptions{Codec: "none", FrameSize: frame, CRC32C: true,
			Adaptive: &AdaptiveOptions{Workers: workers, Zstd: true}})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- feed(fw, &accepted) }()
		synctest.Wait()
		// The pipeline's workers+2 frames: the one being sent and the
		// queue (workers+1); the Write that filled the last one waits.
		if limit := int64((workers + 2) * frame); accepted.Load() > limit {
			t.Fatalf("accepted %d bytes against a stalled connection, limit %d", accepted.Load(), limit)
		}
		if accepted.Load() == 0 {
			t.Fatal("accepted nothing")
		}
		close(sink.gate)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if accepted.Load() != 1000*1000 || sink.n < 1000*1000 {
			t.Fatalf("accepted %d, sent %d", accepted.Load(), sink.n)
		}
	})
}

// TestPipeAbortDropsQueued: Abort on a stalled connection waits only for
// the write under way; the frames queued behind it are dropped, not sent
// once the connection moves again. A Flush after Abort is an error.
func TestPipeAbortDropsQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &gateSink{gate: make(chan struct{}, 1)}
		sink.gate <- struct{}{} // the hello
		const frame, workers = 4 << 10, 2
		fw, err := NewFrameWriter(sink, WriterOptions{Codec: "none", FrameSize: frame, CRC32C: true,
			Adaptive: &AdaptiveOptions{Workers: workers}})
		if err != nil {
			t.Fatal(err)
		}
		helloSize := sink.n
		// One frame in the write, workers queued, and the caller still
		// holds a free job for the partial frame: nothing blocks yet.
		if _, err := fw.Write(make([]byte, (workers+1)*frame)); err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write([]byte("partial")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the sender is in the first frame's write
		aborted := make(chan struct{})
		go func() { fw.Abort(); close(aborted) }()
		synctest.Wait()
		close(sink.gate) // the connection moves again
		<-aborted
		if sent := sink.n - helloSize; sent != headerSize+frame {
			t.Fatalf("sent %d bytes after Abort, want the one frame under way (%d)", sent, headerSize+frame)
		}
		if err := fw.Flush(); err == nil {
			t.Fatal("Flush after Abort succeeded")
		}
	})
}
