package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestHashCounter(t *testing.T) {
	sum := sha256.Sum256([]byte("hello world"))
	obj := Object{Size: 11, SHA256: hex.EncodeToString(sum[:])}
	for _, c := range []struct {
		name   string
		writes []string
		want   bool
	}{
		{"whole object in pieces", []string{"hello", " ", "world"}, true},
		{"short", []string{"hello"}, false},
		{"same size, other bytes", []string{"hello World"}, false},
		{"trailing bytes", []string{"hello world", "!"}, false},
		{"nothing", nil, false},
	} {
		h := NewHashCounter()
		var n int64
		for _, w := range c.writes {
			if k, err := h.Write([]byte(w)); err != nil || k != len(w) {
				t.Fatalf("%s: Write = %d, %v", c.name, k, err)
			}
			n += int64(len(w))
		}
		if h.Size() != n || h.Matches(obj) != c.want {
			t.Errorf("%s: size %d (want %d), matches %v (want %v)", c.name, h.Size(), n, h.Matches(obj), c.want)
		}
	}
}
