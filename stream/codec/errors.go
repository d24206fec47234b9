package codec

import (
	"errors"
	"fmt"
	"io"
)

// Errors from the reader or writer beneath a codec (a decrypting reader, a
// network connection) are returned unchanged, so that they keep naming the
// layer that failed; only errors of the codec itself get its name as prefix.
// To tell them apart, the codec's source and sink are wrapped and their
// errors marked on the way in.

type passError struct{ err error }

func (e *passError) Error() string { return e.err.Error() }
func (e *passError) Unwrap() error { return e.err }

type markedReader struct{ r io.Reader }

func (m markedReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if err != nil && err != io.EOF {
		err = &passError{err}
	}
	return n, err
}

type markedWriter struct{ w io.Writer }

func (m markedWriter) Write(p []byte) (int, error) {
	n, err := m.w.Write(p)
	if err != nil {
		err = &passError{err}
	}
	return n, err
}

// layerError returns err unchanged if it came from beneath the codec, and
// otherwise prefixes it with "<codec>: <op>:".
func layerError(codecName, op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var pe *passError
	if errors.As(err, &pe) {
		return pe.err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: stream truncated: %w", codecName, err)
	}
	return fmt.Errorf("%s: %s: %w", codecName, op, err)
}
