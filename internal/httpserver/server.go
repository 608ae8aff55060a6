// Package httpserver is the HTTP plumbing of the token server, apart from the OAuth
// protocol (internal/tokenserver): the listener and its connection cap, timeouts and
// size limits, TLS with certificates reloaded when their files change, and graceful
// shutdown. (Package clientaddr tells a request's client address.)
package httpserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"

	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
)

// CertCheckInterval is how often the certificate and key files are read again, besides
// the file-system notifications that usually announce a change at once. Polling sees
// every way a file can change (rewritten in place, renamed over, a Secret volume's
// symlink swap). A pair that does not load (unreadable, not PEM, a key that does not
// match, a half-written rewrite) is logged and the previous certificate keeps serving.
const CertCheckInterval = 10 * time.Second

// maxHeaderBytes bounds a request's headers.
const maxHeaderBytes = 16 << 10

// Server serves one handler as tokenServer configures it. It is a manager Runnable.
type Server struct {
	cfg     config.TokenServer
	handler http.Handler
	log     logr.Logger

	listening atomic.Bool
	addr      atomic.Value // net.Addr once listening
}

// New builds a Server of handler; nothing listens until Start.
func New(cfg config.TokenServer, handler http.Handler, log logr.Logger) *Server {
	return &Server{cfg: cfg, handler: handler, log: log}
}

// NeedLeaderElection is false: every replica serves.
func (s *Server) NeedLeaderElection() bool { return false }

// Addr is the address the server listens on, once it does.
func (s *Server) Addr() net.Addr {
	a, _ := s.addr.Load().(net.Addr)
	return a
}

// Listening reports whether the server accepts connections.
func (s *Server) Listening() bool { return s.listening.Load() }

// Start listens and serves until ctx ends, then shuts down gracefully: connections
// being answered finish (up to tokenServer.shutdownTimeout), idle ones are closed.
func (s *Server) Start(ctx context.Context) error {
	ts := s.cfg
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: ts.ReadHeaderTimeout.Duration,
		ReadTimeout:       ts.ReadTimeout.Duration,
		WriteTimeout:      ts.WriteTimeout.Duration,
		IdleTimeout:       ts.IdleTimeout.Duration,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	// HTTP/1.1 only: the token endpoint gains nothing from HTTP/2, and an HTTP/2
	// connection that always has a stream open is never idle, so it would hold a
	// connection slot past every timeout.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	if ts.TLS.Enabled() {
		certs, err := s.watchCertificate(ctx)
		if err != nil {
			return err
		}
		srv.TLSConfig = TLSConfig(certs.GetCertificate)
	}
	ln, err := net.Listen("tcp", ts.Address)
	if err != nil {
		return fmt.Errorf("token server: listen on %s: %w", ts.Address, err)
	}
	// At most MaxConnections connections, MaxConnectionsPerAddress of one address;
	// idle and slow ones make room for new clients.
	trusted := ts.TrustedProxyPrefixes()
	limited := newConnLimiter(ln, ts.MaxConnections, ts.MaxConnectionsPerAddress, func(a netip.Addr) bool {
		return slices.ContainsFunc(trusted, func(p netip.Prefix) bool { return p.Contains(a) })
	})
	srv.ConnState = limited.connState
	ln = limited
	s.addr.Store(ln.Addr())
	s.listening.Store(true)
	defer s.listening.Store(false)
	s.log.Info("token server listening", "address", ln.Addr().String(), "tls", ts.TLS.Enabled())

	errc := make(chan error, 1)
	go func() {
		if ts.TLS.Enabled() {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("token server: %w", err)
	case <-ctx.Done():
	}
	s.listening.Store(false)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ts.ShutdownTimeout.Duration)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("token server: shutdown: %w", err)
	}
	return nil
}

// TLSConfig is the token server's TLS configuration around a certificate source; the
// load benchmark's minimal endpoint uses it too, so both run the same TLS stack.
//
//   - TLS 1.3 whenever the client offers it (one round trip; TLS 1.2 still accepted for
//     older clients), with crypto/tls's default key exchanges.
//   - Session resumption by session tickets: a client that reconnects skips the
//     certificate and its signature. The ticket keys are made in memory by crypto/tls
//     and rotated by it (a new one a day, each accepted for a week); they are shared
//     with nothing, so each replica resumes only the sessions it issued, and a client
//     sent to another replica makes a full handshake there.
//   - The cost of a full handshake is mostly the certificate key's signature: an
//     ECDSA P-256 certificate signs about 30 times faster than an RSA 2048 one.
//   - HTTP/1.1 only (see Start).
func TLSConfig(getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: getCertificate,
		// Session tickets are on (SessionTicketsDisabled false) with automatic keys.
		NextProtos: []string{"http/1.1"},
	}
}

// watchCertificate loads the TLS pair (a server that cannot serve TLS must not start)
// and follows its files until ctx ends (controller-runtime's certwatcher).
func (s *Server) watchCertificate(ctx context.Context) (*certwatcher.CertWatcher, error) {
	tls := s.cfg.TLS
	certs, err := certwatcher.New(tls.CertFile, tls.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("token server: TLS certificate %s and key %s: %w", tls.CertFile, tls.KeyFile, err)
	}
	go func() {
		if err := certs.WithWatchInterval(CertCheckInterval).Start(ctx); err != nil {
			s.log.Error(err, "watch the TLS certificate files; serving the certificate loaded at start", "certFile", tls.CertFile)
		}
	}()
	return certs, nil
}
