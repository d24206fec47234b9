package integrity

import (
	"crypto/sha256"
	"hash"
)

// AsyncSHA256 is an io.Writer that computes SHA-256 on its own goroutine,
// for callers that hash a stream on the side (e.g. the stored bytes of a
// backup). Close (or Sum) must be called to stop the goroutine.
type AsyncSHA256 struct {
	a *asyncHash
	n int64
}

// NewAsyncSHA256 starts the hashing goroutine.
func NewAsyncSHA256() *AsyncSHA256 { return &AsyncSHA256{a: newAsyncHash()} }

// Write queues p for hashing; it never fails.
func (h *AsyncSHA256) Write(p []byte) (int, error) {
	h.a.Write(p)
	h.n += int64(len(p))
	return len(p), nil
}

// Size is the number of bytes written.
func (h *AsyncSHA256) Size() int64 { return h.n }

// Current waits until everything written so far is hashed and returns its
// SHA-256; writing may continue afterwards.
func (h *AsyncSHA256) Current() [32]byte {
	var out [32]byte
	copy(out[:], h.a.Sum(nil))
	return out
}

// Close stops the goroutine; Sum and Current keep returning the final sum.
func (h *AsyncSHA256) Close() { h.a.Close() }

// Sum stops the goroutine and returns the SHA-256 of everything written.
func (h *AsyncSHA256) Sum() [32]byte {
	h.a.Close()
	var out [32]byte
	copy(out[:], h.a.Sum(nil))
	return out
}

// asyncHash computes SHA-256 on its own goroutine so hashing overlaps with
// compression on another core. Written bytes are copied into a small ring of
// buffers (bounded memory: hashBuffers × hashBufSize); Write blocks only
// when the hasher is that far behind.
type asyncHash struct {
	h    hash.Hash
	cur  []byte        // buffer being filled
	full chan []byte   // filled buffers, to the hasher
	free chan []byte   // hashed buffers, back to the writer
	done chan struct{} // closed when the hasher exits
	sum  []byte        // final sum once closed
}

const (
	hashBuffers = 4
	hashBufSize = 256 << 10
)

func newAsyncHash() *asyncHash {
	a := &asyncHash{
		h:    sha256.New(),
		full: make(chan []byte, hashBuffers),
		free: make(chan []byte, hashBuffers),
		done: make(chan struct{}),
	}
	for i := 0; i < hashBuffers; i++ {
		a.free <- make([]byte, 0, hashBufSize)
	}
	go func() {
		defer close(a.done)
		for b := range a.full {
			a.h.Write(b)
			a.free <- b[:0]
		}
	}()
	return a
}

// Write queues a copy of p for hashing. It never fails.
func (a *asyncHash) Write(p []byte) {
	for len(p) > 0 {
		if a.cur == nil {
			a.cur = <-a.free
		}
		n := copy(a.cur[len(a.cur):cap(a.cur)], p)
		a.cur = a.cur[:len(a.cur)+n]
		p = p[n:]
		if len(a.cur) == cap(a.cur) {
			a.full <- a.cur
			a.cur = nil
		}
	}
}

// Sum waits until everything written so far is hashed and returns the
// SHA-256 (appended to dst).
func (a *asyncHash) Sum(dst []byte) []byte {
	if a.sum != nil {
		return append(dst, a.sum...)
	}
	if a.cur != nil && len(a.cur) > 0 {
		a.full <- a.cur
		a.cur = nil
	}
	// Holding every buffer means the hasher has processed all of them.
	held := make([][]byte, 0, hashBuffers)
	if a.cur != nil {
		held = append(held, a.cur)
		a.cur = nil
	}
	for len(held) < hashBuffers {
		held = append(held, <-a.free)
	}
	s := a.h.Sum(dst)
	for _, b := range held {
		a.free <- b
	}
	return s
}

// Close finishes hashing, stops the goroutine and freezes the sum.
func (a *asyncHash) Close() {
	if a.sum != nil {
		return
	}
	s := a.Sum(nil)
	close(a.full)
	<-a.done
	a.sum = s
}
