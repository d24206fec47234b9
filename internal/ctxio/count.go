package ctxio

import "io"

// CountingReader counts the bytes read through it (N). Not safe for
// concurrent use.
type CountingReader struct {
	R io.Reader
	N int64
}

// Read reads from R and adds what it read to N.
func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	return n, err
}
