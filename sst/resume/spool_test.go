package resume

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestSpool appends, reads and trims in many patterns against a plain
// byte slice as the model, with memory, a file, and both.
func TestSpool(t *testing.T) {
	tests := []struct {
		name       string
		mem, limit int64
		spills     bool
	}{
		{"memory only", 1 << 20, 1 << 20, false},
		{"file only", 0, 256 << 10, true},
		{"memory then file", 32 << 10, 256 << 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSpool(tt.mem, tt.limit, t.TempDir())
			defer s.close()
			r := rand.New(rand.NewPCG(1, 2))
			var model []byte // the stream from offset 0
			for round := 0; round < 2000; round++ {
				switch r.IntN(3) {
				case 0, 1:
					p := randomData(1+r.IntN(8<<10), uint64(round))
					if err := s.append(p); err != nil {
						if !errors.Is(err, ErrSpoolFull) {
							t.Fatal(err)
						}
						if int64(len(model))-s.base+int64(len(p)) <= tt.limit {
							t.Fatalf("append of %d refused with %d held of %d", len(p), s.held(), tt.limit)
						}
						continue
					}
					model = append(model, p...)
				case 2:
					if s.end > s.base {
						if err := s.trim(s.base + r.Int64N(s.end-s.base+1)); err != nil {
							t.Fatal(err)
						}
					}
				}
				if s.end != int64(len(model)) || s.held() > tt.limit {
					t.Fatalf("end %d, model %d, held %d of %d", s.end, len(model), s.held(), tt.limit)
				}
				// Read back a random range.
				if s.end > s.base {
					off := s.base + r.Int64N(s.end-s.base)
					buf := make([]byte, 1+r.IntN(16<<10))
					n, err := s.readAt(buf, off)
					if err != nil || n == 0 || !bytes.Equal(buf[:n], model[off:off+int64(n)]) {
						t.Fatalf("readAt(%d): %d, %v, or wrong bytes", off, n, err)
					}
				}
			}
			if (s.spilled > 0) != tt.spills {
				t.Fatalf("spilled %d bytes", s.spilled)
			}
		})
	}
}

// TestSpoolGivesBackFileSpace: acknowledged file space is punched out,
// and the file starts over when it empties.
func TestSpoolGivesBackFileSpace(t *testing.T) {
	s := newSpool(0, 1<<20, t.TempDir())
	defer s.close()
	for range 8 {
		if err := s.append(make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.trim(300 << 10); err != nil {
		t.Fatal(err)
	}
	if !s.noPunch && s.fileFreed != 300<<10 {
		t.Fatalf("file space given back up to %d, want %d", s.fileFreed, 300<<10)
	}
	if err := s.trim(s.end); err != nil {
		t.Fatal(err)
	}
	fi, err := s.f.Stat()
	if err != nil || fi.Size() != 0 || s.fileEnd != 0 {
		t.Fatalf("file not started over: %v, size %d", err, fi.Size())
	}
}

func TestSpoolRefusesOutOfRange(t *testing.T) {
	s := newSpool(1<<10, 4<<10, t.TempDir())
	defer s.close()
	if err := s.append(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := s.trim(101); err == nil {
		t.Fatal("trim beyond the end accepted")
	}
	if err := s.trim(50); err != nil {
		t.Fatal(err)
	}
	if err := s.trim(49); err == nil {
		t.Fatal("trim backwards accepted")
	}
	if _, err := s.readAt(make([]byte, 1), 49); err == nil {
		t.Fatal("read before the base accepted")
	}
	if err := s.append(make([]byte, 4<<10)); !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("append beyond the limit: %v", err)
	}
}
