package integrity

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/gosst/gosst/stream/codec"
)

// BenchmarkSHA256 is the cost integrity adds on top of the codec.
func BenchmarkSHA256(b *testing.B) {
	data := testData(8<<20, 1)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sha256.Sum256(data)
	}
}

func BenchmarkSealed(b *testing.B) {
	data := testData(8<<20, 1)
	for _, name := range []string{"zstd", "s2", "none"} {
		c, _ := codec.Lookup(name)
		stored, sum := seal(b, c, data)
		b.Run("write-"+name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				w, _ := NewWriter(io.Discard, c)
				w.Write(data)
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("read-"+name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(stored), c, WithExpected(sum))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
	}
}
