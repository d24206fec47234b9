package codec

import (
	"bytes"
	"io"
	"testing"
)

const benchSize = 8 << 20

func benchCodecs() []struct {
	name string
	c    Codec
} {
	return []struct {
		name string
		c    Codec
	}{
		{"zstd-1", must(NewZstd(ZstdOptions{Level: 1}))},
		{"zstd-3", must(NewZstd(ZstdOptions{Level: 3}))},
		{"zstd-3-sync", must(NewZstd(ZstdOptions{Level: 3, Concurrency: 1, DecoderConcurrency: 1}))},
		{"zstd-7", must(NewZstd(ZstdOptions{Level: 7}))},
		{"zstd-19", must(NewZstd(ZstdOptions{Level: 19}))},
		{"s2", must(NewS2(S2Options{}))},
		{"s2-better", must(NewS2(S2Options{Level: "better"}))},
	}
}

func BenchmarkCompress(b *testing.B) {
	data := testData(benchSize, 1)
	for _, bc := range benchCodecs() {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var size int
			for b.Loop() {
				var cw countW
				w, _ := bc.c.NewWriter(&cw)
				w.Write(data)
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				size = cw.n
			}
			b.ReportMetric(float64(len(data))/float64(size), "ratio")
		})
	}
}

func BenchmarkDecompress(b *testing.B) {
	data := testData(benchSize, 1)
	for _, bc := range benchCodecs() {
		b.Run(bc.name, func(b *testing.B) {
			enc := compress(b, bc.c, data)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				r, _ := bc.c.NewReader(bytes.NewReader(enc))
				if _, err := io.Copy(io.Discard, r); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
	}
}

type countW struct{ n int }

func (c *countW) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }
