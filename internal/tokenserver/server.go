package tokenserver

import (
	"io"
	"net/http"
	"net/netip"
	"sync/atomic"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/clientaddr"
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

// Server answers the token endpoint, the JWKS and the metadata documents: Handler is
// its http.Handler. Build it with New.
type Server struct {
	cfg   *config.Config
	state State
	keys  *signing.Keyring
	// clientAddr is the address a request comes from, as the failed-authentication
	// limit counts it and audit records name it: the peer, or behind a trusted proxy
	// the address it forwards (tokenServer.trustedProxies).
	clientAddr func(*http.Request) netip.Addr
	// failures limits failed authentication per client address; nil when disabled.
	failures *failureLimiter
	// requests enforces clients' own rate limits (spec.rateLimit).
	requests *requestLimiter
	// audit writes one record per token issued and per request refused.
	audit *auditor
	// authenticators verify credentials, one per authentication method.
	authenticators map[oauthv1alpha1.AuthenticationMethod]authenticator
	// dpopReplay remembers the ids of the DPoP proofs accepted (dpop.go).
	dpopReplay *replayCache
	// tokenRules verifies tokens against clients' token rules (ServiceAccountToken and
	// FederatedToken clients), and finds the client of a grant without client_id.
	tokenRules *ruleVerifier
	metrics    *metrics
	log        logr.Logger
	clock      clock.PassiveClock

	// sign signs an access token's claims: (*signing.Signer).Sign, which tests replace
	// to see a signing failure.
	sign func(*signing.Signer, []byte) (string, error)

	handler http.Handler
	docs    atomic.Pointer[documents]
}

// Options configure a Server.
type Options struct {
	// Config is the operator configuration.
	Config *config.Config
	// State is what the server knows of clients, APIs, namespaces and ServiceAccounts.
	State State
	// Keys holds the signing keys.
	Keys *signing.Keyring
	// Log receives request failures worth an operator's attention (never secrets).
	Log logr.Logger
	// Clock is the clock of token lifetimes, rotations and limits; the real one when
	// nil.
	Clock clock.PassiveClock
	// ServiceAccountIssuer verifies the ServiceAccount tokens of ServiceAccountToken
	// clients; such clients cannot authenticate when nil.
	ServiceAccountIssuer ServiceAccountIssuer
	// BoundTokenReviewer confirms ServiceAccount tokens bound to a pod (a Secret, a
	// node) with the API server; none are confirmed when nil.
	BoundTokenReviewer BoundTokenReviewer
	// Audit receives the audit records, JSON lines (logger name AuditLoggerName); none
	// are written when nil.
	Audit io.Writer
	// Replica names this replica in audit records (the pod name).
	Replica string
}

// New builds a Server.
func New(o Options) *Server {
	s := &Server{cfg: o.Config, state: o.State, keys: o.Keys, log: o.Log, clock: o.Clock, sign: (*signing.Signer).Sign}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	s.clientAddr = clientaddr.Resolver{TrustedProxies: o.Config.TokenServer.TrustedProxyPrefixes()}.Of
	s.audit = newAuditor(o.Config.Audit, o.Audit, o.Replica)
	audiences := []string{o.Config.Issuer, o.Config.TokenURL()}
	local := &serviceAccountAuthenticator{
		issuer:      o.ServiceAccountIssuer,
		reviewer:    o.BoundTokenReviewer,
		state:       o.State,
		audiences:   audiences,
		maxLifetime: o.Config.WorkloadIdentity.MaxTokenLifetime.Duration,
	}
	s.tokenRules = &ruleVerifier{state: o.State, audiences: audiences, local: local}
	local.rules = s.tokenRules
	s.authenticators = map[oauthv1alpha1.AuthenticationMethod]authenticator{
		oauthv1alpha1.AuthClientSecret:        secretAuthenticator{},
		oauthv1alpha1.AuthServiceAccountToken: local,
		oauthv1alpha1.AuthFederatedToken:      &federatedAuthenticator{rules: s.tokenRules},
		oauthv1alpha1.AuthPrivateKeyJWT: &privateKeyJWTAuthenticator{
			audiences:   audiences,
			maxLifetime: o.Config.PrivateKeyJWT.MaxAssertionLifetime.Duration,
			replay:      newReplayCache(o.Config.PrivateKeyJWT.ReplayCacheSize),
		},
	}
	s.dpopReplay = newReplayCache(o.Config.DPoP.ReplayCacheSize)
	s.requests = newRequestLimiter(max(o.Config.RateLimit.MaxTrackedKeys, 1000))
	if rl := o.Config.RateLimit; rl.FailedAuthPerMinute > 0 {
		s.failures = newFailureLimiter(rl.FailedAuthPerMinute, rl.FailedAuthBurst, rl.MaxTrackedKeys)
	}
	s.metrics = newMetrics(s)
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
