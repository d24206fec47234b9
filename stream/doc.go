// Package stream is the byte pipeline of gosst. It knows nothing of MariaDB
// or storage; its subpackages are io.Reader/io.Writer stages:
//
//	codec      compression: zstd (default), s2, none
//	integrity  end marker (size + SHA-256 of the plaintext) inside the codec
//	crypt      encryption at rest with age
//	wire       SST transport framing (handshake, data, end frames)
//	meter      byte counting, rate and ETA
//	ratelimit  token-bucket throttling
//
// A stored object is built, from the inside out, as
//
//	xbstream → integrity.Writer(codec) → crypt.Encrypt → object
//
// and restores by hand with `age -d -i KEY | zstd -d | mbstream -x`.
// NewWriter and NewReader build and peel that stack; every stored stream
// goes through them, and the codec defaults (DefaultCodec, NewCodec) are
// defined here once. Outside this package nothing assembles the layers.
// docs/format.md describes every byte. The tests of this package check the
// whole chain, including against the age and zstd command-line tools.
package stream
