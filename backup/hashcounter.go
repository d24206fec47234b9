package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// HashCounter hashes (SHA-256) and counts the bytes written to it: the
// stored form of an object as it is uploaded or downloaded, to fill in or
// check the Object's Size and SHA256.
type HashCounter struct {
	h hash.Hash
	n int64
}

// NewHashCounter returns an empty HashCounter.
func NewHashCounter() *HashCounter { return &HashCounter{h: sha256.New()} }

// Write hashes and counts p; it never fails.
func (h *HashCounter) Write(p []byte) (int, error) {
	h.h.Write(p)
	h.n += int64(len(p))
	return len(p), nil
}

// Size is the number of bytes written so far.
func (h *HashCounter) Size() int64 { return h.n }

// SHA256 is the hex SHA-256 of the bytes written so far.
func (h *HashCounter) SHA256() string { return hex.EncodeToString(h.h.Sum(nil)) }

// Matches reports whether the bytes written are exactly o's stored form
// (its Size and SHA256).
func (h *HashCounter) Matches(o Object) bool { return h.n == o.Size && h.SHA256() == o.SHA256 }
