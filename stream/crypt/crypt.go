// Package crypt encrypts streams at rest with age (filippo.io/age).
//
// Two kinds of keys are supported:
//
//   - X25519: encrypting needs only the public recipient ("age1…"); decrypting
//     needs the identity file ("AGE-SECRET-KEY-1…", as written by age-keygen).
//   - scrypt passphrase: read from a file or from an environment variable
//     named by the caller, never from the command line, where any local user
//     can read it.
//
// Files holding secrets (identity files, passphrase files) are refused when
// group or other users may read them (mode & 0o077 != 0); the error names the
// file and the chmod that fixes it. Recipient files are public and not checked.
//
// The output is a standard age v1 file (binary, not armored), so
// `age -d -i KEYFILE` decrypts it. age authenticates every 64 KiB chunk and
// marks the last one, so a truncated or altered ciphertext fails to decrypt;
// errors from this package start with "age:".
package crypt

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
)

// ErrNoIdentityMatched is returned (wrapped) by Decrypt when none of the
// identities can open the file: a wrong key or a wrong passphrase.
var ErrNoIdentityMatched = errors.New("age: no identity matched")

// ErrInsecurePermissions is returned (wrapped) when a secret file may be read
// by group or other users.
var ErrInsecurePermissions = errors.New("insecure permissions")

// Scrypt work factors (log2 of N). age's default is 18 (about a second and
// 256 MiB of memory per derivation); it is used unless a caller lowers it.
const (
	DefaultScryptWorkFactor = 18
	// MaxScryptWorkFactor is the largest work factor Decrypt accepts from a
	// file header, bounding the time and memory a hostile header can demand.
	MaxScryptWorkFactor = 22
)

// ParseRecipients parses recipients ("age1…"), one per line; empty lines and
// lines starting with '#' are ignored.
func ParseRecipients(r io.Reader) ([]age.Recipient, error) {
	rs, err := age.ParseRecipients(r)
	if err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	return rs, nil
}

// LoadRecipients reads a recipients file (see ParseRecipients).
func LoadRecipients(path string) ([]age.Recipient, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("age: recipients: %w", err)
	}
	defer f.Close()
	rs, err := ParseRecipients(f)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return rs, nil
}

// LoadIdentities reads an age identity file. It refuses a file that group or
// other users can read.
func LoadIdentities(path string) ([]age.Identity, error) {
	f, err := openSecret(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("age: identity file %s: %w", path, err)
	}
	return ids, nil
}

// PassphraseFromFile reads a passphrase: the file's first line, without the
// line ending. It refuses a file that group or other users can read, and an
// empty passphrase.
func PassphraseFromFile(path string) (string, error) {
	f, err := openSecret(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("age: passphrase file %s: %w", path, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("age: passphrase file %s: first line is empty", path)
	}
	return line, nil
}

// PassphraseFromEnv reads a passphrase from the environment variable name.
func PassphraseFromEnv(name string) (string, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return "", fmt.Errorf("age: passphrase variable %s is unset or empty", name)
	}
	return v, nil
}

// ScryptRecipient returns a recipient that encrypts to passphrase with the
// given work factor (0 means DefaultScryptWorkFactor). A file encrypted to a
// passphrase must have no other recipients.
func ScryptRecipient(passphrase string, workFactor int) (age.Recipient, error) {
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	if workFactor == 0 {
		workFactor = DefaultScryptWorkFactor
	}
	if workFactor < 1 || workFactor > MaxScryptWorkFactor {
		return nil, fmt.Errorf("age: scrypt work factor %d out of range 1-%d", workFactor, MaxScryptWorkFactor)
	}
	r.SetWorkFactor(workFactor)
	return r, nil
}

// ScryptIdentity returns an identity that decrypts files encrypted to
// passphrase, accepting work factors up to MaxScryptWorkFactor.
func ScryptIdentity(passphrase string) (age.Identity, error) {
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	id.SetMaxWorkFactor(MaxScryptWorkFactor)
	return id, nil
}

// Encrypt returns a writer that encrypts to every recipient and writes the
// age file to dst. Close must be called to write the final authenticated
// chunk; without it the file is truncated and will not decrypt. Close does
// not close dst.
func Encrypt(dst io.Writer, recipients ...age.Recipient) (io.WriteCloser, error) {
	if len(recipients) == 0 {
		return nil, errors.New("age: no recipients")
	}
	w, err := age.Encrypt(dst, recipients...)
	if err != nil {
		return nil, fmt.Errorf("age: encrypt: %w", err)
	}
	return &layerWriter{w: w}, nil
}

// Decrypt reads the age header from src, finds an identity that opens it and
// returns a reader of the plaintext. A wrong key or passphrase gives an error
// wrapping ErrNoIdentityMatched. Read errors from the returned reader mean
// the ciphertext was altered or cut short; they start with "age:". Bytes are
// released only after their 64 KiB chunk has been authenticated.
func Decrypt(src io.Reader, identities ...age.Identity) (io.Reader, error) {
	if len(identities) == 0 {
		return nil, errors.New("age: no identities")
	}
	r, err := age.Decrypt(src, identities...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fmt.Errorf("%w: %v", ErrNoIdentityMatched, err)
		}
		return nil, fmt.Errorf("age: decrypt: %w", err)
	}
	return &layerReader{r: r}, nil
}

// Fingerprint returns a short, stable identifier of a recipient for
// manifests: the first 16 hex digits of the SHA-256 of its string form
// ("age1…"). It reveals nothing the public key does not.
func Fingerprint(recipient string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(recipient)))
	return hex.EncodeToString(sum[:8])
}

// PassphraseFingerprint is what a manifest records for a passphrase
// (scrypt) recipient. It says only that a passphrase is needed: any value
// derived from the passphrase would let an attacker test guesses against
// the manifest more cheaply than against age's scrypt header, so a
// restore checks a passphrase by opening the first object's header.
const PassphraseFingerprint = "passphrase"

// RecipientFingerprint returns the manifest entry for a recipient: the
// Fingerprint of an X25519 recipient, PassphraseFingerprint for scrypt,
// "" for other kinds.
func RecipientFingerprint(r age.Recipient) string {
	switch r := r.(type) {
	case *age.X25519Recipient:
		return Fingerprint(r.String())
	case *age.ScryptRecipient:
		return PassphraseFingerprint
	}
	return ""
}

// IdentityFingerprint returns the Fingerprint of the recipient that belongs
// to an X25519 identity, so a restore can check it holds the right key before
// reading data. Other identity types give "".
func IdentityFingerprint(id age.Identity) string {
	if x, ok := id.(*age.X25519Identity); ok {
		return Fingerprint(x.Recipient().String())
	}
	return ""
}

// openSecret opens path after checking that only its owner can read it.
func openSecret(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("age: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		f.Close()
		return nil, fmt.Errorf("age: %w: %s has mode %04o, which lets group or other users access it; fix it with: chmod 600 %s",
			ErrInsecurePermissions, path, perm, path)
	}
	return f, nil
}

type layerWriter struct{ w io.WriteCloser }

func (l *layerWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if err != nil {
		err = fmt.Errorf("age: encrypt: %w", err)
	}
	return n, err
}

func (l *layerWriter) Close() error {
	if err := l.w.Close(); err != nil {
		return fmt.Errorf("age: encrypt: %w", err)
	}
	return nil
}

type layerReader struct{ r io.Reader }

func (l *layerReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("age: decrypt: %w", err)
	}
	return n, err
}
