package resume

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func validHello() []byte {
	return AppendHello(nil, Hello{Version: Version, ID: testID, Offset: 12345, AckEvery: 1 << 20})
}

func TestParseHello(t *testing.T) {
	edit := func(f func(b []byte) []byte) []byte { return f(validHello()) }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"valid", validHello(), nil},
		{"empty", nil, ErrMalformed},
		{"short", validHello()[:HelloLen-1], ErrMalformed},
		{"long", append(validHello(), 0), ErrMalformed},
		{"bad magic", edit(func(b []byte) []byte { b[0] = 'X'; return b }), ErrMalformed},
		{"a wire stream instead", edit(func(b []byte) []byte { copy(b, "GSSTWIRE"); return b }), ErrMalformed},
		{"version 2", edit(func(b []byte) []byte { b[8] = 2; return b }), ErrVersion},
		{"version 0", edit(func(b []byte) []byte { b[8] = 0; return b }), ErrVersion},
		{"offset too large", edit(func(b []byte) []byte { binary.BigEndian.PutUint64(b[25:], 1<<63); return b }), ErrMalformed},
		{"offset at the limit", edit(func(b []byte) []byte { binary.BigEndian.PutUint64(b[25:], maxOffset); return b }), nil},
		{"ack interval 0", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[33:], 0); return b }), ErrMalformed},
		{"ack interval too large", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[33:], 1<<30+1); return b }), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHello(tt.in)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("ParseHello: %v, want %v", err, tt.want)
			}
			if err == nil && !bytes.Equal(AppendHello(nil, h), tt.in) {
				t.Fatalf("round trip: %x, want %x", AppendHello(nil, h), tt.in)
			}
		})
	}
}

// FuzzParseHello: no input panics, and what parses encodes back to the
// same bytes (seed corpus in testdata/fuzz/FuzzParseHello).
func FuzzParseHello(f *testing.F) {
	f.Add(validHello())
	f.Add(validHello()[:20])
	f.Add([]byte("GSSTWIRE\x00\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHello(b)
		if err != nil {
			return
		}
		if h.Offset < 0 || h.Offset > maxOffset || h.AckEvery < 1 || h.AckEvery > 1<<30 || h.Version != Version {
			t.Fatalf("accepted out-of-range hello %+v", h)
		}
		if !bytes.Equal(AppendHello(nil, h), b) {
			t.Fatalf("round trip differs")
		}
	})
}

// FuzzPeerRecords: whatever a peer sends after a valid hello, the
// session neither panics nor hangs: Read ends with the data, then an
// error or EOF (seed corpus in testdata/fuzz/FuzzPeerRecords).
func FuzzPeerRecords(f *testing.F) {
	f.Add([]byte{recData, 0, 0, 0, 3, 'a', 'b', 'c', recBye, byeDone})
	f.Add([]byte{recData, 0, 0, 0, 0})
	f.Add([]byte{recData, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{recAck, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{recAck, 0xff, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{recBye, byeAborted})
	f.Add([]byte{recBye, byeRefused})
	f.Add([]byte{recBye, 9})
	f.Add([]byte{0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		d, j := net.Pipe()
		go func() {
			defer j.Close()
			go func() { _, _ = io.Copy(io.Discard, j) }()
			_, _ = j.Write(AppendHello(nil, Hello{Version: Version, ID: testID, AckEvery: 1}))
			_, _ = j.Write(b)
		}()
		s, err := Open(ctx, d, Config{ID: testID, Window: -1, SpoolMemory: 4 << 10, Spool: 64 << 10})
		if err != nil {
			return
		}
		defer s.Abort()
		got, _ := io.ReadAll(io.LimitReader(s, int64(len(b))+1))
		if len(got) > len(b) {
			t.Fatalf("read %d bytes from %d sent", len(got), len(b))
		}
	})
}
