package sst

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/sst/wsrep"
)

// tlsValue is one resolved TLS setting and where it came from.
type tlsValue struct {
	val   string
	where string // "[sst] tca", "[mysqld] ssl-cert", ...
	// sst is true when the value was set for state transfers ([sst],
	// [gosst], [xtrabackup], [mariabackup]) rather than for the server.
	sst bool
}

// encGetter looks up a key the way the stock scripts read their
// "encryption" options: the group sets are tried in order and the first
// that gives a non-empty value wins; within a set the setting that comes
// last in the option files wins (my_print_defaults order). The sets are
// [gosst] (gosst's own group always wins), then every group mariadbd
// reads ([mysqld], [server], [mariadb], [galera], ...), then [sst],
// [xtrabackup], [mariabackup]; each with the --defaults-group-suffix
// variant.
func encGetter(o *mariadb.Options, suffix string) func(key string) tlsValue {
	type set struct {
		groups []string
		sst    bool
	}
	sets := []set{
		{mariadb.GroupsWithSuffix(suffix, "gosst"), true},
		{mariadb.GroupsWithSuffix(suffix, serverGroups...), false},
		{mariadb.GroupsWithSuffix(suffix, "sst"), true},
		{mariadb.GroupsWithSuffix(suffix, "xtrabackup"), true},
		{mariadb.GroupsWithSuffix(suffix, "mariabackup"), true},
	}
	return func(key string) tlsValue {
		for _, s := range sets {
			v, ok := o.GetLastInFile(key, s.groups...)
			if v = strings.TrimSpace(v); ok && v != "" {
				return tlsValue{val: v, where: whereSet(o, key, s.groups), sst: s.sst}
			}
		}
		return tlsValue{}
	}
}

// whereSet names the group that holds the winning setting of key.
func whereSet(o *mariadb.Options, key string, groups []string) string {
	best, bestSeq := "", -1
	for _, g := range groups {
		for _, s := range o.Group(g) {
			if s.Name == key && s.Seq > bestSeq {
				best, bestSeq = g, s.Seq
			}
		}
	}
	return "[" + best + "] " + key
}

// resolveTLS sets c.CA, c.CAPath, c.Cert, c.Key, c.SSLMode and
// c.TLSSource from the option files, following the stock scripts'
// order (wsrep_sst_common, check_server_ssl_config, MariaDB 10.11):
//
//  1. [sst] tca, tcapath, tcert, tkey (and gosst's [gosst] group).
//  2. Only when none of those four is set: ssl-ca, ssl-capath, ssl-cert,
//     ssl-key from the encryption groups (encGetter), so that the
//     server's own [mysqld] certificates serve the SST.
//  3. Role overrides: the joiner (TLS server) takes ssl-server-ca,
//     -capath, -cert, -key, the donor (TLS client) ssl-client-*, each
//     replacing the value from 1-2 when set.
//  4. A CA that ends in '/' or names a directory is a CA directory.
//
// ssl-mode is read from the encryption groups too. With REQUIRED a CA
// found only in the server's groups is dropped (encryption without peer
// verification, as the stock scripts do), while one set for the SST
// ([sst]/[gosst]) still verifies; VERIFY_CA and VERIFY_IDENTITY need a CA. Certificates
// found only in the server's groups are used only when ssl-mode is not
// DISABLED; certificates set for the SST ([sst]/[gosst]) switch TLS on
// in any mode, as they always did in gosst. get reads [sst]/[gosst].
func (c *Config) resolveTLS(o *mariadb.Options, a *wsrep.Args, get func(string) (string, bool)) []error {
	var errs []error
	enc := encGetter(o, a.DefaultsGroupSuffix)
	if v := enc("ssl-mode"); v.val != "" {
		m := strings.ToUpper(v.val)
		switch m {
		case "DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY":
			c.SSLMode = m
		default:
			errs = append(errs, fmt.Errorf("%w: %s=%q: want DISABLED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY", ErrConfig, v.where, v.val))
		}
	}
	ca, capath, cert, key := c.tlsFiles(enc, get, a.Role)

	if c.SSLMode == "DISABLED" && !cert.sst && !key.sst {
		// The server's own certificates, and no SST TLS asked for: the
		// stock scripts send in cleartext too.
		return errs
	}
	if c.SSLMode == "REQUIRED" {
		// As the stock scripts do: no verification with a CA that is
		// only the server's (nodes may have self-made CAs). A CA set for
		// the SST itself still verifies, as it always did in gosst.
		if !ca.sst {
			ca = tlsValue{}
		}
		if !capath.sst {
			capath = tlsValue{}
		}
	}
	c.CA, c.CAPath, c.Cert, c.Key = ca.val, capath.val, cert.val, key.val
	var src []string
	for _, v := range []tlsValue{cert, key, ca, capath} {
		if v.val != "" {
			src = append(src, v.where)
		}
	}
	c.TLSSource = strings.Join(src, ", ")
	return append(errs, c.checkTLS(ca, capath, cert, key)...)
}

