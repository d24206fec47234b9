package sst_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/test/cluster"
)

// tlsConf is one TLS configuration of the SST, written into every node's
// option file: lines for a new [mysqld] group and a new [sst] group (the
// shared cluster's [sst] tca/tcert/tkey/ssl-mode lines are removed first).
// Each configuration is run twice on the same cluster shape: node 3 joins
// with wsrep_sst_method=mariabackup (the stock script, proving the
// configuration is one MariaDB accepts), then with gosst; each time by a
// full SST of a wiped datadir and then by IST.
type tlsConf struct {
	mysqld, sst []string
	mode        string
	// Certificates each role must have used (the stock scripts' "SSL
	// configuration" log line names them) and the source gosst must log
	// for each role.
	joinerCert, donorCert     string
	joinerSource, donorSource string
	// absent must not appear in any node's log during the run.
	absent string
	// verification gosst must log: "none (ssl-mode=REQUIRED)", "chain" or
	// "chain and, on the donor, the joiner's name".
	verify string
}

// tlsConfEdit returns the option file for one case and method.
func tlsConfEdit(orig string, c tlsConf, method string) string {
	var keep []string
	for _, l := range strings.Split(orig, "\n") {
		switch {
		case strings.HasPrefix(l, "tca="), strings.HasPrefix(l, "tcert="), strings.HasPrefix(l, "tkey="), strings.HasPrefix(l, "ssl-mode="):
			continue
		case strings.HasPrefix(l, "wsrep_sst_method="):
			l = "wsrep_sst_method=" + method
		}
		keep = append(keep, l)
	}
	s := strings.TrimRight(strings.Join(keep, "\n"), "\n") + "\n\n[mysqld]\n" + strings.Join(c.mysqld, "\n") +
		"\n\n[sst]\nssl-mode=" + c.mode + "\n" + strings.Join(c.sst, "\n") + "\n"
	return s
}

// runTLSConf runs c with the stock method and then with gosst.
func runTLSConf(t *testing.T, c tlsConf) {
	runTLSConfs(t, tlsRun{"mariabackup", c}, tlsRun{"gosst", c})
}

// tlsRun is one join method with one configuration.
type tlsRun struct {
	method string
	conf   tlsConf
}

