package devenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWriteLocalTLS: the server certificate is ECDSA P-256, for 127.0.0.1, ::1 and
// localhost, verifies against the CA file (through HTTPClient), and its key is private
// to the user; a second call keeps the CA (clients that trust it go on working) and
// makes a new server certificate; an expiring or unreadable CA is replaced.
func TestWriteLocalTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := WriteLocalTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(first.CertFile, first.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf := pair.Leaf
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("server key %T, want ECDSA P-256", leaf.PublicKey)
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("certificate not valid for %s: %v", host, err)
		}
	}
	if st, err := os.Stat(first.KeyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v (%v), want 0600", st.Mode().Perm(), err)
	}

	// A TLS server with the pair is trusted by HTTPClient(CAFile), not by default roots.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()
	c, err := HTTPClient(first.CAFile, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("client trusting the CA: %v", err)
	}
	_ = resp.Body.Close()
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(srv.URL); err == nil {
		_ = resp.Body.Close()
		t.Fatal("a client that does not trust the local CA accepted the certificate")
	}

	caBefore, _ := os.ReadFile(first.CAFile)
	second, err := WriteLocalTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	caAfter, _ := os.ReadFile(second.CAFile)
	if string(caBefore) != string(caAfter) {
		t.Error("a valid CA was replaced")
	}
	pair2, err := tls.LoadX509KeyPair(second.CertFile, second.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if pair2.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("the server certificate was not renewed")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caAfter)
	if _, err := pair2.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("the renewed certificate does not verify against the kept CA: %v", err)
	}

	// A CA that is not usable any more is replaced.
	if err := os.WriteFile(filepath.Join(dir, caKeyName), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	third, err := WriteLocalTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	caThird, _ := os.ReadFile(third.CAFile)
	if string(caThird) == string(caAfter) {
		t.Error("an unusable CA was kept")
	}
	if _, err := tls.LoadX509KeyPair(third.CertFile, third.KeyFile); err != nil {
		t.Fatal(err)
	}
}
