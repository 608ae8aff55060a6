package devenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// LocalTLS are the files of the local CA and of the token server's certificate that
// Start writes with Options.TLS: all PEM, ECDSA P-256 (the cheapest handshake
// crypto/tls offers a server), the certificate for 127.0.0.1, ::1 and localhost.
type LocalTLS struct {
	// CAFile is the CA's certificate: what clients trust (curl --cacert, SSL_CERT_FILE).
	CAFile string
	// CertFile and KeyFile are the token server's certificate and key
	// (tokenServer.tls).
	CertFile, KeyFile string
}

// File names of WriteLocalTLS in its folder.
const (
	caCertName      = "ca.crt"
	caKeyName       = "ca.key"
	tlsCertFileName = "tls.crt"
	tlsKeyFileName  = "tls.key"
)

const (
	// caLifetime is how long a local CA is valid; one valid for at least
	// caRenewBefore more is kept across runs, so a client that trusts it keeps working.
	caLifetime    = 365 * 24 * time.Hour
	caRenewBefore = 7 * 24 * time.Hour
	// serverCertLifetime is the token server certificate's; a new one is made at
	// every start.
	serverCertLifetime = 30 * 24 * time.Hour
)

// WriteLocalTLS writes into dir a local CA (kept when dir already holds a valid one)
// and a new certificate for the token server signed by it.
func WriteLocalTLS(dir string) (LocalTLS, error) {
	files := LocalTLS{
		CAFile:   filepath.Join(dir, caCertName),
		CertFile: filepath.Join(dir, tlsCertFileName),
		KeyFile:  filepath.Join(dir, tlsKeyFileName),
	}
	caKeyFile := filepath.Join(dir, caKeyName)
	ca, caKey, err := loadCA(files.CAFile, caKeyFile)
	if err != nil {
		if ca, caKey, err = newCA(files.CAFile, caKeyFile); err != nil {
			return LocalTLS{}, err
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return LocalTLS{}, fmt.Errorf("local TLS: %w", err)
	}
	now := time.Now()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "oauth-client-operator token server (make dev)"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverCertLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  localIPs,
		DNSNames:     localDNSNames,
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		return LocalTLS{}, fmt.Errorf("local TLS: server certificate: %w", err)
	}
	if err := writePEM(files.CertFile, "CERTIFICATE", der, 0o644); err != nil {
		return LocalTLS{}, err
	}
	if err := writeKey(files.KeyFile, key); err != nil {
		return LocalTLS{}, err
	}
	return files, nil
}

// The local CA vouches only for the loopback names of the token server's certificate:
// whoever reads ca.key cannot impersonate other sites to a developer who trusts ca.crt.
var (
	localDNSNames = []string{"localhost"}
	localIPs      = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
)

func localIPRanges() []*net.IPNet {
	r := make([]*net.IPNet, len(localIPs))
	for i, ip := range localIPs {
		bits := 8 * len(ip.To16())
		if v4 := ip.To4(); v4 != nil {
			ip, bits = v4, 32
		}
		r[i] = &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}
	}
	return r
}

// loadCA reads a CA that is valid for at least caRenewBefore more, limited to the local
// names, whose key nobody else can read; anything else is replaced.
func loadCA(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if fi, err := os.Stat(keyFile); err != nil {
		return nil, nil, err
	} else if fi.Mode().Perm()&0o077 != 0 {
		return nil, nil, fmt.Errorf("%s is readable by others (%v)", keyFile, fi.Mode().Perm())
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	ca := pair.Leaf
	if !ok || !ca.IsCA || time.Until(ca.NotAfter) < caRenewBefore ||
		!ca.PermittedDNSDomainsCritical || len(ca.PermittedDNSDomains) != len(localDNSNames) ||
		len(ca.PermittedIPRanges) != len(localIPs) {
		return nil, nil, errors.New("not a usable local CA")
	}
	return ca, key, nil
}

func newCA(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("local CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "oauth-client-operator local CA (make dev)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		// Name constraints: the CA can vouch for nothing but the local names.
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         localDNSNames,
		PermittedIPRanges:           localIPRanges(),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("local CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("local CA: %w", err)
	}
	if err := writeKey(keyFile, key); err != nil {
		return nil, nil, err
	}
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("local TLS: %w", err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

// writePEM writes one PEM block to path through a new file renamed over it, so the
// certificate watcher never reads half a file. The file is new (os.CreateTemp: never a
// leftover or a link someone planted) and has mode before anything is written.
func writePEM(path, blockType string, der []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("local TLS: %w", err)
	}
	tmp := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("local TLS: %w", err)
	}
	return nil
}

// HTTPClient returns an HTTP client that trusts the CA in caFile (none: the system's
// roots), with timeout.
func HTTPClient(caFile string, timeout time.Duration) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", caFile)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Timeout: timeout, Transport: t}, nil
}