// tlsFiles picks the CA, CA directory, certificate and key: tca, tcapath,
// tcert and tkey from get ([sst]/[gosst]) if any is set, else the ssl-*
// keys from enc; then the role's own ssl-server-* or ssl-client-* keys
// win. A CA that is a directory becomes the CA directory.
func (c *Config) tlsFiles(enc func(string) tlsValue, get func(string) (string, bool), r wsrep.Role) (ca, capath, cert, key tlsValue) {
	legacy := func(key string) tlsValue {
		if v, ok := get(key); ok {
			return tlsValue{val: v, where: "[sst] " + key, sst: true}
		}
		return tlsValue{}
	}
	ca, capath, cert, key = legacy("tca"), legacy("tcapath"), legacy("tcert"), legacy("tkey")
	nca, ncapath, ncert, nkey := enc("ssl-ca"), enc("ssl-capath"), enc("ssl-cert"), enc("ssl-key")
	if ca.val == "" && capath.val == "" && cert.val == "" && key.val == "" {
		ca, capath, cert, key = nca, ncapath, ncert, nkey
	} else if (nca.val != "" || ncapath.val != "" || ncert.val != "" || nkey.val != "") &&
		(nca.val != ca.val || ncapath.val != capath.val || ncert.val != cert.val || nkey.val != key.val) {
		c.Warnings = append(c.Warnings, "ssl-ca, ssl-capath, ssl-cert and ssl-key are ignored for the SST because tca, tcapath, tcert or tkey is set in [sst]")
	}
	role := "client"
	if r == wsrep.Joiner {
		role = "server"
	}
	override := func(dst *tlsValue, key string) {
		if v := enc("ssl-" + role + "-" + key); v.val != "" {
			*dst = v
		}
	}
	override(&ca, "ca")
	override(&capath, "capath")
	override(&cert, "cert")
	override(&key, "key")
	if ca.val != "" {
		if fi, err := os.Stat(ca.val); strings.HasSuffix(ca.val, "/") || (err == nil && fi.IsDir()) {
			capath, ca = ca, tlsValue{}
		}
	}
	return ca, capath, cert, key
}

// checkTLS reports a certificate without its key (or the reverse), an
// ssl-mode the files cannot satisfy, and files that cannot be read.
func (c *Config) checkTLS(ca, capath, cert, key tlsValue) []error {
	var errs []error
	if (c.Cert == "") != (c.Key == "") {
		have, miss := cert, "key (tkey or ssl-key)"
		if c.Cert == "" {
			have, miss = key, "certificate (tcert or ssl-cert)"
		}
		errs = append(errs, fmt.Errorf("%w: %s is set but no %s: both are needed for TLS", ErrConfig, have.where, miss))
	}
	if c.SSLMode != "DISABLED" && c.Cert == "" && c.Key == "" {
		errs = append(errs, fmt.Errorf("%w: ssl-mode=%s needs a certificate and key: set ssl-cert and ssl-key in [mysqld] or [sst] (or tcert and tkey in [sst]); gosst never falls back to cleartext", ErrConfig, c.SSLMode))
	}
	if strings.HasPrefix(c.SSLMode, "VERIFY") && c.CA == "" && c.CAPath == "" {
		errs = append(errs, fmt.Errorf("%w: ssl-mode=%s needs a CA to verify the peer: set ssl-ca in [mysqld] or [sst] (or tca in [sst])", ErrConfig, c.SSLMode))
	}
	for _, v := range []tlsValue{ca, capath, cert, key} {
		if v.val == "" {
			continue
		}
		if _, err := os.Stat(v.val); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s=%q: %v", ErrConfig, v.where, v.val, err))
		}
	}
	return errs
}

