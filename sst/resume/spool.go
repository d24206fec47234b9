package resume

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"golang.org/x/sys/unix"
)

// spool holds the bytes [base, end) of a stream: sent or not, but not yet
// acknowledged by the peer. The newest bytes go to memory while less than
// memMax is held there, else to a file in dir (created on first use,
// removed by close). All of it together never exceeds max bytes, counting
// file space not yet given back to the filesystem. Not safe for
// concurrent use: the session serialises calls.
type spool struct {
	memMax, max int64
	dir         string
	blockSize   int

	base, end int64
	segs      []segment
	memHeld   int64 // bytes of memory blocks held
	free      [][]byte

	f         *os.File
	fileEnd   int64 // append position in the file
	fileFreed int64 // file space before this is given back
	noPunch   bool  // the filesystem cannot punch holes
	peakHeld  int64
	spilled   int64 // bytes ever written to the file
}

// segment is a run of the stream held in one memory block or one
// contiguous range of the file.
type segment struct {
	start, end int64
	mem        []byte // nil for a file segment
	filePos    int64
}

func newSpool(memMax, limit int64, dir string) *spool {
	// Blocks of at most an eighth of the memory: a block is given back
	// only when all of it is acknowledged, so this bounds the slack.
	bs := min(int64(1<<20), max(memMax/8, 4<<10))
	return &spool{memMax: memMax, max: limit, dir: dir, blockSize: int(bs)}
}

// held is how many bytes the spool holds: the unacknowledged stream. The
// memory it takes is up to two blocks more (a partly acknowledged first
// block, a partly filled last one), plus up to four free blocks kept for
// reuse; on a filesystem that cannot punch holes, the file's space comes
// back only when the file empties.
func (s *spool) held() int64 { return s.end - s.base }

// fits says whether n more bytes can be appended without exceeding max.
func (s *spool) fits(n int64) bool { return s.held()+n <= s.max }

// append adds p at the end. It fails with ErrSpoolFull if p does not fit
// (nothing is appended then), or with the file's write error.
func (s *spool) append(p []byte) error {
	if !s.fits(int64(len(p))) {
		return fmt.Errorf("%w: %d bytes not yet acknowledged by the peer, %d more do not fit in %d", ErrSpoolFull, s.end-s.base, len(p), s.max)
	}
	for len(p) > 0 {
		var n int
		var err error
		if s.tailMemRoom() > 0 || s.memHeld+int64(s.blockSize) <= s.memMax {
			n = s.appendMem(p)
		} else {
			n, err = s.appendFile(p)
			if err != nil {
				return err
			}
		}
		p = p[n:]
	}
	s.peakHeld = max(s.peakHeld, s.held())
	return nil
}

func (s *spool) tailMemRoom() int {
	if len(s.segs) == 0 {
		return 0
	}
	t := &s.segs[len(s.segs)-1]
	if t.mem == nil {
		return 0
	}
	return cap(t.mem) - len(t.mem)
}

func (s *spool) appendMem(p []byte) int {
	if s.tailMemRoom() == 0 {
		var b []byte
		if k := len(s.free); k > 0 {
			b, s.free = s.free[k-1][:0], s.free[:k-1]
		} else {
			b = make([]byte, 0, s.blockSize)
		}
		s.memHeld += int64(cap(b))
		s.segs = append(s.segs, segment{start: s.end, end: s.end, mem: b})
	}
	t := &s.segs[len(s.segs)-1]
	n := min(len(p), cap(t.mem)-len(t.mem))
	t.mem = append(t.mem, p[:n]...)
	t.end += int64(n)
	s.end += int64(n)
	return n
}

func (s *spool) appendFile(p []byte) (int, error) {
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "gosst-spool-*")
		if err != nil {
			return 0, fmt.Errorf("resume spool: %w", err)
		}
		// Nobody else needs the name: unlinked at once, the space goes
		// back even if this process is killed.
		_ = os.Remove(f.Name())
		s.f = f
	}
	if _, err := s.f.WriteAt(p, s.fileEnd); err != nil {
		return 0, fmt.Errorf("resume spool: %w", err)
	}
	n := len(p)
	if k := len(s.segs); k > 0 && s.segs[k-1].mem == nil && s.segs[k-1].filePos+(s.segs[k-1].end-s.segs[k-1].start) == s.fileEnd {
		s.segs[k-1].end += int64(n)
	} else {
		s.segs = append(s.segs, segment{start: s.end, end: s.end + int64(n), filePos: s.fileEnd})
	}
	s.fileEnd += int64(n)
	s.end += int64(n)
	s.spilled += int64(n)
	return n, nil
}

// readAt copies bytes from offset off (base <= off < end) into p, at
// most to the end of one segment, and returns how many.
func (s *spool) readAt(p []byte, off int64) (int, error) {
	if off < s.base || off >= s.end {
		return 0, fmt.Errorf("resume spool: offset %d outside [%d, %d)", off, s.base, s.end)
	}
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].end > off })
	g := s.segs[i]
	n := int(min(int64(len(p)), g.end-off))
	if g.mem != nil {
		return copy(p[:n], g.mem[off-g.start:]), nil
	}
	if _, err := s.f.ReadAt(p[:n], g.filePos+off-g.start); err != nil {
		return 0, fmt.Errorf("resume spool: %w", err)
	}
	return n, nil
}

// trim drops the bytes before off (base <= off <= end) and gives back
// the memory and file space they used.
func (s *spool) trim(off int64) error {
	if off < s.base || off > s.end {
		return fmt.Errorf("resume spool: trim to %d outside [%d, %d]", off, s.base, s.end)
	}
	s.base = off
	k := 0
	for k < len(s.segs) && s.segs[k].end <= off {
		if g := s.segs[k]; g.mem != nil {
			s.memHeld -= int64(cap(g.mem))
			if len(s.free) < 4 {
				s.free = append(s.free, g.mem[:0])
			}
		}
		k++
	}
	s.segs = append(s.segs[:0], s.segs[k:]...)
	if s.f == nil {
		return nil
	}
	// File space before the first byte still held in the file goes back.
	firstFile := s.fileEnd
	for _, g := range s.segs {
		if g.mem == nil {
			firstFile = g.filePos + max(0, s.base-g.start)
			break
		}
	}
	if firstFile == s.fileEnd {
		// No file segment left: start the file over.
		if err := s.f.Truncate(0); err != nil {
			return fmt.Errorf("resume spool: %w", err)
		}
		s.fileEnd, s.fileFreed = 0, 0
		return nil
	}
	if firstFile > s.fileFreed && !s.noPunch {
		err := unix.Fallocate(int(s.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, s.fileFreed, firstFile-s.fileFreed)
		switch {
		case err == nil:
			s.fileFreed = firstFile
		case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS):
			// The space comes back only when the file empties.
			s.noPunch = true
		default:
			return fmt.Errorf("resume spool: give back file space: %w", err)
		}
	}
	return nil
}

// close removes the file; the spool is empty afterwards.
func (s *spool) close() error {
	s.segs, s.free, s.memHeld = nil, nil, 0
	s.base = s.end
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	s.fileEnd, s.fileFreed = 0, 0
	return err
}
