// Package testrows makes table-shaped data for tests of compression. It
// owns only that generator, is imported only by tests, and must not import
// any gosst package.
package testrows

import "math/rand/v2"

// Digits returns n bytes shaped like sysbench table data: per row a
// record header holding the row id big-endian in idBytes bytes (1 to 4),
// then 15 dash-separated groups of 11 random decimal digits. S2 blocks
// barely shrink it; zstd level 1 shrinks it about twice as much. The same
// seeds give the same bytes.
func Digits(n int, seed1, seed2 uint64, idBytes int) []byte {
	r := rand.New(rand.NewPCG(seed1, seed2))
	b := make([]byte, 0, n+256)
	for id := 0; len(b) < n; id++ {
		b = append(b, 0, 0, 0x10, 0, 0x4a, 0x80, 0, 0)
		for k := range 4 {
			var x byte
			if k < idBytes {
				x = byte(id >> (8 * (idBytes - 1 - k)))
			}
			b = append(b, x)
		}
		b = append(b, 0, 0, 0x33, 0x2e)
		for g := range 15 {
			if g > 0 {
				b = append(b, '-')
			}
			for range 11 {
				b = append(b, '0'+byte(r.IntN(10)))
			}
		}
	}
	return b[:n]
}