// TLSSummary describes the TLS setup for the log.
func (c *Config) TLSSummary() string {
	if c.Cert == "" {
		if c.EncryptOff {
			return "TLS off (encrypt=off, no certificate for the SST): the SST goes over the network in cleartext"
		}
		return "TLS 1.3 with an ephemeral key per SST (no certificate configured; the donor pins the key the joiner announces)"
	}
	check := "none (no CA)"
	switch {
	case (c.CA != "" || c.CAPath != "") && c.SSLMode == "VERIFY_IDENTITY":
		check = "chain and, on the donor, the joiner's name"
	case c.CA != "" || c.CAPath != "":
		check = "chain"
	case c.SSLMode == "REQUIRED":
		check = "none (ssl-mode=REQUIRED)"
	}
	return fmt.Sprintf("TLS 1.3, ssl-mode=%s, peer verification: %s; from %s", c.SSLMode, check, c.TLSSource)
}

// caPool loads the CA file and every certificate in the CA directory
// (as OpenSSL's CApath holds them, one or more PEM certificates per file);
// nil when neither is set.
func caPool(file, dir string) (*x509.CertPool, error) {
	if file == "" && dir == "" {
		return nil, nil
	}
	pool := x509.NewCertPool()
	if file != "" {
		pem, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%w: read CA file: %v", ErrConfig, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrConfig, file)
		}
	}
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("%w: read CA directory: %v", ErrConfig, err)
		}
		n := 0
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				continue // subdirectories, unreadable files: OpenSSL skips them too
			}
			if pool.AppendCertsFromPEM(b) {
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: CA directory %s holds no PEM certificate", ErrConfig, dir)
		}
	}
	return pool, nil
}

// checkIdentity is ssl-mode=VERIFY_IDENTITY's name check on the donor:
// the joiner's certificate must name the host the donor connected to
// (its DNS or IP subjectAltName), or, for a joiner on one of this
// host's own addresses, "localhost" (the name the stock scripts check
// then). A certificate without any subjectAltName is matched by its
// common name, case-insensitively, but only if that CN is a plain host
// name: a CN carrying anything else (quotes, spaces, shell or SQL
// metacharacters) never matches and is only ever logged quoted.
func checkIdentity(leaf *x509.Certificate, host string) error {
	names := []string{host}
	if isLocalHost(host) {
		names = append(names, "localhost")
	}
	for _, n := range names {
		if leaf.VerifyHostname(n) == nil {
			return nil
		}
		if len(leaf.DNSNames) == 0 && len(leaf.IPAddresses) == 0 && validHostname(leaf.Subject.CommonName) &&
			strings.EqualFold(strings.TrimSuffix(leaf.Subject.CommonName, "."), strings.TrimSuffix(n, ".")) {
			return nil
		}
	}
	return fmt.Errorf("joiner's certificate does not name %s (ssl-mode=VERIFY_IDENTITY): it has CN %q, DNS names %q, IP addresses %v",
		strings.Join(names, " or "), leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses)
}

// validHostname reports whether s is a plain DNS name or IP address:
// letters, digits, '-' and '.' (or an IP literal), at most 253 bytes.
func validHostname(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
				return false
			}
		}
	}
	return true
}

// isLocalHost reports whether host is a loopback address, "localhost",
// or an address of one of this host's interfaces.
func isLocalHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
