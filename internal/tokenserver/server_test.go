package tokenserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// TestSlowHeadersAreCut: a client that sends part of its headers and then nothing (slow
// loris) is disconnected after tokenServer.readHeaderTimeout. Loopback only.
func TestSlowHeadersAreCut(t *testing.T) {
	srv := startServer(t, "tokenServer: {address: '127.0.0.1:0', readHeaderTimeout: 1s}")

	conn, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := io.WriteString(conn, "POST /oauth2-token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: app"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(conn) // whatever the server answers, it must then close
	elapsed := time.Since(start)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the connection was still open after %s", elapsed)
	}
	if elapsed < 900*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("connection closed after %s, want about the 1s read-header timeout", elapsed)
	}
}

// TestConnectionCap: with tokenServer.maxConnections 1, a second client waits until the
// first connection closes, then is served. Loopback only.
func TestConnectionCap(t *testing.T) {
	srv := startServer(t, "tokenServer: {address: '127.0.0.1:0', maxConnections: 1}")
	first, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	get := func(timeout time.Duration) (*http.Response, error) {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		return c.Get("http://" + srv.Addr().String() + JWKSPath)
	}
	if resp, err := get(500 * time.Millisecond); err == nil {
		_ = resp.Body.Close()
		t.Fatal("a second connection was served while the only slot was taken")
	}
	_ = first.Close()
	resp, err := get(5 * time.Second)
	if err != nil {
		t.Fatalf("after the first connection closed: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// startServer runs a token server on loopback until the test ends.
func startServer(t *testing.T, cfg string) *Server {
	t.Helper()
	w := newWorld(t)
	srv, _ := w.server(cfg, signing.ES256, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for srv.Addr() == nil {
		if time.Now().After(deadline) {
			t.Fatal("server did not listen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return srv
}
