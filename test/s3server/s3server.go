// Package s3server runs a real S3-compatible server (versitygw, posix
// backend) on 127.0.0.1 for tests: a temp data directory, random root
// credentials, optional TLS with a certificate made here, a health poll,
// and stop by PID. It is usable from TestMain (Start returns errors) and
// from tests (Require).
package s3server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gosst/gosst/test/testport"
)

// EnvBinary names the variable `make test` sets to the versitygw path.
const EnvBinary = "GOSST_VERSITYGW"

// ErrNoBinary says the server binary is missing.
var ErrNoBinary = errors.New("versitygw not found (set " + EnvBinary + ", or run make tools to build it into .tools/)")

// Binary finds versitygw: $GOSST_VERSITYGW, else <repo>/.tools/versitygw,
// else PATH.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrNoBinary, EnvBinary, p, err)
		}
		return p, nil
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				p := filepath.Join(d, ".tools", "versitygw")
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", ErrNoBinary
}

// Options configure Start.
type Options struct {
	TLS bool
	// Buckets are created (as directories of the posix backend) before start.
	Buckets []string
	// TempDir is where the server's directory (data, certificate, log) is
	// made; "" for the system default.
	TempDir string
}

// Server is a running versitygw.
type Server struct {
	Addr      string // 127.0.0.1:port
	Endpoint  string // http(s)://127.0.0.1:port
	AccessKey string
	SecretKey string
	CAFile    string // PEM file clients must trust when TLS is on
	CAPEM     []byte
	DataDir   string

	bin, dir, certFile, keyFile string
	cmd                         *exec.Cmd
	waitErr                     chan error
	logFile                     string
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Start starts a server. Call Close when done.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opts.TempDir, "gosst-s3server-")
	if err != nil {
		return nil, err
	}
	s := &Server{
		bin: bin, dir: dir,
		AccessKey: "gosst" + randHex(6),
		SecretKey: randHex(20),
		DataDir:   filepath.Join(dir, "data"),
		logFile:   filepath.Join(dir, "versitygw.log"),
	}
	if err := os.Mkdir(s.DataDir, 0o700); err != nil {
		s.Close()
		return nil, err
	}
	for _, b := range opts.Buckets {
		if err := s.CreateBucket(b); err != nil {
			s.Close()
			return nil, err
		}
	}
	if opts.TLS {
		if err := s.makeCert(); err != nil {
			s.Close()
			return nil, fmt.Errorf("s3server: certificate: %w", err)
		}
	}
	var lastErr error
	for range 3 { // the free port may be taken between probe and bind
		port, err := freePort()
		if err != nil {
			s.Close()
			return nil, err
		}
		s.Addr = "127.0.0.1:" + strconv.Itoa(port)
		s.Endpoint = "http://" + s.Addr
		if opts.TLS {
			s.Endpoint = "https://" + s.Addr
		}
		if lastErr = s.start(ctx); lastErr == nil {
			return s, nil
		}
	}
	s.Close()
	return nil, lastErr
}

// Require starts a server for a test or fails it. Under -short it skips
// (unit tests only); otherwise a missing binary is a failure, so CI cannot
// pass without running the S3 tests.
func Require(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: skipping tests against a real S3 server")
	}
	if _, err := Binary(); err != nil {
		tb.Fatalf("%v: run make tools", err)
	}
	s, err := Start(context.Background(), opts)
	if err != nil {
		tb.Fatalf("start S3 test server: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// freePort reserves the server's port the way the cluster harness does
// (below the ephemeral range, locked across test processes): a port taken
// from 127.0.0.1:0 and closed again could be handed to another process
// before versitygw binds it, and again across each Kill and Restart.
func freePort() (int, error) {
	p, err := testport.Reserve(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// CreateBucket creates a bucket as a directory of the posix backend; works
// while the server runs or is stopped.
func (s *Server) CreateBucket(name string) error {
	return os.MkdirAll(filepath.Join(s.DataDir, name), 0o700)
}

// start launches the process on s.Addr and waits until /health answers.
func (s *Server) start(ctx context.Context) error {
	args := []string{"--port", s.Addr, "--health", "/health", "--quiet", "--keep-alive"}
	if s.certFile != "" {
		args = append(args, "--cert", s.certFile, "--key", s.keyFile)
	}
	args = append(args, "posix", s.DataDir)
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, args...)
	// Credentials go through the environment, never argv.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("s3server: start %s: %w", s.bin, err)
	}
	logf.Close()
	s.cmd = cmd
	s.waitErr = make(chan error, 1)
	go func() { s.waitErr <- cmd.Wait() }()

	client := s.HTTPClient()
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-s.waitErr:
			s.cmd = nil
			return fmt.Errorf("s3server: versitygw exited before it was ready (%v): %s", err, s.LogTail())
		case <-ctx.Done():
			s.Kill()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/health", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("s3server: versitygw not healthy on %s after 15s (last: %v): %s", s.Addr, err, s.LogTail())
		}
	}
}

// LogTail returns the end of the server's output.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(s.logFile)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// PID of the running server, or 0.
func (s *Server) PID() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop sends SIGTERM to the server's PID and waits for it to exit.
func (s *Server) Stop() error { return s.signal(syscall.SIGTERM) }

// Kill sends SIGKILL to the server's PID (a crash) and waits for it.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(sig)
	var err error
	select {
	case err = <-s.waitErr:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		err = <-s.waitErr
	}
	s.cmd = nil
	if sig == syscall.SIGTERM && err != nil {
		return fmt.Errorf("s3server: versitygw exit: %w", err)
	}
	return nil
}

// Restart starts the server again on the same address, data and credentials.
func (s *Server) Restart(ctx context.Context) error {
	if s.cmd != nil {
		return errors.New("s3server: still running")
	}
	return s.start(ctx)
}

// Close stops the server and removes its directory.
func (s *Server) Close() {
	_ = s.Stop()
	_ = os.RemoveAll(s.dir)
}

// TLSConfig trusts the server's certificate (nil without TLS).
func (s *Server) TLSConfig() *tls.Config {
	if s.CAPEM == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// HTTPClient is a plain client trusting the server.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: s.TLSConfig()}, Timeout: 5 * time.Second}
}

func (s *Server) makeCert() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "gosst test S3 server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	var cert, kpem bytes.Buffer
	_ = pem.Encode(&cert, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	_ = pem.Encode(&kpem, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	s.certFile = filepath.Join(s.dir, "cert.pem")
	s.keyFile = filepath.Join(s.dir, "key.pem")
	s.CAFile = s.certFile
	s.CAPEM = cert.Bytes()
	if err := os.WriteFile(s.certFile, cert.Bytes(), 0o600); err != nil {
		return err
	}
	return os.WriteFile(s.keyFile, kpem.Bytes(), 0o600)
}