// runTLSConfs runs each configuration in turn on the same cluster (node 3
// joins, nodes 1 and 2 donate) and leaves the cluster with the shared
// configuration and three Synced nodes.
func runTLSConfs(t *testing.T, runs ...tlsRun) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	clusterSynced(t, ctx)
	n1, n3 := shared.Node(1), shared.Node(3)
	mustExec(t, ctx, n1, "CREATE DATABASE IF NOT EXISTS tlsconf")
	mustExec(t, ctx, n1, "CREATE TABLE IF NOT EXISTS tlsconf.t (id INT PRIMARY KEY AUTO_INCREMENT, method VARCHAR(16), v VARCHAR(255)) ENGINE=InnoDB")
	orig := map[*cluster.Node]string{}
	for _, n := range shared.Nodes {
		orig[n] = mustRead(t, n.ConfigFile)
	}
	t.Cleanup(func() {
		for n, s := range orig {
			_ = os.WriteFile(n.ConfigFile, []byte(s), 0o600)
		}
		// A failed case may leave node 3 down: bring it back with the
		// shared configuration for the tests that follow.
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer ccancel()
		if n3.WaitSynced(cctx, 5*time.Second) == nil {
			return
		}
		t.Logf("restoring %s with the shared configuration", n3.Name)
		_ = n3.Kill()
		if err := n3.Wipe(); err != nil {
			t.Error(err)
			return
		}
		waitFor(2*time.Minute, func() bool { return tlsConfPortFree(n3.SSTPort) })
		if err := n3.Start(cctx); err != nil {
			t.Errorf("%s did not rejoin with the shared configuration: %v", n3.Name, err)
		}
	})
	for _, r := range runs {
		t.Run(r.method+"/"+r.conf.mode, func(t *testing.T) {
			for n, s := range orig {
				m := "gosst"
				if n == n3 {
					m = r.method
				}
				if err := os.WriteFile(n.ConfigFile, []byte(tlsConfEdit(s, r.conf, m)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			tlsConfTransfer(t, ctx, r.conf, r.method, true)
			tlsConfTransfer(t, ctx, r.conf, r.method, false)
		})
	}
}

// tlsConfTransfer brings node 3 back by full SST (wiped) or by IST
// (stopped while node 1 writes) and checks the logs and the data.
func tlsConfTransfer(t *testing.T, ctx context.Context, c tlsConf, method string, full bool) {
	t.Helper()
	n1, n3 := shared.Node(1), shared.Node(3)
	kind := "IST"
	if full {
		kind = "full SST"
	}
	if n3.Running() {
		if err := n3.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	} else {
		_ = n3.Kill()
		full = true
	}
	if full {
		if err := n3.Wipe(); err != nil {
			t.Fatal(err)
		}
	}
	// After a failed join the stock joiner's socat may still hold the SST
	// port (it runs under "timeout 60"); wait for it rather than fail the
	// next run with "address already in use".
	if !waitFor(2*time.Minute, func() bool { return tlsConfPortFree(n3.SSTPort) }) {
		t.Fatalf("SST port %d of node3 still taken", n3.SSTPort)
	}
	for i := 0; i < 20; i++ {
		mustExec(t, ctx, n1, "INSERT INTO tlsconf.t (method, v) VALUES (?, REPEAT('x', 200))", method)
	}
	if full {
		mustExec(t, ctx, n1, "INSERT INTO tlsconf.t (method, v) SELECT ?, REPEAT(MD5(seq), 6) FROM tlsconf.seq_1_to_2000", method)
	}
	offs := make([]int64, len(shared.Nodes))
	for i, n := range shared.Nodes {
		offs[i] = n.LogSize()
	}
	start := time.Now()
	if err := n3.Start(ctx); err != nil {
		t.Fatalf("%s: node3 did not join by %s with %s: %v\n%s", method, kind, c.mode, err, cluster.Tail(n3.LogSince(offs[2]), 40))
	}
	t.Logf("%s: node3 joined by %s in %s", method, kind, time.Since(start).Round(100*time.Millisecond))
	joinerLog := n3.LogSince(offs[2])
	donorLog := shared.Node(1).LogSince(offs[0]) + shared.Node(2).LogSince(offs[1])
	if c.absent != "" && strings.Contains(joinerLog+donorLog, c.absent) {
		t.Errorf("%s: the logs show %q:\n%s", method, c.absent, strings.Join(cluster.GrepLines(joinerLog+donorLog, c.absent), "\n"))
	}
	if !full && len(cluster.GrepLines(joinerLog, "IST received")) == 0 {
		t.Errorf("%s: node3 did not catch up by IST:\n%s", method, cluster.Tail(joinerLog, 30))
	}
	switch method {
	case "mariabackup":
		// The stock script logs the TLS files it resolved and the
		// transfer mode (encrypt 3 or 4 = socat with certificate and key).
		tlsConfCheck(t, "joiner", joinerLog, "SSL configuration:", "CERT='"+c.joinerCert+"'", "MODE='"+c.mode+"'", "encrypt='3'")
		tlsConfCheck(t, "donor", donorLog, "SSL configuration:", "CERT='"+c.donorCert+"'", "MODE='"+c.mode+"'", "encrypt='3'")
	case "gosst":
		if full {
			tlsConfCheck(t, "joiner", joinerLog, "gosst: joiner: received and verified")
		} else {
			tlsConfCheck(t, "joiner", joinerLog, "gosst: joiner: donor reports IST")
		}
		sum := "TLS 1.3, ssl-mode=" + c.mode + ", peer verification: " + c.verify + "; from "
		tlsConfCheck(t, "joiner", joinerLog, "gosst: joiner: "+sum, c.joinerSource)
		tlsConfCheck(t, "donor", donorLog, "gosst: donor: "+sum, c.donorSource)
	}
	want, err := n1.QueryString(ctx, "SELECT COUNT(*) FROM tlsconf.t")
	if err != nil {
		t.Fatal(err)
	}
	var w int
	fmt.Sscan(want, &w)
	clusterSynced(t, ctx)
	converge(t, ctx, "tlsconf.t", w)
}

func tlsConfPortFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// tlsConfCheck wants a line of log that contains first and every one of more.
func tlsConfCheck(t *testing.T, role, log, first string, more ...string) {
	t.Helper()
	lines := cluster.GrepLines(log, first)
	for _, l := range lines {
		ok := true
		for _, m := range more {
			ok = ok && strings.Contains(l, m)
		}
		if ok {
			t.Logf("%s: %s", role, strings.TrimSpace(l))
			return
		}
	}
	t.Errorf("%s log has no line with %q and %q; lines with the first:\n%s", role, first, more, strings.Join(lines, "\n"))
}

// serverCerts is the case every node's server certificates serve the SST
// with nothing in [sst] but ssl-mode: the configuration gosst refused
// ("needs tca") before.
func serverCerts(mode, verify string) tlsConf {
	return tlsConf{
		mysqld:       []string{"ssl-ca=" + certs.CA, "ssl-cert=" + certs.Cert, "ssl-key=" + certs.Key},
		mode:         mode,
		joinerCert:   certs.Cert,
		donorCert:    certs.Cert,
		joinerSource: "[mysqld] ssl-cert",
		donorSource:  "[mysqld] ssl-cert",
		verify:       verify,
	}
}

// TestTLSConfServerCertsRequired: [mysqld] ssl-* only, ssl-mode=REQUIRED
// (encrypted, peer not verified, as the stock scripts do).
func TestTLSConfServerCertsRequired(t *testing.T) {
	runTLSConf(t, serverCerts("REQUIRED", "none (ssl-mode=REQUIRED)"))
}

// TestTLSConfServerCertsVerifyCA: [mysqld] ssl-* only, ssl-mode=VERIFY_CA.
func TestTLSConfServerCertsVerifyCA(t *testing.T) {
	runTLSConf(t, serverCerts("VERIFY_CA", "chain"))
}

// TestTLSConfServerCertsVerifyIdentity: [mysqld] ssl-* only,
// ssl-mode=VERIFY_IDENTITY (the certificates name localhost and
// 127.0.0.1, where the joiner listens).
func TestTLSConfServerCertsVerifyIdentity(t *testing.T) {
	runTLSConf(t, serverCerts("VERIFY_IDENTITY", "chain and, on the donor, the joiner's name"))
}

// TestTLSConfRoleCerts: the server's own certificates come from a CA
// the SST does not use, and [sst] ssl-server-* / ssl-client-* give the
// joiner a server-only certificate (extended key usage serverAuth) and
// the donor a client-only one (clientAuth) from two other CAs; each
// role's CA file holds both CAs (the stock scripts check that a node's
// CA file also verifies its own certificate).
func TestTLSConfRoleCerts(t *testing.T) {
	dir := t.TempDir()
	sca, err := newRootCA(dir, "server-role")
	if err != nil {
		t.Fatal(err)
	}
	cca, err := newRootCA(dir, "client-role")
	if err != nil {
		t.Fatal(err)
	}
	scert, skey, err := sca.issueFor(dir, "joiner", "gosst-joiner", x509.ExtKeyUsageServerAuth)
	if err != nil {
		t.Fatal(err)
	}
	ccert, ckey, err := cca.issueFor(dir, "donor", "gosst-donor", x509.ExtKeyUsageClientAuth)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "role-cas.pem")
	if err := os.WriteFile(bundle, []byte(mustRead(t, sca.file)+mustRead(t, cca.file)), 0o600); err != nil {
		t.Fatal(err)
	}
	runTLSConf(t, tlsConf{
		mysqld: []string{"ssl-ca=" + certs.OtherCA, "ssl-cert=" + certs.OtherCert, "ssl-key=" + certs.OtherKey},
		sst: []string{
			"ssl-server-ca=" + bundle, "ssl-server-cert=" + scert, "ssl-server-key=" + skey,
			"ssl-client-ca=" + bundle, "ssl-client-cert=" + ccert, "ssl-client-key=" + ckey,
		},
		mode:         "VERIFY_CA",
		joinerCert:   scert,
		donorCert:    ccert,
		joinerSource: "[sst] ssl-server-cert",
		donorSource:  "[sst] ssl-client-cert",
		verify:       "chain",
	})
}

// TestTLSConfIntermediateCA: node certificates issued by an intermediate
// CA (their files carry the intermediate), ssl-ca holds the root only.
func TestTLSConfIntermediateCA(t *testing.T) {
	dir := t.TempDir()
	root, err := newRootCA(dir, "root")
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.intermediate(dir, "intermediate")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := inter.issue(dir, "node", "gosst-node-chain")
	if err != nil {
		t.Fatal(err)
	}
	runTLSConf(t, tlsConf{
		mysqld:       []string{"ssl-ca=" + root.file, "ssl-cert=" + cert, "ssl-key=" + key},
		mode:         "VERIFY_CA",
		joinerCert:   cert,
		donorCert:    cert,
		joinerSource: "[mysqld] ssl-cert",
		donorSource:  "[mysqld] ssl-cert",
		verify:       "chain",
	})
}

// TestTLSConfHostileCN: the node certificate's CN carries shell and SQL
// metacharacters (it also names localhost and 127.0.0.1). The stock
// method transfers with it under ssl-mode=REQUIRED (under VERIFY_* the
// stock joiner announces its CN in the SST request, and MariaDB 10.11's
// donor refuses the request: "Illegal character in variable: 39 (')",
// "Bad remote auth string. SST canceled."); gosst transfers with it under
// REQUIRED and VERIFY_IDENTITY (the name check uses the subjectAltNames,
// and gosst never sends, runs or logs the CN). Nothing the CN says runs,
// and the table its SQL names survives.
func TestTLSConfHostileCN(t *testing.T) {
	dir := t.TempDir()
	var b [4]byte
	_, _ = rand.Read(b[:])
	pwn := filepath.Join("/tmp", "gosst-pwn-"+hex.EncodeToString(b[:])) // short: a CN has at most 64 bytes
	cn := "x'; DROP TABLE t; --$(touch " + pwn + ")"
	ca, err := newRootCA(dir, "hostile")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.issue(dir, "node", cn)
	if err != nil {
		t.Fatal(err)
	}
	conf := func(mode, verify string) tlsConf {
		return tlsConf{
			mysqld:       []string{"ssl-ca=" + ca.file, "ssl-cert=" + cert, "ssl-key=" + key},
			mode:         mode,
			joinerCert:   cert,
			donorCert:    cert,
			joinerSource: "[mysqld] ssl-cert",
			donorSource:  "[mysqld] ssl-cert",
			verify:       verify,
			absent:       cn,
		}
	}
	required := conf("REQUIRED", "none (ssl-mode=REQUIRED)")
	runTLSConfs(t,
		tlsRun{"mariabackup", required},
		tlsRun{"gosst", required},
		tlsRun{"gosst", conf("VERIFY_IDENTITY", "chain and, on the donor, the joiner's name")},
	)
	if _, err := os.Stat(pwn); err == nil {
		os.Remove(pwn)
		t.Errorf("the certificate's CN ran as a shell command: %s exists", pwn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range shared.Nodes {
		if _, err := n.QueryString(ctx, "SELECT COUNT(*) FROM tlsconf.t"); err != nil {
			t.Errorf("%s: tlsconf.t: %v", n.Name, err)
		}
	}
}

// TestTLSConfNoCertificate: ssl-mode=VERIFY_CA on a joiner that has no
// certificate anywhere (no tca/tcert/tkey, no ssl-* in any group). gosst
// must refuse before listening, naming what is missing, rather than
// transfer in cleartext; the node's datadir stays as it was, so once the
// certificates are configured it rejoins by IST.
func TestTLSConfNoCertificate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	clusterSynced(t, ctx)
	n1, n3 := shared.Node(1), shared.Node(3)
	mustExec(t, ctx, n1, "CREATE DATABASE IF NOT EXISTS tlsconf")
	mustExec(t, ctx, n1, "CREATE TABLE IF NOT EXISTS tlsconf.t (id INT PRIMARY KEY AUTO_INCREMENT, method VARCHAR(16), v VARCHAR(255)) ENGINE=InnoDB")
	if err := n3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, ctx, n1, "INSERT INTO tlsconf.t (method, v) VALUES ('no-cert', 'missed by node3')")
	editConfig(t, n3, func(s string) string { return tlsConfEdit(s, tlsConf{mode: "VERIFY_CA"}, "gosst") })
	off := n3.LogSize()
	if err := n3.Start(ctx); err == nil {
		t.Fatal("node3 joined although its SST configuration has no certificate")
	}
	log3 := n3.LogSince(off)
	if l := cluster.GrepLines(log3, "gosst: joiner: bad configuration: ssl-mode=VERIFY_CA needs a certificate and key"); len(l) == 0 {
		t.Errorf("joiner did not name the missing certificate:\n%s", cluster.Tail(log3, 30))
	} else {
		t.Logf("joiner: %s", strings.TrimSpace(l[0]))
	}
	if l := cluster.GrepLines(log3, "gosst: joiner: receiving"); len(l) > 0 {
		t.Errorf("joiner received data: %s", l)
	}
	if n3.Running() {
		if err := n3.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	// Configure the certificates (the server's own): node3 rejoins by IST.
	_ = os.WriteFile(n3.ConfigFile, []byte(tlsConfEdit(mustRead(t, n3.ConfigFile), serverCerts("VERIFY_CA", "chain"), "gosst")), 0o600)
	off = n3.LogSize()
	if err := n3.Start(ctx); err != nil {
		t.Fatalf("node3 did not rejoin once configured: %v", err)
	}
	if l := cluster.GrepLines(n3.LogSince(off), "IST received"); len(l) == 0 {
		t.Errorf("node3 did not rejoin by IST: its datadir was touched")
	}
	want, err := n1.QueryString(ctx, "SELECT COUNT(*) FROM tlsconf.t")
	if err != nil {
		t.Fatal(err)
	}
	var w int
	fmt.Sscan(want, &w)
	converge(t, ctx, "tlsconf.t", w)
}

// TestTLSConfCNOnly: VERIFY_IDENTITY with node certificates that carry no
// subjectAltName, only CN=localhost (common with older hand-made
// certificates). The stock method accepts them; gosst matches such a CN
// (a plain host name) against "localhost" for a joiner on a local
// address. Before, gosst's donor refused them (Go checks SANs only).
func TestTLSConfCNOnly(t *testing.T) {
	dir := t.TempDir()
	ca, err := newRootCA(dir, "cnonly")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.issueNames(dir, "node", "localhost", nil, nil, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	if err != nil {
		t.Fatal(err)
	}
	runTLSConf(t, tlsConf{
		mysqld:       []string{"ssl-ca=" + ca.file, "ssl-cert=" + cert, "ssl-key=" + key},
		mode:         "VERIFY_IDENTITY",
		joinerCert:   cert,
		donorCert:    cert,
		joinerSource: "[mysqld] ssl-cert",
		donorSource:  "[mysqld] ssl-cert",
		verify:       "chain and, on the donor, the joiner's name",
	})
}

// TestTLSConfWrongName: VERIFY_IDENTITY with node certificates from the
// right CA that name another host (db9.example): the donor refuses the
// joiner before sending anything and says which names it wanted and which
// the certificate has; the joiner's datadir is left as it was, and node 3
// joins once its certificate names it.
func TestTLSConfWrongName(t *testing.T) {
	dir := t.TempDir()
	ca, err := newRootCA(dir, "wrongname")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.issueNames(dir, "node", "db9.example", []string{"db9.example"}, nil, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	if err != nil {
		t.Fatal(err)
	}
	ctx, n3 := wipedJoiner(t)
	orig := map[*cluster.Node]string{}
	for _, n := range shared.Nodes {
		orig[n] = mustRead(t, n.ConfigFile)
		editConfig(t, n, func(s string) string {
			return tlsConfEdit(s, tlsConf{mode: "VERIFY_IDENTITY", mysqld: []string{"ssl-ca=" + ca.file, "ssl-cert=" + cert, "ssl-key=" + key}}, "gosst")
		})
	}
	offs := []int64{shared.Node(1).LogSize(), shared.Node(2).LogSize(), n3.LogSize()}
	log3 := expectFailedJoin(t, ctx, n3, offs[2])
	var donorMsg []string
	for i, n := range shared.Nodes[:2] {
		donorMsg = append(donorMsg, cluster.GrepLines(n.LogSince(offs[i]), "gosst: donor: failed")...)
	}
	want := `nothing sent: joiner's certificate does not name 127.0.0.1 or localhost (ssl-mode=VERIFY_IDENTITY): it has CN "db9.example", DNS names ["db9.example"]`
	if !strings.Contains(strings.Join(donorMsg, "\n"), want) || !strings.Contains(strings.Join(donorMsg, "\n"), "exit 13") {
		t.Errorf("donor did not refuse the joiner's name with exit 13: %q", donorMsg)
	}
	t.Logf("donor: %s", strings.Join(donorMsg, "\n"))
	t.Logf("joiner: %s", strings.Join(cluster.GrepLines(log3, "gosst: joiner: "), "\n"))
	entries, _ := os.ReadDir(n3.DataDir)
	for _, e := range entries {
		if e.Name() == ".gosst-sst" || e.Name() == "ibdata1" {
			t.Errorf("data arrived despite the refused name: %s", e.Name())
		}
	}
	// Back to the shared certificates (they name localhost and 127.0.0.1).
	for n, s := range orig {
		_ = os.WriteFile(n.ConfigFile, []byte(s), 0o600)
	}
	rejoin(t, ctx, n3)
}
