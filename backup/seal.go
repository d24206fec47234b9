package backup

import (
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	"github.com/gosst/gosst/stream"
)

// ErrNotEncrypted is returned when a decryption key was given for an
// object whose record says it is not encrypted.
var ErrNotEncrypted = errors.New("refusing unencrypted data")

// Unseal reads the stored form back (stream.NewReader): age (when
// encrypted) → codec, checking the end marker against the plaintext size
// and SHA-256 recorded for obj (when there are any). The returned reader
// yields the plaintext; reading to its end verifies it. src is read by it,
// so whatever follows the marker is still in src for the caller to drain.
//
// Whether to decrypt is the operator's decision, not the stored record's:
// the codec list comes from a manifest or index that anyone with write
// access to the storage can rewrite. With identities given the object must
// be age-encrypted (ErrNotEncrypted otherwise), so a crafted "unencrypted"
// record cannot slip substituted plaintext into a restore.
func Unseal(src io.Reader, obj Object, encrypted bool, ids []age.Identity) (io.ReadCloser, error) {
	if len(ids) > 0 && !encrypted {
		return nil, fmt.Errorf("%w: %s is recorded as unencrypted but a decryption key was given; "+
			"its record in storage may have been altered to drop the encryption. Restore without "+
			"--identity/--passphrase-file only if you know this backup was taken without encryption", ErrNotEncrypted, obj.Key)
	}
	o := stream.ReadOptions{Identities: ids, Encryption: stream.Unencrypted}
	if encrypted {
		if len(ids) == 0 {
			return nil, fmt.Errorf("%s is encrypted: give --identity FILE or --passphrase-file FILE", obj.Key)
		}
		o.Encryption = stream.Encrypted
	}
	if sum, err := plainSum(obj); err == nil {
		o.Expected = &sum
	}
	r, err := stream.NewReader(src, o)
	if err != nil && encrypted && len(r.Layers(false)) == 0 {
		return nil, fmt.Errorf("decrypt %s: %w", obj.Key, err) // nothing peeled yet: age failed
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}
