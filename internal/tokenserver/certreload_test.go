package tokenserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
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

// syncLog collects log lines.
type syncLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *syncLog) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{})
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func servedSerial(t *testing.T, r *certReloader) *big.Int {
	t.Helper()
	c, err := r.GetCertificate(nil)
	if err != nil || c == nil {
		t.Fatalf("GetCertificate: %v, %v", c, err)
	}
	return c.Leaf.SerialNumber
}

// TestCertReloader: a rewritten pair replaces the served one at the next recheck; a
// broken rewrite (garbage, a key of another certificate, a missing file) keeps the
// previous pair serving and is logged once with the reason, never with the key; a
// start with a broken pair fails.
func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	a, b, c := newTestPair(t, "a"), newTestPair(t, "b"), newTestPair(t, "c")
	a.write(t, certFile, keyFile)
	log := &syncLog{}
	r, err := newCertReloader(certFile, keyFile, time.Hour, log.logger())
	if err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, r); got.Cmp(a.serial) != 0 {
		t.Fatalf("serving serial %x, want the first pair's %x", got, a.serial)
	}

	b.write(t, certFile, keyFile)
	r.recheck()
	if got := servedSerial(t, r); got.Cmp(b.serial) != 0 {
		t.Fatalf("after a rewrite: serving serial %x, want the new pair's %x", got, b.serial)
	}
	if !strings.Contains(log.String(), "reloaded the TLS certificate") {
		t.Errorf("no log of the reload:\n%s", log)
	}

	broken := []struct {
		name      string
		cert, key []byte
		reason    string
	}{
		{"garbage certificate", []byte("not a certificate"), c.keyPEM, "failed to find any PEM data in certificate input"},
		{"key of another certificate", c.certPEM, a.keyPEM, "private key does not match public key"},
		{"truncated key", c.certPEM, c.keyPEM[:len(c.keyPEM)/2], "failed to find"},
	}
	for _, tc := range broken {
		before := len(log.lines)
		writeFile(t, certFile, tc.cert)
		writeFile(t, keyFile, tc.key)
		r.recheck()
		r.recheck() // an unchanged broken pair is not logged again
		if got := servedSerial(t, r); got.Cmp(b.serial) != 0 {
			t.Fatalf("%s: serving serial %x, want the previous pair's %x", tc.name, got, b.serial)
		}
		log.mu.Lock()
		added := strings.Join(log.lines[before:], "\n")
		n := len(log.lines) - before
		log.mu.Unlock()
		if n != 1 || !strings.Contains(added, tc.reason) || !strings.Contains(added, "still serving the previous certificate") {
			t.Errorf("%s: want one log line with %q, got %d:\n%s", tc.name, tc.reason, n, added)
		}
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	r.recheck()
	if got := servedSerial(t, r); got.Cmp(b.serial) != 0 {
		t.Fatalf("key file missing: serving serial %x, want the previous pair's %x", got, b.serial)
	}

	// Fixed again: the new pair serves.
	c.write(t, certFile, keyFile)
	r.recheck()
	if got := servedSerial(t, r); got.Cmp(c.serial) != 0 {
		t.Fatalf("after a good rewrite: serving serial %x, want %x", got, c.serial)
	}

	for _, p := range []testPair{a, b, c} {
		for _, line := range strings.Split(string(p.keyPEM), "\n") {
			if len(line) > 16 && !strings.HasPrefix(line, "-----") && strings.Contains(log.String(), line) {
				t.Fatalf("the log holds key material:\n%s", log)
			}
		}
	}

	writeFile(t, keyFile, a.keyPEM)
	if _, err := newCertReloader(certFile, keyFile, time.Hour, logr.Discard()); err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Errorf("start with a mismatched pair: err %v, want a refusal naming the mismatch", err)
	}
}

// TestTLSCertificateReloadedWithoutRestart runs the token server with TLS: a client
// sees the first certificate, then, after the files are rewritten, the new one from
// the same server; a broken rewrite leaves the new one serving requests.
func TestTLSCertificateReloadedWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first, second := newTestPair(t, "first"), newTestPair(t, "second")
	first.write(t, certFile, keyFile)
	srv := startServer(t, fmt.Sprintf("tokenServer: {address: '127.0.0.1:0', tls: {certFile: %q, keyFile: %q}}", certFile, keyFile))
	addr := srv.Addr().String()

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(first.certPEM)
	roots.AppendCertsFromPEM(second.certPEM)
	// served asks for the JWKS over a new connection and returns the serial of the
	// certificate the server presented (verified against the two test roots).
	served := func() (*big.Int, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		}}
		resp, err := c.Get("https://" + addr + JWKSPath)
		if err != nil {
			return nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET JWKS: %s", resp.Status)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber, nil
	}
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
	resp, err := h2.Get("https://" + addr + JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.ProtoMajor != 1 {
		t.Errorf("the server spoke %s to a client offering HTTP/2", resp.Proto)
	}

	second.write(t, certFile, keyFile)
	deadline := time.Now().Add(10 * certRecheckInterval)
	for {
		got, err = served()
		if err == nil && got.Cmp(second.serial) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serial %x (err %v) %s after the rewrite, want %x", got, err, 10*certRecheckInterval, second.serial)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A broken rewrite: the second certificate keeps serving.
	writeFile(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
	time.Sleep(3 * certRecheckInterval)
	for range 3 {
		got, err = served()
		if err != nil {
			t.Fatalf("after a broken rewrite: %v", err)
		}
		if got.Cmp(second.serial) != 0 {
			t.Fatalf("after a broken rewrite: serial %x, want the previous %x", got, second.serial)
		}
	}
	if bytes.Equal(first.certPEM, second.certPEM) {
		t.Fatal("the test pairs are equal")
	}
}
