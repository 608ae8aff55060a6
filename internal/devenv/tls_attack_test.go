package devenv

// Attack review 4 (issue 21): the local CA and the key files of WriteLocalTLS.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLocalCAIsNameConstrained: the local CA that developers are told to trust
// (curl --cacert, SSL_CERT_FILE) must only vouch for the loopback names it is made for.
// Whoever reads ca.key (kept for a year in bin/dev) must not be able to mint a
// certificate for any other host that verifies against ca.crt.
func TestLocalCAIsNameConstrained(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files, err := WriteLocalTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(files.CAFile, filepath.Join(dir, caKeyName))
	if err != nil {
		t.Fatal(err)
	}
	ca, caKey := pair.Leaf, pair.PrivateKey.(*ecdsa.PrivateKey)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "accounts.example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"accounts.example.com"},
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "accounts.example.com"}); err == nil {
		t.Errorf("the local CA vouches for accounts.example.com: it has no name constraints (permitted DNS %v, IP ranges %v); "+
			"anyone with %s can impersonate any site to a developer who trusts %s", ca.PermittedDNSDomains, ca.PermittedIPRanges, caKeyName, caCertName)
	}
}

// TestKeyFilesPrivateDespiteStaleTemp: a key file is private to the user even
// when its temporary file already exists with wider permissions (a leftover, or one
// placed there): os.WriteFile applies its mode only to a file it creates, and the
// temporary file is then renamed over tls.key / ca.key.
func TestKeyFilesPrivateDespiteStaleTemp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{tlsKeyFileName, caKeyName} {
		if err := os.WriteFile(filepath.Join(dir, name+".tmp"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := WriteLocalTLS(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{tlsKeyFileName, caKeyName} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode&0o077 != 0 {
			t.Errorf("%s holds a private key with mode %v: readable by others", name, mode)
		}
	}
}

// TestReusedCAKeyStaysPrivate: a CA kept across runs is reused only from a key
// file private to the user (or its mode is restored): a ca.key that became readable by
// others is kept and trusted for up to a year.
func TestReusedCAKeyStaysPrivate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := WriteLocalTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	caKey := filepath.Join(dir, caKeyName)
	if err := os.Chmod(caKey, 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(first.CAFile)
	if _, err := WriteLocalTLS(dir); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(first.CAFile)
	fi, err := os.Stat(caKey)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) == string(after) && fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("the CA of a world-readable %s (mode %v) was reused as is", caKeyName, fi.Mode().Perm())
	}
}
