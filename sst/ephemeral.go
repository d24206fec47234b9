package sst

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Zero-configuration encryption. Without a configured certificate the
// joiner makes a key and a self-signed certificate in memory for this SST
// only (never written to disk), announces the SHA-256 of the certificate's
// SubjectPublicKeyInfo (its "pin") in the ready address, and serves TLS
// 1.3 with it. The donor accepts exactly the certificate with that pin.
// The one-time secret never crosses the network: the donor sends
// HMAC-SHA256(secret, exported keying material of this TLS session), which
// only the two ends of this very session can compute.

// PinLen is the length of a pin in the ready address: 32 bytes, unpadded
// base64url.
var PinLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

// ekmLabel is the TLS exporter label of the secret proof.
const ekmLabel = "gosst sst secret"

// ErrPin means the joiner's certificate is not the one its ready address
// announced.
var ErrPin = errors.New("joiner's certificate does not match the fingerprint in its ready address")

// newEphemeralCert makes an ECDSA P-256 key and a self-signed certificate
// for one SST, and returns it with its pin.
func newEphemeralCert(now time.Time) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate ephemeral key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate ephemeral certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "gosst ephemeral SST key"},
		// The pin, not the validity, is what the donor checks; a wide
		// window keeps clock skew between nodes harmless.
		NotBefore:   now.Add(-24 * time.Hour),
		NotAfter:    now.Add(7 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("create ephemeral certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("parse ephemeral certificate: %w", err)
	}
	pin := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pin[:], nil
}

// ephemeralServerConfig is the joiner's TLS 1.3 configuration with an
// ephemeral certificate.
func ephemeralServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
}

// pinnedClientConfig is the donor's TLS 1.3 configuration that accepts
// only a joiner certificate whose public key has the given pin.
func pinnedClientConfig(pin []byte) *tls.Config {
	want := append([]byte(nil), pin...)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		// There is no chain to verify: the pin is the trust.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("joiner sent no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
			if subtle.ConstantTimeCompare(got[:], want) != 1 {
				return fmt.Errorf("%w (another host answered on the joiner's address: a man in the middle, or a stale address)", ErrPin)
			}
			return nil
		},
	}
}

// secretProof is what the donor sends instead of the one-time secret on a
// pinned TLS session: HMAC-SHA256 keyed with the secret over 32 bytes of
// the session's exported keying material. It proves the secret, is bound
// to this session (useless on any other connection) and reveals nothing
// about the secret. A nil secret gives a nil proof (secret=off).
func secretProof(cs tls.ConnectionState, secret []byte) ([]byte, error) {
	if len(secret) == 0 {
		return nil, nil
	}
	ekm, err := cs.ExportKeyingMaterial(ekmLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("export TLS keying material: %w", err)
	}
	m := hmac.New(sha256.New, secret)
	m.Write(ekm)
	return m.Sum(nil), nil
}

// FormatPin encodes a pin for the ready address.
func FormatPin(pin []byte) string { return base64.RawURLEncoding.EncodeToString(pin) }

// ParsePin decodes the pin of a ready address: exactly PinLen characters
// of unpadded base64url for 32 bytes.
func ParsePin(s string) ([]byte, error) {
	if len(s) != PinLen {
		return nil, fmt.Errorf("certificate fingerprint %q: want %d base64url characters, got %d", s, PinLen, len(s))
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("certificate fingerprint %q is not base64url of 32 bytes", s)
	}
	return b, nil
}
