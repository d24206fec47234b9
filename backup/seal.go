package backup

import (
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	"github.com/gosst/gosst/stream/codec"
	"github.com/gosst/gosst/stream/crypt"
	"github.com/gosst/gosst/stream/integrity"
)

// Sealer writes the stored form of a backup stream or an archived binlog:
// plaintext → codec with end marker (integrity) → age, when there are
// recipients → dst.
type Sealer struct {
	iw  *integrity.Writer
	enc io.WriteCloser // nil without encryption
}

func NewSealer(dst io.Writer, c codec.Codec, recipients []age.Recipient) (*Sealer, error) {
	s := &Sealer{}
	if len(recipients) > 0 {
		e, err := crypt.Encrypt(dst, recipients...)
		if err != nil {
			return nil, err
		}
		s.enc, dst = e, e
	}
	iw, err := integrity.NewWriter(dst, c)
	if err != nil {
		return nil, err
	}
	s.iw = iw
	return s, nil
}

func (s *Sealer) Write(p []byte) (int, error) { return s.iw.Write(p) }

// Close writes the end marker and finishes the encryption; it returns the
// plaintext's size and SHA-256.
func (s *Sealer) Close() (integrity.Sum, error) {
	if err := s.iw.Close(); err != nil {
		return integrity.Sum{}, err
	}
	if s.enc != nil {
		if err := s.enc.Close(); err != nil {
			return integrity.Sum{}, err
		}
	}
	return s.iw.Sum(), nil
}

// Abort ends a failed stream without an end marker, so it can never pass
// for complete.
func (s *Sealer) Abort() { s.iw.Abort() }

// ErrNotEncrypted is returned when a decryption key was given for an
// object whose record says it is not encrypted.
var ErrNotEncrypted = errors.New("refusing unencrypted data")

// Unseal reads the stored form back: age (when encrypted) → codec, checking
// the end marker against the plaintext size and SHA-256 recorded for obj
// (when there are any). The returned reader yields the plaintext; reading
// to its end verifies it. src is read by it, so whatever follows the
// marker is still in src for the caller to drain.
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
	if encrypted {
		if len(ids) == 0 {
			return nil, fmt.Errorf("%s is encrypted: give --identity FILE or --passphrase-file FILE", obj.Key)
		}
		d, err := crypt.Decrypt(src, ids...)
		if err != nil {
			return nil, fmt.Errorf("decrypt %s: %w", obj.Key, err)
		}
		src = d
	}
	var opts []integrity.Option
	if sum, err := plainSum(obj); err == nil {
		opts = append(opts, integrity.WithExpected(sum))
	}
	c, br, err := codec.Detect(src)
	if err != nil {
		return nil, err
	}
	return integrity.NewReader(br, c, opts...)
}
