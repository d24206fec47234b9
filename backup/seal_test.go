package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	"filippo.io/age"

	"github.com/gosst/gosst/stream"
	"github.com/gosst/gosst/stream/codec"
)

// TestSealUnseal: what the sealer writes, unseal reads back (with and
// without encryption, checked against the recorded plaintext sum), and an
// aborted stream is never accepted.
func TestSealUnseal(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	c, err := codec.Lookup(codec.NameZstd)
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("binlog event "), 50000)
	sum := sha256.Sum256(plain)
	obj := Object{PlainSize: int64(len(plain)), PlainSHA256: hex.EncodeToString(sum[:])}
	for _, tc := range []struct {
		name      string
		encrypted bool
		abort     bool
	}{{"plain", false, false}, {"encrypted", true, false}, {"aborted", false, true}, {"aborted encrypted", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var recipients []age.Recipient
			if tc.encrypted {
				recipients = []age.Recipient{id.Recipient()}
			}
			var stored bytes.Buffer
			sw, err := stream.NewWriter(&stored, stream.WriteOptions{Codec: c, Recipients: recipients})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sw.Write(plain); err != nil {
				t.Fatal(err)
			}
			if tc.abort {
				sw.Abort()
			} else if got, err := sw.Close(); err != nil || got.Size != int64(len(plain)) || got.SHA256 != sum {
				t.Fatalf("close: %v, sum %+v", err, got)
			}
			var ids []age.Identity // the operator gives a key for encrypted data only
			if tc.encrypted {
				ids = []age.Identity{id}
			}
			r, err := Unseal(bytes.NewReader(stored.Bytes()), obj, tc.encrypted, ids)
			if err == nil {
				var out []byte
				out, err = io.ReadAll(r)
				r.Close()
				if err == nil && !bytes.Equal(out, plain) {
					t.Fatal("plaintext differs")
				}
			}
			if tc.abort != (err != nil) {
				t.Fatalf("aborted %v, read error %v", tc.abort, err)
			}
		})
	}
}
