package storagetest

import (
	"encoding/binary"
	"hash"
	"hash/maphash"
	"io"
	"math/rand/v2"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stream is a reproducible byte stream of a given length generated on the
// fly from a seed: nothing is held in memory. It is deliberately not an
// io.Seeker, so uploads of it take the non-rewindable path.
type Stream struct {
	rng  *rand.ChaCha8
	left int64
}

// NewStream returns n bytes derived from seed.
func NewStream(seed uint64, n int64) *Stream {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return &Stream{rng: rand.NewChaCha8(s), left: n}
}

func (s *Stream) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, _ := s.rng.Read(p)
	s.left -= int64(n)
	return n, nil
}

// Bytes returns the whole stream in memory (small sizes only).
func Bytes(seed uint64, n int64) []byte {
	b, _ := io.ReadAll(NewStream(seed, n))
	return b
}

var hashSeed = maphash.MakeSeed()

// Hasher is a fast non-cryptographic hash, stable within one process.
func Hasher() hash.Hash64 {
	var h maphash.Hash
	h.SetSeed(hashSeed)
	return &h
}

// HashStream hashes the stream NewStream(seed, n) would produce.
func HashStream(seed uint64, n int64) (uint64, error) {
	h := Hasher()
	if _, err := io.CopyBuffer(h, NewStream(seed, n), make([]byte, 1<<20)); err != nil {
		return 0, err
	}
	return h.Sum64(), nil
}

// MemWatch samples the Go heap (without stopping the world) and, on Linux,
// resets and reads the process's peak RSS.
type MemWatch struct {
	stop     chan struct{}
	done     sync.WaitGroup
	peakHeap atomic.Uint64
	base     uint64
}

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

// StartMemWatch starts sampling every 20 ms.
func StartMemWatch() *MemWatch {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM
	m := &MemWatch{stop: make(chan struct{}), base: heapBytes()}
	m.peakHeap.Store(m.base)
	m.done.Add(1)
	go func() {
		defer m.done.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				if h := heapBytes(); h > m.peakHeap.Load() {
					m.peakHeap.Store(h)
				}
			}
		}
	}()
	return m
}

// Stop ends sampling and returns the heap at start, the peak heap (in-use
// spans), and the peak RSS since start (0 if unknown).
func (m *MemWatch) Stop() (base, peakHeap, peakRSS uint64) {
	close(m.stop)
	m.done.Wait()
	return m.base, m.peakHeap.Load(), PeakRSS()
}

// PeakRSS reads VmHWM from /proc/self/status, in bytes (0 if unavailable).
func PeakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			n, _ := strconv.ParseUint(v, 10, 64)
			return n << 10
		}
	}
	return 0
}
