package crypt

import (
	"bytes"
	"io"
	"testing"

	"filippo.io/age"
)

func BenchmarkAge(b *testing.B) {
	id, _ := age.GenerateX25519Identity()
	data := sample(8 << 20)
	b.Run("encrypt", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			w, _ := Encrypt(io.Discard, id.Recipient())
			w.Write(data)
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decrypt", func(b *testing.B) {
		var ct bytes.Buffer
		w, _ := Encrypt(&ct, id.Recipient())
		w.Write(data)
		w.Close()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			r, err := Decrypt(bytes.NewReader(ct.Bytes()), id)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
