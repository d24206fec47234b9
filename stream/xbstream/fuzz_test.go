package xbstream

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes to Reader. Properties: no panic and no
// allocation beyond the payload cap; a clean EOF only after input that is an
// exact sequence of chunks; every error is a *FormatError naming the stream
// offset where the failing chunk starts; and re-encoding the chunks returned
// reproduces the input bytes they were read from.
//
// Seeds: testdata/fuzz/FuzzReader (real mbstream -c and mariabackup output,
// see testdata/README.md) plus the cases below.
func FuzzReader(f *testing.F) {
	f.Add([]byte{})
	f.Add(cat(rawP("a.txt", 0, "hello xbstream\n"), rawE("a.txt"), rawE("empty.dat")))
	f.Add(cat(rawP("db/t.MAD", 0, "0123", FlagRewrite), rawS("db/t.MAD", 2), rawP("db/t.MAD", 2, "x"),
		rawE("db/t.MAD"), rawR("db/t.MAD", "db/u.MAD"), rawD("db/u.MAD")))
	f.Add(unknownChunk("x", "ignored"))
	f.Add(rawP("x", 0, "abc")[:30])
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		r.MaxPayload = 1 << 20
		var re []byte
		for {
			c, err := r.Next()
			if err == io.EOF {
				if !bytes.Equal(re, data) {
					t.Fatalf("clean EOF but chunks re-encode to %d of %d bytes", len(re), len(data))
				}
				return
			}
			if err != nil {
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("error %v (%T) is not a *FormatError", err, err)
				}
				if fe.Offset != int64(len(re)) {
					t.Fatalf("error offset %d, want %d: %v", fe.Offset, len(re), err)
				}
				if _, err2 := r.Next(); err2 != err {
					t.Fatalf("error not sticky")
				}
				return
			}
			if c.StreamOffset != int64(len(re)) {
				t.Fatalf("StreamOffset %d, want %d", c.StreamOffset, len(re))
			}
			if len(c.Path) > MaxPathLen || len(c.NewPath) > MaxPathLen || len(c.Payload) > r.MaxPayload || c.Offset < 0 {
				t.Fatalf("limits not enforced: %+v", c)
			}
			if hasPayload(c.Type) && crc32.ChecksumIEEE(c.Payload) != c.Checksum {
				t.Fatalf("checksum not verified")
			}
			if !c.Type.Known() && c.Flags&FlagIgnorable == 0 {
				t.Fatalf("unknown type %s accepted without FlagIgnorable", c.Type)
			}
			re = append(re, rawChunk(*c)...)
			if r.Offset() != int64(len(re)) || !bytes.Equal(re, data[:len(re)]) {
				t.Fatalf("chunk %+v does not re-encode to its input bytes", c)
			}
		}
	})
}
