package sst

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
	"testing"
	"time"
)

// makeTestCerts writes a CA and a node certificate (client and server
// auth, 127.0.0.1) and returns the CA, cert and key paths.
func makeTestCerts(t *testing.T, dir string) [3]string {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	out := [3]string{filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	for i, b := range []*pem.Block{{Type: "CERTIFICATE", Bytes: caDER}, {Type: "CERTIFICATE", Bytes: der}, {Type: "PRIVATE KEY", Bytes: kder}} {
		if err := os.WriteFile(out[i], pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// testPKI issues certificates for the TLS unit tests: a root CA, an
// intermediate CA under it, and leaves from either.
type testPKI struct {
	t                *testing.T
	dir              string
	root, inter      *x509.Certificate
	rootKey, interKy *ecdsa.PrivateKey
	rootPEM          string // path of the root CA file
	serial           int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{t: t, dir: t.TempDir(), serial: 10}
	p.rootKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "unit root CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.rootKey.PublicKey, p.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	p.root, _ = x509.ParseCertificate(der)
	p.rootPEM = filepath.Join(p.dir, "root.pem")
	p.write(p.rootPEM, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	p.interKy, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	itmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "unit intermediate CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	ider, err := x509.CreateCertificate(rand.Reader, itmpl, p.root, &p.interKy.PublicKey, p.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	p.inter, _ = x509.ParseCertificate(ider)
	return p
}

func (p *testPKI) write(path string, blocks ...*pem.Block) {
	var b []byte
	for _, bl := range blocks {
		b = append(b, pem.EncodeToMemory(bl)...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		p.t.Fatal(err)
	}
}

// leaf issues a certificate with the given CN and names, signed by the
// intermediate (its file then carries the chain) or the root, and returns
// the certificate and key paths.
func (p *testPKI) leaf(name, cn string, dns []string, ips []string, viaIntermediate bool) (certFile, keyFile string) {
	p.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	parent, pkey := p.root, p.rootKey
	if viaIntermediate {
		parent, pkey = p.inter, p.interKy
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, pkey)
	if err != nil {
		p.t.Fatal(err)
	}
	blocks := []*pem.Block{{Type: "CERTIFICATE", Bytes: der}}
	if viaIntermediate {
		blocks = append(blocks, &pem.Block{Type: "CERTIFICATE", Bytes: p.inter.Raw})
	}
	certFile, keyFile = filepath.Join(p.dir, name+"-cert.pem"), filepath.Join(p.dir, name+"-key.pem")
	p.write(certFile, blocks...)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	p.write(keyFile, &pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	return certFile, keyFile
}
