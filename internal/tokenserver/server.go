// Package tokenserver serves the OAuth 2.0 client-credentials grant (POST
// /oauth2-token), the JWKS and the authorization-server metadata. It reads clients,
// their Secrets, APIs and namespaces from the manager's cache only, so it keeps serving
// while the API server is briefly unavailable, and it runs in every replica.
package tokenserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// Paths served.
const (
	TokenPath    = config.TokenPath
	JWKSPath     = "/.well-known/jwks.json"
	MetadataPath = "/.well-known/oauth-authorization-server"
	OIDCPath     = "/.well-known/openid-configuration"
)

// Server is the token server. Build it with New; it is a manager Runnable.
type Server struct {
	cfg      *config.Config
	cache    cache.Informers
	registry *registry
	keys     *signing.Keyring
	// failures limits failed authentication per client address; nil when disabled.
	failures *failureLimiter
	// trustedProxies are the peers whose forwarding headers name the client address
	// (clientAddr).
	trustedProxies []netip.Prefix
	// requests enforces clients' own rate limits (spec.rateLimit).
	requests *requestLimiter
	// audit writes one record per token issued and per request refused.
	audit *auditor
	// authenticators verify credentials, one per authentication method.
	authenticators map[oauthv1alpha1.AuthenticationMethod]authenticator
	log            logr.Logger
	now            func() time.Time

	handler   http.Handler
	docs      atomic.Pointer[documents]
	listening atomic.Bool
	addr      atomic.Value // net.Addr once listening
}

// Options configure a Server.
type Options struct {
	// Config is the operator configuration.
	Config *config.Config
	// Informers deliver OAuthClients, OAuthAPIs, Namespaces and Secrets; the manager's
	// cache (Secrets selected by the operator's label).
	Informers cache.Informers
	// Keys holds the signing keys.
	Keys *signing.Keyring
	// Log receives request failures worth an operator's attention (never secrets).
	Log logr.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Metrics receives the server's metrics; none are registered when nil.
	Metrics prometheus.Registerer
	// ServiceAccountIssuer verifies the ServiceAccount tokens of ServiceAccountToken
	// clients; such clients cannot authenticate when nil.
	ServiceAccountIssuer ServiceAccountIssuer
	// Audit receives the audit records, JSON lines (logger name AuditLoggerName); none
	// are written when nil.
	Audit io.Writer
	// Replica names this replica in audit records (the pod name).
	Replica string
}

// New builds a Server.
func New(o Options) *Server {
	s := &Server{cfg: o.Config, cache: o.Informers, registry: newRegistry(), keys: o.Keys, log: o.Log, now: o.Now}
	if s.now == nil {
		s.now = time.Now
	}
	s.audit = newAuditor(o.Config.Audit, o.Audit, o.Replica)
	s.authenticators = map[oauthv1alpha1.AuthenticationMethod]authenticator{
		oauthv1alpha1.AuthClientSecret: secretAuthenticator{},
		oauthv1alpha1.AuthServiceAccountToken: &serviceAccountAuthenticator{
			issuer:      o.ServiceAccountIssuer,
			currentUID:  s.registry.serviceAccountUID,
			audiences:   []string{o.Config.Issuer, o.Config.TokenURL()},
			maxLifetime: o.Config.WorkloadIdentity.MaxTokenLifetime.Duration,
		},
		oauthv1alpha1.AuthPrivateKeyJWT: &privateKeyJWTAuthenticator{
			audiences:   []string{o.Config.Issuer, o.Config.TokenURL()},
			maxLifetime: o.Config.PrivateKeyJWT.MaxAssertionLifetime.Duration,
			replay:      newReplayCache(o.Config.PrivateKeyJWT.ReplayCacheSize),
		},
	}
	s.trustedProxies = o.Config.TokenServer.TrustedProxyPrefixes()
	s.requests = newRequestLimiter(max(o.Config.RateLimit.MaxTrackedKeys, 1000))
	if rl := o.Config.RateLimit; rl.FailedAuthPerMinute > 0 {
		s.failures = newFailureLimiter(rl.FailedAuthPerMinute, rl.FailedAuthBurst, rl.MaxTrackedKeys)
	}
	if o.Metrics != nil {
		registerMetrics(o.Metrics, s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(TokenPath, s.serveToken)
	mux.HandleFunc(JWKSPath, s.serveJWKS)
	mux.HandleFunc(MetadataPath, s.serveMetadata)
	mux.HandleFunc(OIDCPath, s.serveMetadata)
	s.handler = mux
	return s
}

// Handler returns the HTTP handler of every endpoint.
func (s *Server) Handler() http.Handler { return s.handler }

// NeedLeaderElection is false: every replica serves tokens.
func (s *Server) NeedLeaderElection() bool { return false }

// Addr is the address the server listens on, once it does.
func (s *Server) Addr() net.Addr {
	a, _ := s.addr.Load().(net.Addr)
	return a
}

// Ready reports an error until the server listens, knows every client and has a
// signing key; it is the manager's readiness check.
func (s *Server) Ready(*http.Request) error {
	if s.keys.Load() == nil {
		return errors.New("no signing key loaded yet")
	}
	if !s.registry.synced() {
		return errors.New("clients not indexed yet")
	}
	if !s.listening.Load() {
		return errors.New("token server not listening yet")
	}
	return nil
}

// Watch registers the server's handlers on the informers; Start calls it. Requests
// before the informers' first lists are indexed find no client.
func (s *Server) Watch(ctx context.Context) error { return s.registry.watch(ctx, s.cache) }

// Start indexes clients, serves until ctx ends, then shuts down gracefully.
func (s *Server) Start(ctx context.Context) error {
	if err := s.Watch(ctx); err != nil {
		return fmt.Errorf("token server: %w", err)
	}
	ts := s.cfg.TokenServer
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: ts.ReadHeaderTimeout.Duration,
		ReadTimeout:       ts.ReadTimeout.Duration,
		WriteTimeout:      ts.WriteTimeout.Duration,
		IdleTimeout:       ts.IdleTimeout.Duration,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          nil,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	// HTTP/1.1 only: the token endpoint gains nothing from HTTP/2, and an HTTP/2
	// connection that always has a stream open is never idle, so it would hold a
	// connection slot past every timeout.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	if ts.TLS.Enabled() {
		// The certificate and key are read again when their files change (certreload.go).
		certs, err := newCertReloader(ts.TLS.CertFile, ts.TLS.KeyFile, certRecheckInterval, s.log)
		if err != nil {
			return fmt.Errorf("token server: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
		go certs.Run(ctx)
	}
	ln, err := net.Listen("tcp", ts.Address)
	if err != nil {
		return fmt.Errorf("token server: listen on %s: %w", ts.Address, err)
	}
	// At most MaxConnections connections; idle ones make room for new clients.
	limited := newConnLimiter(ln, ts.MaxConnections)
	srv.ConnState = limited.connState
	ln = limited
	s.addr.Store(ln.Addr())
	s.listening.Store(true)
	s.log.Info("token server listening", "address", ln.Addr().String(), "tls", ts.TLS.Enabled(), "issuer", s.cfg.Issuer)

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
		s.listening.Store(false)
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
