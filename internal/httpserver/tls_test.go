package httpserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
)

// testPair is a self-signed certificate for 127.0.0.1 and its key, as PEM.
type testPair struct {
	certPEM, keyPEM []byte
	serial          *big.Int
}

func newTestPair(t *testing.T, cn string) testPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testPair{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		serial:  serial,
	}
}

// write replaces the files as a Secret volume update does: new files renamed over.
func (p testPair) write(t *testing.T, certFile, keyFile string) {
	t.Helper()
	writeFile(t, certFile, p.certPEM)
	writeFile(t, keyFile, p.keyPEM)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// tlsClient returns the serial of the certificate the server at addr presents on a
// new connection (verified against roots), for a GET of path.
func servedSerial(addr string, roots *x509.CertPool) (*big.Int, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET: %s", resp.Status)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber, nil
}

func tlsConfig(certFile, keyFile string) string {
	return fmt.Sprintf("tokenServer: {address: '127.0.0.1:0', tls: {certFile: %q, keyFile: %q}}", certFile, keyFile)
}

// waitServed waits until the server presents the certificate of serial want.
func waitServed(t *testing.T, addr string, roots *x509.CertPool, want *big.Int) {
	t.Helper()
	deadline := time.Now().Add(3 * CertCheckInterval)
	for {
		got, err := servedSerial(addr, roots)
		if err == nil && got.Cmp(want) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serial %v (err %v) %s after the rewrite, want %x", got, err, 3*CertCheckInterval, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTLSBrokenRewritesKeepThePreviousCertificate: a broken rewrite of the files
// (garbage, a key of another certificate, a truncated key, a missing key file) leaves
// the previous certificate serving; a good one then replaces it. A start with a broken
// pair fails.
func TestTLSBrokenRewritesKeepThePreviousCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	a, b, c := newTestPair(t, "a"), newTestPair(t, "b"), newTestPair(t, "c")
	roots := x509.NewCertPool()
	for _, p := range []testPair{a, b, c} {
		roots.AppendCertsFromPEM(p.certPEM)
	}
	b.write(t, certFile, keyFile)
	addr := startServer(t, tlsConfig(certFile, keyFile), nil).Addr().String()
	waitServed(t, addr, roots, b.serial)

	for _, tc := range []struct {
		name      string
		cert, key []byte
	}{
		{"garbage certificate", []byte("not a certificate"), c.keyPEM},
		{"key of another certificate", c.certPEM, a.keyPEM},
		{"truncated key", c.certPEM, c.keyPEM[:len(c.keyPEM)/2]},
		{"broken PEM", []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"), c.keyPEM},
	} {
		// Every state on the way is broken too: the watcher may read any of them.
		writeFile(t, certFile, []byte("garbage"))
		writeFile(t, keyFile, tc.key)
		writeFile(t, certFile, tc.cert)
		time.Sleep(time.Second) // file notifications arrive at once
		if got, err := servedSerial(addr, roots); err != nil || got.Cmp(b.serial) != 0 {
			t.Fatalf("%s: serving serial %v (err %v), want the previous pair's %x", tc.name, got, err, b.serial)
		}
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if got, err := servedSerial(addr, roots); err != nil || got.Cmp(b.serial) != 0 {
		t.Fatalf("key file missing: serving serial %v (err %v), want the previous pair's %x", got, err, b.serial)
	}
	c.write(t, certFile, keyFile)
	waitServed(t, addr, roots, c.serial)

	// A start with a mismatched pair fails, naming the reason.
	writeFile(t, keyFile, a.keyPEM)
	cfg, err := config.Parse([]byte("issuer: https://issuer.test\n" + tlsConfig(certFile, keyFile)))
	if err != nil {
		t.Fatal(err)
	}
	err = New(cfg.TokenServer, http.NotFoundHandler(), logr.Discard()).Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Errorf("start with a mismatched pair: err %v, want a refusal naming the mismatch", err)
	}
}

// TestTLSCertificateReloadedWithoutRestart runs the token server with TLS: a client
// sees the first certificate, then, after the files are rewritten, the new one from
// the same server; a broken rewrite leaves the new one serving requests.
func TestTLSCertificateReloadedWithoutRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first, second := newTestPair(t, "first"), newTestPair(t, "second")
	first.write(t, certFile, keyFile)
	addr := startServer(t, tlsConfig(certFile, keyFile), nil).Addr().String()

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(first.certPEM)
	roots.AppendCertsFromPEM(second.certPEM)
	served := func() (*big.Int, error) { return servedSerial(addr, roots) }
	got, err := served()
	if err != nil {
		t.Fatal(err)
	}
	if got.Cmp(first.serial) != 0 {
		t.Fatalf("serial %x, want the first certificate's %x", got, first.serial)
	}

	// HTTP/1.1 only, even to a client that offers HTTP/2: an HTTP/2 connection with a
	// stream always open would hold a connection slot past every timeout.
	h2 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true,
	}}
	resp, err := h2.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.ProtoMajor != 1 {
		t.Errorf("the server spoke %s to a client offering HTTP/2", resp.Proto)
	}

	second.write(t, certFile, keyFile)
	waitServed(t, addr, roots, second.serial)
}

// TestTLSResumesSessions: a client that reconnects resumes its TLS 1.3 session (no
// certificate, no signature), a client without the session makes a full handshake,
// and keep-alive serves several requests on one connection over HTTP/1.1.
func TestTLSResumesSessions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pair := newTestPair(t, "resume")
	pair.write(t, certFile, keyFile)
	addr := startServer(t, tlsConfig(certFile, keyFile), nil).Addr().String()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pair.certPEM)

	get := func(c *http.Client) *http.Response {
		t.Helper()
		resp, err := c.Get("https://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp
	}
	newClient := func(cache tls.ClientSessionCache, keepAlive bool) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots, ClientSessionCache: cache},
			DisableKeepAlives: !keepAlive,
		}}
	}

	resuming := newClient(tls.NewLRUClientSessionCache(8), false)
	first := get(resuming)
	if first.TLS.Version != tls.VersionTLS13 || first.TLS.DidResume || first.ProtoMajor != 1 {
		t.Fatalf("first connection: version %x, resumed %v, %s; want a full TLS 1.3 handshake, HTTP/1.1", first.TLS.Version, first.TLS.DidResume, first.Proto)
	}
	for i := range 3 {
		if r := get(resuming); !r.TLS.DidResume || r.TLS.Version != tls.VersionTLS13 {
			t.Fatalf("reconnection %d: resumed %v, version %x; want a resumed TLS 1.3 session", i+1, r.TLS.DidResume, r.TLS.Version)
		}
	}
	if r := get(newClient(nil, false)); r.TLS.DidResume {
		t.Fatal("a client without a session cache resumed")
	}

	// Keep-alive: one connection, one handshake, several requests.
	var conns atomic.Int32
	ka := newClient(nil, true)
	ka.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		conns.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, a)
	}
	for range 5 {
		get(ka)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("5 keep-alive requests used %d connections, want 1", n)
	}
}

// TestTLSPortRefusesPlainHTTP: a plain-HTTP request to the TLS port is answered with a
// 400 that says what went wrong, not a hang or a reset.
func TestTLSPortRefusesPlainHTTP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	newTestPair(t, "plain").write(t, certFile, keyFile)
	addr := startServer(t, tlsConfig(certFile, keyFile), nil).Addr().String()

	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post("http://"+addr+"/oauth2-token", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTP request to an HTTPS server") {
		t.Fatalf("plain HTTP to the TLS port: %s %q, want 400 naming the mistake", resp.Status, body)
	}
}
