package tokenserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// certRecheckInterval is how often the certificate and key files are read again.
// Reading two small files is cheap, and polling sees every way a file can change
// (rewritten in place, renamed over, a Kubernetes Secret volume's symlink swap), where
// file-system notifications need care for each.
const certRecheckInterval = time.Second

// certReloader serves the TLS certificate of two PEM files and follows their changes:
// every interval it reads both files and, when their content changed, parses the
// pair; a good pair replaces the served one (connections already open keep theirs), a
// bad pair (unreadable, not PEM, key not matching the certificate, a half-written
// rewrite) is logged once with the reason and the previous certificate keeps serving.
// Nothing is logged of the key.
type certReloader struct {
	certFile, keyFile string
	log               logr.Logger
	interval          time.Duration

	current atomic.Pointer[tls.Certificate]
	// seen is the digest of the file contents last looked at (good or bad), so an
	// unchanged bad pair is logged once, not every interval.
	seen [sha256.Size]byte
}

// newCertReloader loads the pair; it fails when the files do not hold a valid pair,
// as a server that cannot serve TLS must not start.
func newCertReloader(certFile, keyFile string, interval time.Duration, log logr.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log, interval: interval}
	certPEM, keyPEM, err := r.read()
	if err != nil {
		return nil, err
	}
	cert, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	r.seen = digest(certPEM, keyPEM)
	r.current.Store(cert)
	return r, nil
}

// GetCertificate is tls.Config.GetCertificate: the pair in force.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.current.Load(), nil
}

// Run rechecks the files every interval until ctx ends.
func (r *certReloader) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.recheck()
		}
	}
}

// recheck reads the files and puts a changed, valid pair in force.
func (r *certReloader) recheck() {
	certPEM, keyPEM, err := r.read()
	if err != nil {
		// A missing file is what a rewrite looks like for a moment; say it once.
		if r.seen != ([sha256.Size]byte{}) {
			r.log.Error(err, "cannot read the TLS certificate or key; still serving the previous certificate",
				"certFile", r.certFile, "keyFile", r.keyFile, "serving", describe(r.current.Load()))
			r.seen = [sha256.Size]byte{}
		}
		return
	}
	d := digest(certPEM, keyPEM)
	if d == r.seen {
		return
	}
	r.seen = d
	cert, err := parsePair(certPEM, keyPEM)
	if err != nil {
		r.log.Error(err, "new TLS certificate or key is not valid; still serving the previous certificate",
			"certFile", r.certFile, "keyFile", r.keyFile, "serving", describe(r.current.Load()))
		return
	}
	old := r.current.Swap(cert)
	r.log.Info("reloaded the TLS certificate", "certFile", r.certFile, "serving", describe(cert), "previous", describe(old))
}

func (r *certReloader) read() (certPEM, keyPEM []byte, err error) {
	if certPEM, err = os.ReadFile(r.certFile); err != nil {
		return nil, nil, fmt.Errorf("read TLS certificate: %w", err)
	}
	if keyPEM, err = os.ReadFile(r.keyFile); err != nil {
		return nil, nil, fmt.Errorf("read TLS key: %w", err)
	}
	return certPEM, keyPEM, nil
}

// parsePair parses and checks a certificate chain and its key. Its errors are
// crypto/tls's, which never quote the input.
func parsePair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse TLS certificate: %w", err)
		}
	}
	return &cert, nil
}

func digest(certPEM, keyPEM []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(certPEM)
	h.Write([]byte{0})
	h.Write(keyPEM)
	var d [sha256.Size]byte
	copy(d[:], h.Sum(nil))
	return d
}

// describe names a certificate for logs: subject, serial and expiry.
func describe(c *tls.Certificate) string {
	if c == nil || c.Leaf == nil {
		return ""
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "subject=%q serial=%s notAfter=%s", c.Leaf.Subject.String(), c.Leaf.SerialNumber.Text(16), c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return b.String()
}
