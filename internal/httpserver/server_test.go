package httpserver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
)

// TestSlowHeadersAreCut: a client that sends part of its headers and then nothing (slow
// loris) is disconnected after tokenServer.readHeaderTimeout. Loopback only.
func TestSlowHeadersAreCut(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "tokenServer: {address: '127.0.0.1:0', readHeaderTimeout: 1s}", nil)

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
	t.Parallel()
	srv := startServer(t, "tokenServer: {address: '127.0.0.1:0', maxConnections: 1}", nil)
	first, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	get := func(timeout time.Duration) (*http.Response, error) {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		return c.Get("http://" + srv.Addr().String() + "/.well-known/jwks.json")
	}
	if resp, err := get(500 * time.Millisecond); err == nil {
		_ = resp.Body.Close()
		t.Fatal("a second connection was served while the only slot was taken")
	}
	_ = first.Close()
	// Until the server has read the close, the slot is still taken, and a connection of
	// the address holding it is closed at once (it holds its fair share): ask again.
	var resp *http.Response
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err = get(time.Second); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("5 s after the first connection closed: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// startServer serves handler on loopback, as tokenServer in cfg says, until the test
// ends; nil handler: one that answers 200 to every request.
func startServer(t *testing.T, cfg string, handler http.Handler) *Server {
	t.Helper()
	c, err := config.Parse([]byte("issuer: https://issuer.test\n" + cfg))
	if err != nil {
		t.Fatal(err)
	}
	if handler == nil {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, "ok")
		})
	}
	srv := New(c.TokenServer, handler, logr.Discard())
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
	for !srv.Listening() {
		if time.Now().After(deadline) {
			t.Fatal("server did not listen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return srv
}

// TestIdleConnectionsDoNotKeepClientsOut is the connection-slot attack: idle keep-alive
// connections (each has sent one request) fill tokenServer.maxConnections; a new
// client must still get a token, long before the idle timeout (2 minutes here), as
// the idle connection that waited longest is closed to make room. Loopback only.
func TestIdleConnectionsDoNotKeepClientsOut(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "tokenServer: {address: '127.0.0.1:0', maxConnections: 8, idleTimeout: 120s}", nil)
	const path, body = "/oauth2-token", `{"grant_type":"client_credentials"}`
	request := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)

	// Fill every slot with a keep-alive connection that sent one request and idles.
	var idle []net.Conn
	for i := range 8 {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		if _, err := io.WriteString(c, request); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("idle connection %d: status %d", i, resp.StatusCode)
		}
		idle = append(idle, c)
	}

	start := time.Now()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Post("http://"+srv.Addr().String()+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("a new client with every slot held by idle connections: %v (after %s)", err, time.Since(start))
	}
	_ = resp.Body.Close()
	t.Logf("new client answered %d after %s with %d idle connections holding every slot", resp.StatusCode, time.Since(start), len(idle))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// An idle connection was closed for it (the longest idle; which one that is
	// depends on when the server saw each go idle), and only one.
	closed := 0
	for _, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
	}
	if closed != 1 {
		t.Errorf("%d idle connections were closed, want 1", closed)
	}
}
