package tokenserver

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// TestSlowHeadersAreCut: a client that sends part of its headers and then nothing (slow
// loris) is disconnected after tokenServer.readHeaderTimeout. Loopback only.
func TestSlowHeadersAreCut(t *testing.T) {
	w := newWorld(t)
	srv, _ := w.server("tokenServer: {address: '127.0.0.1:0', readHeaderTimeout: 1s}", signing.ES256, nil)
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
