package sst

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gosst/gosst/sst/wsrep"
)

// TestTLSResolution is the resolution order of the TLS files: which file,
// group and key wins, per role, as the stock scripts resolve it.
func TestTLSResolution(t *testing.T) {
	d := t.TempDir()
	for _, f := range []string{"sst-ca", "sst-cert", "sst-key", "my-ca", "my-cert", "my-key", "srv-cert", "srv-key",
		"cli-cert", "cli-key", "cli-ca", "maria-cert", "gosst-cert", "x-cert", "x-key", "suf-cert"} {
		if err := os.WriteFile(filepath.Join(d, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(d, "cadir"), 0o700); err != nil {
		t.Fatal(err)
	}
	mysqld := "[mysqld]\nssl-ca=D/my-ca\nssl-cert=D/my-cert\nssl-key=D/my-key\n"
	type want struct{ ca, capath, cert, key, mode string }
	for _, tc := range []struct {
		name   string
		cnf    string
		role   wsrep.Role
		suffix string
		want   want
		err    string // substring of the error; "" = none
		warn   string // substring of a warning
	}{
		{name: "server certificates serve the SST", cnf: mysqld + "[sst]\nssl-mode=VERIFY_CA\n",
			want: want{"D/my-ca", "", "D/my-cert", "D/my-key", "VERIFY_CA"}},
		{name: "ssl-mode is read from the server groups too", cnf: mysqld + "[mariadb]\nloose-ssl-mode=verify_identity\n",
			want: want{"D/my-ca", "", "D/my-cert", "D/my-key", "VERIFY_IDENTITY"}},
		{name: "server certificates unused with DISABLED", cnf: mysqld,
			want: want{"", "", "", "", "DISABLED"}},
		{name: "legacy [sst] tca/tcert/tkey beat [mysqld] ssl-*", cnf: mysqld + "[sst]\ntca=D/sst-ca\ntcert=D/sst-cert\ntkey=D/sst-key\nssl-mode=VERIFY_CA\n",
			want: want{"D/sst-ca", "", "D/sst-cert", "D/sst-key", "VERIFY_CA"}, warn: "are ignored"},
		{name: "one legacy key disables all new-style keys", cnf: mysqld + "[sst]\ntca=D/sst-ca\nssl-mode=VERIFY_CA\n",
			err: "needs a certificate and key"},
		{name: "legacy certificates switch TLS on without ssl-mode", cnf: "[sst]\ntca=D/sst-ca\ntcert=D/sst-cert\ntkey=D/sst-key\n",
			want: want{"D/sst-ca", "", "D/sst-cert", "D/sst-key", "DISABLED"}},
		{name: "[mysqld] beats [sst] for ssl-*", cnf: "[sst]\nssl-mode=REQUIRED\nssl-cert=D/sst-cert\nssl-key=D/sst-key\n" + mysqld,
			want: want{"", "", "D/my-cert", "D/my-key", "REQUIRED"}},
		{name: "[sst] ssl-* when the server has none", cnf: "[sst]\nssl-mode=VERIFY_CA\nssl-ca=D/sst-ca\nssl-cert=D/sst-cert\nssl-key=D/sst-key\n",
			want: want{"D/sst-ca", "", "D/sst-cert", "D/sst-key", "VERIFY_CA"}},
		{name: "[mariabackup] last", cnf: "[mariabackup]\nssl-cert=D/maria-cert\n[sst]\nssl-mode=REQUIRED\nssl-key=D/sst-key\n",
			want: want{"", "", "D/maria-cert", "D/sst-key", "REQUIRED"}},
		{name: "[gosst] beats everything", cnf: mysqld + "[gosst]\nssl-cert=D/gosst-cert\n[sst]\nssl-mode=VERIFY_CA\n",
			want: want{"D/my-ca", "", "D/gosst-cert", "D/my-key", "VERIFY_CA"}},
		{name: "server groups: last in the file wins", cnf: "[mariadb]\nssl-cert=D/x-cert\n" + mysqld + "[sst]\nssl-mode=REQUIRED\n",
			want: want{"", "", "D/my-cert", "D/my-key", "REQUIRED"}},
		{name: "server groups: last in the file wins (2)", cnf: mysqld + "[galera]\nssl-cert=D/x-cert\n[sst]\nssl-mode=REQUIRED\n",
			want: want{"", "", "D/x-cert", "D/my-key", "REQUIRED"}},
		{name: "an empty last setting falls through to [sst]", cnf: mysqld + "[mysqld]\nssl-cert=\n[sst]\nssl-mode=REQUIRED\nssl-cert=D/sst-cert\n",
			want: want{"", "", "D/sst-cert", "D/my-key", "REQUIRED"}},
		{name: "group suffix", suffix: ".2", cnf: mysqld + "[mysqld.2]\nssl-cert=D/suf-cert\n[mysqld.3]\nssl-key=D/x-key\n[sst]\nssl-mode=REQUIRED\n",
			want: want{"", "", "D/suf-cert", "D/my-key", "REQUIRED"}},
		{name: "joiner takes ssl-server-*", role: wsrep.Joiner, cnf: mysqld + "ssl-server-cert=D/srv-cert\nssl-server-key=D/srv-key\nssl-client-cert=D/cli-cert\nssl-client-key=D/cli-key\n[sst]\nssl-mode=VERIFY_CA\n",
			want: want{"D/my-ca", "", "D/srv-cert", "D/srv-key", "VERIFY_CA"}},
		{name: "donor takes ssl-client-*", role: wsrep.Donor, cnf: mysqld + "[sst]\nssl-mode=VERIFY_CA\nssl-server-cert=D/srv-cert\nssl-server-key=D/srv-key\nssl-client-cert=D/cli-cert\nssl-client-key=D/cli-key\nssl-client-ca=D/cli-ca\n",
			want: want{"D/cli-ca", "", "D/cli-cert", "D/cli-key", "VERIFY_CA"}},
		{name: "role keys override legacy keys", role: wsrep.Donor, cnf: "[sst]\nssl-mode=VERIFY_CA\ntca=D/sst-ca\ntcert=D/sst-cert\ntkey=D/sst-key\nssl-client-cert=D/cli-cert\nssl-client-key=D/cli-key\n",
			want: want{"D/sst-ca", "", "D/cli-cert", "D/cli-key", "VERIFY_CA"}},
		{name: "a CA directory", cnf: "[mysqld]\nssl-ca=D/cadir\nssl-cert=D/my-cert\nssl-key=D/my-key\n[sst]\nssl-mode=VERIFY_CA\n",
			want: want{"", "D/cadir", "D/my-cert", "D/my-key", "VERIFY_CA"}},
		{name: "a CA ending in /", cnf: "[sst]\ntca=D/cadir/\ntcert=D/sst-cert\ntkey=D/sst-key\nssl-mode=VERIFY_CA\n",
			want: want{"", "D/cadir/", "D/sst-cert", "D/sst-key", "VERIFY_CA"}},
		{name: "ssl-capath", cnf: mysqld + "ssl-capath=D/cadir\n[sst]\nssl-mode=VERIFY_IDENTITY\n",
			want: want{"D/my-ca", "D/cadir", "D/my-cert", "D/my-key", "VERIFY_IDENTITY"}},
		{name: "REQUIRED drops the server's CA", cnf: mysqld + "[sst]\nssl-mode=REQUIRED\n",
			want: want{"", "", "D/my-cert", "D/my-key", "REQUIRED"}},
		{name: "REQUIRED keeps a CA set for the SST", cnf: "[sst]\nssl-mode=REQUIRED\ntca=D/sst-ca\ntcert=D/sst-cert\ntkey=D/sst-key\n",
			want: want{"D/sst-ca", "", "D/sst-cert", "D/sst-key", "REQUIRED"}},
		{name: "REQUIRED keeps an [sst] ssl-ca beside server certificates", cnf: "[mysqld]\nssl-cert=D/my-cert\nssl-key=D/my-key\n[sst]\nssl-mode=REQUIRED\nssl-ca=D/sst-ca\n",
			want: want{"D/sst-ca", "", "D/my-cert", "D/my-key", "REQUIRED"}},
		{name: "VERIFY_CA without a CA", cnf: "[mysqld]\nssl-cert=D/my-cert\nssl-key=D/my-key\n[sst]\nssl-mode=VERIFY_CA\n",
			err: "needs a CA"},
		{name: "REQUIRED without certificates", cnf: "[sst]\nssl-mode=REQUIRED\n", err: "gosst never falls back to cleartext"},
		{name: "certificate without key", cnf: "[mysqld]\nssl-cert=D/my-cert\n[sst]\nssl-mode=REQUIRED\n", err: "[mysqld] ssl-cert is set but no key"},
		{name: "missing file", cnf: "[mysqld]\nssl-cert=D/nonexistent\nssl-key=D/my-key\n[sst]\nssl-mode=REQUIRED\n", err: "[mysqld] ssl-cert="},
		{name: "bad ssl-mode", cnf: "[sst]\nssl-mode=PARANOID\n", err: "[sst] ssl-mode=\"PARANOID\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			role := tc.role
			if role == "" {
				role = wsrep.Joiner
			}
			c, err := parseCnf(t, strings.ReplaceAll(tc.cnf, "D/", d+"/"), &wsrep.Args{Role: role, DefaultsGroupSuffix: tc.suffix})
			if tc.err != "" {
				if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			un := func(s string) string { return strings.ReplaceAll(s, d+"/", "D/") }
			got := want{un(c.CA), un(c.CAPath), un(c.Cert), un(c.Key), c.SSLMode}
			if got != tc.want {
				t.Errorf("got %+v, want %+v (source %s)", got, tc.want, c.TLSSource)
			}
			if tc.warn != "" && !strings.Contains(strings.Join(c.Warnings, "\n"), tc.warn) {
				t.Errorf("warnings %q lack %q", c.Warnings, tc.warn)
			}
		})
	}
}

// handshake runs a joiner (server) and donor (client) TLS handshake over
// loopback TCP (buffered, unlike net.Pipe, so a side that aborts mid-flight
// cannot deadlock the other) and returns the donor's and the joiner's errors.
func handshake(t *testing.T, joiner, donor Config, host string) (donorErr, joinerErr error) {
	t.Helper()
	jc, err := tlsConfig(joiner, true, "")
	if err != nil {
		t.Fatal(err)
	}
	dc, err := tlsConfig(donor, false, host)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // safety net only
	defer cancel()
	var g errgroup.Group
	g.Go(func() error {
		a, err := l.Accept()
		if err != nil {
			joinerErr = err
			return nil
		}
		defer a.Close()
		joinerErr = tls.Server(a, jc).HandshakeContext(ctx)
		return nil
	})
	g.Go(func() error {
		var d net.Dialer
		b, err := d.DialContext(ctx, "tcp", l.Addr().String())
		if err != nil {
			donorErr = err
			return nil
		}
		defer b.Close()
		donorErr = tls.Client(b, dc).HandshakeContext(ctx)
		return nil
	})
	_ = g.Wait()
	return donorErr, joinerErr
}

// TestTLSModes checks each ssl-mode end to end on a TLS handshake: chain
// checks through an intermediate CA, REQUIRED without verification, and
// VERIFY_IDENTITY's name check on the donor with hostile CNs refused.
func TestTLSModes(t *testing.T) {
	p := newTestPKI(t)
	otherCA := newTestPKI(t)
	goodCert, goodKey := p.leaf("good", "localhost", []string{"localhost"}, []string{"127.0.0.1"}, false)
	chainCert, chainKey := p.leaf("chain", "node", nil, []string{"127.0.0.1"}, true)
	hostileCert, hostileKey := p.leaf("hostile", "x'; DROP TABLE t; --$(touch /tmp/pwn)", nil, nil, false)
	hostileSANCert, hostileSANKey := p.leaf("hostilesan", "x'; DROP TABLE t; --$(touch /tmp/pwn)", []string{"localhost"}, []string{"127.0.0.1"}, false)
	cnOnlyCert, cnOnlyKey := p.leaf("cnonly", "localhost", nil, nil, false)
	otherNameCert, otherNameKey := p.leaf("othername", "localhost", []string{"db9.example"}, nil, false)
	strangerCert, strangerKey := otherCA.leaf("stranger", "localhost", []string{"localhost"}, []string{"127.0.0.1"}, false)
	cfg := func(mode, ca, cert, key string) Config {
		return Config{SSLMode: mode, CA: ca, Cert: cert, Key: key}
	}
	for _, tc := range []struct {
		name          string
		joiner, donor Config
		host          string
		donorErr      string // substring; "" = success
		joinerFails   bool
	}{
		{"VERIFY_CA", cfg("VERIFY_CA", p.rootPEM, goodCert, goodKey), cfg("VERIFY_CA", p.rootPEM, goodCert, goodKey), "127.0.0.1", "", false},
		{"VERIFY_CA through an intermediate CA", cfg("VERIFY_CA", p.rootPEM, chainCert, chainKey), cfg("VERIFY_CA", p.rootPEM, chainCert, chainKey), "127.0.0.1", "", false},
		{"VERIFY_CA, joiner from another CA", cfg("VERIFY_CA", otherCA.rootPEM, strangerCert, strangerKey), cfg("VERIFY_CA", p.rootPEM, goodCert, goodKey), "127.0.0.1", "unknown authority", true},
		{"VERIFY_CA ignores names", cfg("VERIFY_CA", p.rootPEM, hostileCert, hostileKey), cfg("VERIFY_CA", p.rootPEM, goodCert, goodKey), "127.0.0.1", "", false},
		{"REQUIRED does not verify", cfg("REQUIRED", "", strangerCert, strangerKey), cfg("REQUIRED", "", goodCert, goodKey), "127.0.0.1", "", false},
		{"VERIFY_IDENTITY by IP", cfg("VERIFY_IDENTITY", p.rootPEM, chainCert, chainKey), cfg("VERIFY_IDENTITY", p.rootPEM, goodCert, goodKey), "127.0.0.1", "", false},
		{"VERIFY_IDENTITY, localhost for a loopback joiner", cfg("VERIFY_IDENTITY", p.rootPEM, goodCert, goodKey), cfg("VERIFY_IDENTITY", p.rootPEM, goodCert, goodKey), "127.0.0.3", "", false},
		{"VERIFY_IDENTITY, CN without SANs", cfg("VERIFY_IDENTITY", p.rootPEM, cnOnlyCert, cnOnlyKey), cfg("VERIFY_IDENTITY", p.rootPEM, goodCert, goodKey), "127.0.0.1", "", false},
		{"VERIFY_IDENTITY, CN ignored beside SANs", cfg("VERIFY_IDENTITY", p.rootPEM, otherNameCert, otherNameKey), cfg("VERIFY_IDENTITY", p.rootPEM, goodCert, goodKey), "127.0.0.1", "does not name 127.0.0.1 or localhost", true},
		{"VERIFY_IDENTITY, wrong host", cfg("VERIFY_IDENTITY", p.rootPEM, goodCert, goodKey), cfg("VERIFY_IDENTITY", p.rootPEM, goodCert, goodKey), "db7.example", "does not name db7.example", true},
		{"VERIFY_IDENTITY, hostile CN refused", cfg("VERIFY_IDENTITY", p.rootPEM, hostileCert, hostileKey), cfg("VERIFY_IDENTITY", p.rootPEM, goodCert, goodKey), "127.0.0.1", `CN "x'; DROP TABLE t; --$(touch /tmp/pwn)"`, true},
		{"VERIFY_IDENTITY, hostile CN beside SANs", cfg("VERIFY_IDENTITY", p.rootPEM, hostileSANCert, hostileSANKey), cfg("VERIFY_IDENTITY", p.rootPEM, hostileSANCert, hostileSANKey), "127.0.0.1", "", false},
		{"donor from another CA", cfg("VERIFY_CA", p.rootPEM, goodCert, goodKey), cfg("VERIFY_CA", otherCA.rootPEM, strangerCert, strangerKey), "127.0.0.1", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			de, je := handshake(t, tc.joiner, tc.donor, tc.host)
			switch {
			case tc.donorErr == "" && !tc.joinerFails && (de != nil || je != nil):
				t.Fatalf("handshake failed: donor %v, joiner %v", de, je)
			case tc.donorErr != "" && (de == nil || !strings.Contains(de.Error(), tc.donorErr)):
				t.Fatalf("donor error %v, want %q", de, tc.donorErr)
			case tc.joinerFails && je == nil && de == nil:
				t.Fatalf("handshake succeeded")
			}
			if de != nil {
				t.Logf("donor: %v", de)
			}
		})
	}
}

// TestCAPath loads a CA directory (OpenSSL's CApath) holding the root
// among other files.
func TestCAPath(t *testing.T) {
	p := newTestPKI(t)
	dir := t.TempDir()
	b, _ := os.ReadFile(p.rootPEM)
	_ = os.WriteFile(filepath.Join(dir, "1a2b3c4d.0"), b, 0o600)
	_ = os.WriteFile(filepath.Join(dir, "README"), []byte("not a certificate"), 0o600)
	_ = os.Mkdir(filepath.Join(dir, "sub"), 0o700)
	cert, key := p.leaf("n", "localhost", []string{"localhost"}, nil, true)
	c := Config{SSLMode: "VERIFY_CA", CAPath: dir, Cert: cert, Key: key}
	if de, je := handshake(t, c, c, "127.0.0.1"); de != nil || je != nil {
		t.Fatalf("donor %v, joiner %v", de, je)
	}
	if _, err := caPool("", t.TempDir()); !errors.Is(err, ErrConfig) {
		t.Errorf("empty CA directory: %v", err)
	}
}

func TestValidHostname(t *testing.T) {
	for s, want := range map[string]bool{
		"localhost": true, "db1.example.com": true, "db1.example.com.": true, "127.0.0.1": true, "::1": true,
		"": false, "-a": false, "a..b": false, "x'; DROP TABLE t; --$(touch /tmp/pwn)": false, "a b": false,
		"*.example.com": false, "a\x00b": false, "host;rm": false, strings.Repeat("a", 64): false,
	} {
		if got := validHostname(s); got != want {
			t.Errorf("validHostname(%q) = %v", s, got)
		}
	}
}

// FuzzValidHostname: whatever a peer puts in its CN, only letters,
// digits, '-', '.' (or an IP literal) can ever be accepted as a name.
func FuzzValidHostname(f *testing.F) {
	for _, s := range []string{"localhost", "x'; DROP TABLE t; --$(touch /tmp/pwn)", "127.0.0.1", "::1", "a.b-c", "$(id)", "a`b`", "é.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !validHostname(s) || net.ParseIP(s) != nil {
			return
		}
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
				t.Fatalf("validHostname accepted %q", s)
			}
		}
		leaf := &x509.Certificate{}
		leaf.Subject.CommonName = s
		_ = checkIdentity(leaf, s)
	})
}
