package s3server

import (
	"context"
	"net/http"
	"os"
	"syscall"
	"testing"
)

// TestLifecycle: starts over TLS with a certificate clients can trust,
// answers /health, stops by PID, restarts on the same address and data.
func TestLifecycle(t *testing.T) {
	s := Require(t, Options{TLS: true, Buckets: []string{"b"}})
	c := s.HTTPClient()
	get := func() error {
		resp, err := c.Get(s.Endpoint + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(); err != nil {
		t.Fatalf("health over TLS with the generated CA: %v", err)
	}
	if fi, err := os.Stat(s.DataDir + "/b"); err != nil || !fi.IsDir() {
		t.Fatalf("bucket directory: %v", err)
	}
	pid := s.PID()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("pid %d still alive after Stop", pid)
	}
	c.CloseIdleConnections()
	if err := get(); err == nil {
		t.Fatal("health answered after Stop")
	}
	if err := s.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := get(); err != nil {
		t.Fatalf("health after Restart: %v", err)
	}
	// Unauthenticated S3 requests are refused: the server checks credentials.
	resp, err := c.Get(s.Endpoint + "/b")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("anonymous list: %d, want a refusal (versitygw v1.8.0 answers 400)", resp.StatusCode)
	}
}
