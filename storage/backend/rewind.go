package backend

import (
	"fmt"
	"io"
)

// RewindReader is a Put body that can be sent again: the retry decorator
// replays a Put only when its body is one (see Rewindable), and the S3
// backends then leave the retrying of its requests to that decorator. It
// is restic's shape of a replayable upload.
//
// A decorator that wraps a Put body (to count, throttle or log it) must
// wrap it with WrapBody, which keeps a rewindable body rewindable by
// construction instead of each decorator remembering to forward Seek.
type RewindReader interface {
	io.Reader
	// Rewind returns to the start of the body: the position the reader
	// had when it was made rewindable.
	Rewind() error
	// Length is the body's length from its start, or -1 if unknown.
	Length() int64
}

// Rewindable returns r as a RewindReader if r can be replayed: r is a
// RewindReader, or an io.Seeker whose position can be read (a file, a
// bytes.Reader, a strings.Reader; not a pipe or a terminal, whose Seek
// fails). A body made from a Seeker rewinds to the position r has now.
func Rewindable(r io.Reader) (RewindReader, bool) {
	if rr, ok := r.(RewindReader); ok {
		return rr, true
	}
	s, ok := r.(io.ReadSeeker)
	if !ok {
		return nil, false
	}
	start, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, false
	}
	return &seekRewinder{ReadSeeker: s, start: start}, true
}

type seekRewinder struct {
	io.ReadSeeker
	start int64
}

func (s *seekRewinder) Rewind() error {
	if _, err := s.Seek(s.start, io.SeekStart); err != nil {
		return fmt.Errorf("rewind the upload's source: %w", err)
	}
	return nil
}

func (s *seekRewinder) Length() int64 {
	cur, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return -1
	}
	end, err := s.Seek(0, io.SeekEnd)
	if _, err2 := s.Seek(cur, io.SeekStart); err != nil || err2 != nil {
		return -1
	}
	return end - s.start
}

// WrapBody returns through (a reader that reads body, e.g. a counting
// wrapper) as the Put body a decorator passes down: if body is rewindable
// the result is a RewindReader whose Rewind rewinds body and then calls
// reset (may be nil) so through can start over; otherwise through itself.
func WrapBody(body, through io.Reader, reset func()) io.Reader {
	rr, ok := Rewindable(body)
	if !ok {
		return through
	}
	return &wrappedBody{Reader: through, body: rr, reset: reset}
}

type wrappedBody struct {
	io.Reader
	body  RewindReader
	reset func()
}

func (w *wrappedBody) Rewind() error {
	if err := w.body.Rewind(); err != nil {
		return err
	}
	if w.reset != nil {
		w.reset()
	}
	return nil
}

func (w *wrappedBody) Length() int64 { return w.body.Length() }
