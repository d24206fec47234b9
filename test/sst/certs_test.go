package sst_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// testCerts are PEM files of a private CA and one node certificate it
// signed (used by every node, for both client and server auth), plus a
// certificate from an unrelated CA for the refusal test.
type testCerts struct {
	CA, Cert, Key      string
	OtherCA, OtherCert string
	OtherKey           string
}

func makeCerts(dir string) (*testCerts, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &testCerts{}
	var err error
	if c.CA, c.Cert, c.Key, err = makeCA(dir, "good"); err != nil {
		return nil, err
	}
	if c.OtherCA, c.OtherCert, c.OtherKey, err = makeCA(dir, "other"); err != nil {
		return nil, err
	}
	return c, nil
}

func makeCA(dir, name string) (caFile, certFile, keyFile string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gosst test CA " + name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "gosst-node-" + name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return
	}
	caFile = filepath.Join(dir, name+"-ca.pem")
	certFile = filepath.Join(dir, name+"-cert.pem")
	keyFile = filepath.Join(dir, name+"-key.pem")
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{caFile, "CERTIFICATE", caDER}, {certFile, "CERTIFICATE", der}, {keyFile, "PRIVATE KEY", keyDER}} {
		if err = os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return
		}
	}
	return
}

// pkiCA is a certificate authority for the TLS configuration tests: a
// root, or an intermediate under a root (then file holds the
// intermediate only and its leaves carry it in their certificate files).
type pkiCA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	file   string // PEM of this CA's certificate
	inter  bool
	serial int64
}

func newRootCA(dir, name string) (*pkiCA, error) {
	return newCA(dir, name, nil)
}

// intermediate returns a CA signed by ca.
func (ca *pkiCA) intermediate(dir, name string) (*pkiCA, error) {
	return newCA(dir, name, ca)
}

func newCA(dir, name string, parent *pkiCA) (*pkiCA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(100),
		Subject:               pkix.Name{CommonName: "gosst test CA " + name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	signer, signKey := tmpl, key
	if parent != nil {
		parent.serial++
		tmpl.SerialNumber = big.NewInt(1000 + parent.serial)
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &pkiCA{cert: cert, key: key, file: filepath.Join(dir, name+"-ca.pem"), inter: parent != nil}
	return ca, os.WriteFile(ca.file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
}

// issue signs a node certificate (client and server auth, named
// localhost and 127.0.0.1) with the given CN. The certificate file of a
// leaf of an intermediate CA carries the intermediate after the leaf.
func (ca *pkiCA) issue(dir, name, cn string) (certFile, keyFile string, err error) {
	return ca.issueFor(dir, name, cn, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
}

// issueFor is issue with the given extended key usages only.
func (ca *pkiCA) issueFor(dir, name, cn string, eku ...x509.ExtKeyUsage) (certFile, keyFile string, err error) {
	return ca.issueNames(dir, name, cn, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, eku...)
}

// issueNames is issueFor with the given subjectAltNames (none if both
// are empty).
func (ca *pkiCA) issueNames(dir, name, cn string, dns []string, ips []net.IP, eku ...x509.ExtKeyUsage) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return
	}
	ca.serial++
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  eku,
		IPAddresses:  ips,
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return
	}
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if ca.inter {
		pemCert = append(pemCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	}
	certFile = filepath.Join(dir, name+"-cert.pem")
	keyFile = filepath.Join(dir, name+"-key.pem")
	if err = os.WriteFile(certFile, pemCert, 0o600); err != nil {
		return
	}
	err = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	return
}
