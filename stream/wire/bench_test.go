package wire

import (
	"bytes"
	"io"
	"testing"
)

func BenchmarkFrameWriter(b *testing.B) {
	data := payload(8 << 20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		fw, _ := NewFrameWriter(io.Discard, WriterOptions{Codec: "zstd"})
		for p := data; len(p) > 0; p = p[min(len(p), 32<<10):] {
			fw.Write(p[:min(len(p), 32<<10)])
		}
		if err := fw.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFrameReader(b *testing.B) {
	data := payload(8 << 20)
	var buf bytes.Buffer
	frame(&buf, WriterOptions{Codec: "zstd"}, data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		fr, err := NewFrameReader(bytes.NewReader(buf.Bytes()), ReaderOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, fr, make([]byte, 64<<10)); err != nil {
			b.Fatal(err)
		}
	}
}
