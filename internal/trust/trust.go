// Package trust turns OAuthTrustedIssuers into what verifies their tokens: the issuer's
// keys in a pkg/verifier KeySet (the one JWKS cache of the project), its compiled
// claimValidationRules (CEL), its audiences, lifetime cap and namespace admission.
//
// A Registry holds one Issuer per OAuthTrustedIssuer of the process, shared by the
// token server (which verifies tokens with it) and the OAuthTrustedIssuer controller
// (which reports its state): each issuer's keys are fetched once per process. An
// Issuer is rebuilt when its object's generation changes; its keys are refreshed in
// the background while it is in use.
//
// Key fetches are bounded: 10 s each, 1 MiB a document, redirects only within the
// origin asked, at most one fetch per RefreshInterval whatever the tokens' key ids (a
// request with an unknown kid waits at most for the one fetch allowed then), https only
// (http for loopback hosts, and no connection to a local address for an issuer not on
// loopback), also for a jwks_uri a discovery document names. Cached keys stay in use while
// the issuer does not answer.
package trust

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/golang-jwt/jwt/v5"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/event"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/pkg/verifier"
)

// Defaults of a Registry.
const (
	// DefaultRefreshInterval is the least time between two fetches of an issuer's keys
	// caused by tokens naming a key id the cache lacks, or after a failed fetch.
	DefaultRefreshInterval = 10 * time.Second
	// DefaultMaxAge is the longest time fetched keys are used before they are fetched
	// again (shorter when the JWKS's Cache-Control max-age says so).
	DefaultMaxAge = 5 * time.Minute
	// fetchTimeout bounds one fetch.
	fetchTimeout = 10 * time.Second
)

// Options configure a Registry.
type Options struct {
	// RefreshInterval: see DefaultRefreshInterval; 0 means the default.
	RefreshInterval time.Duration
	// MaxAge: see DefaultMaxAge; 0 means the default.
	MaxAge time.Duration
	// Clock tells the key sets the time; the real one when nil.
	Clock clock.PassiveClock
	// Transport is the base of every issuer's HTTP client (its TLS configuration is
	// replaced for an issuer with a certificateAuthority); a clone of
	// http.DefaultTransport when nil.
	Transport http.RoundTripper
	// Log receives failed key fetches.
	Log logr.Logger
}

// Registry holds the Issuer of every OAuthTrustedIssuer of the process. It is safe for
// concurrent use; Close (or the end of Start's context) stops the background refresh
// of every issuer's keys.
type Registry struct {
	opts Options
	// checkDials: the transport is the registry's own (no Options.Transport), whose
	// dialer refuses local addresses for issuers not on loopback.
	checkDials bool

	mu      sync.Mutex
	issuers map[string]*Issuer
	ctx     context.Context
	cancel  context.CancelFunc
	// changes receives an issuer (by name) after each fetch of its keys and each
	// rebuild; sends never block (a full channel drops the event).
	changes chan event.GenericEvent
}

// NewRegistry returns an empty Registry.
func NewRegistry(o Options) *Registry {
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	checkDials := o.Transport == nil
	if o.Transport == nil {
		o.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Registry{opts: o, checkDials: checkDials, issuers: map[string]*Issuer{}, ctx: ctx, cancel: cancel, changes: make(chan event.GenericEvent, 1024)}
}

// Changes receives an event naming an OAuthTrustedIssuer whose keys were fetched
// (successfully or not) or which was rebuilt: what its status reports changed. A
// controller watches it as a channel source.
func (r *Registry) Changes() <-chan event.GenericEvent { return r.changes }

func (r *Registry) changed(name string) {
	obj := &oauthv1alpha1.OAuthTrustedIssuer{}
	obj.SetName(name)
	select {
	case r.changes <- event.GenericEvent{Object: obj}:
	default:
	}
}

// NeedLeaderElection is false: every replica verifies tokens.
func (r *Registry) NeedLeaderElection() bool { return false }

// Start waits for ctx to end, then closes the registry (a manager runnable).
func (r *Registry) Start(ctx context.Context) error {
	<-ctx.Done()
	r.Close()
	return nil
}

// Close stops the background refresh of every issuer's keys. Issuers keep verifying
// with the keys they hold.
func (r *Registry) Close() { r.cancel() }

// Ensure returns the Issuer of obj: the one held when it was built from this object
// (same UID) at this generation or a later one, else a new one, which replaces it. So
// the token server and the controller, each with its own copy of the object, share one
// Issuer, and an older copy never replaces a newer Issuer.
func (r *Registry) Ensure(obj *oauthv1alpha1.OAuthTrustedIssuer) *Issuer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.issuers[obj.Name]; cur != nil && cur.UID == obj.UID && cur.Generation >= obj.Generation {
		return cur
	}
	i := r.build(obj)
	if old := r.issuers[obj.Name]; old != nil {
		old.stop()
	}
	r.issuers[obj.Name] = i
	r.changed(obj.Name)
	return i
}

// Get returns the Issuer named name; nil when there is none.
func (r *Registry) Get(name string) *Issuer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.issuers[name]
}

// Remove forgets the issuer name when it was built from the object uid (any, when uid
// is ""), and stops refreshing its keys.
func (r *Registry) Remove(name string, uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.issuers[name]; cur != nil && (uid == "" || cur.UID == uid) {
		cur.stop()
		delete(r.issuers, name)
	}
}

// Len is the number of issuers held.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.issuers)
}

// Issuer is what verifies the tokens of one OAuthTrustedIssuer. Immutable once built,
// but for the keys its KeySet fetches.
type Issuer struct {
	// Name, UID and Generation are those of the object it was built from.
	Name       string
	UID        types.UID
	Generation int64
	// URL is the `iss` of its tokens.
	URL string
	// Audiences are the accepted `aud` values; nil: the token server's defaults.
	Audiences []string
	// MaxLifetime is the longest exp − iat accepted.
	MaxLifetime time.Duration
	// RequiredClientClaims are the claims every client rule must pin.
	RequiredClientClaims []string
	// Selector selects the namespaces whose clients may trust it
	// (AllowedNamespaces.NamespaceSelector).
	Selector labels.Selector

	rules []rule
	keys  *verifier.KeySet
	// problem says why the issuer verifies no token (a rule or a key source that
	// cannot be used); its reason is an oauthv1alpha1.Reason* of the Ready condition.
	problem *Problem
	cancel  context.CancelFunc
	// httpClient fetches the keys; nil for static keys.
	httpClient *http.Client
}

// Problem is why an issuer verifies no token.
type Problem struct {
	// Reason is ReasonInvalidRule or ReasonInvalidKeySource.
	Reason  string
	Message string
}

func (p *Problem) Error() string { return p.Message }

// Problem returns why the issuer verifies no token; nil when it is usable.
func (i *Issuer) Problem() *Problem { return i.problem }

// Keyfunc returns the key that verifies a token (for golang-jwt's parser): the cached
// key its kid names (fetching the set again when the kid is unknown and the last fetch
// is RefreshInterval old), or every key of its algorithm when it has none. The error
// wraps verifier.ErrKeysUnavailable when no key could be obtained.
func (i *Issuer) Keyfunc(t *jwt.Token) (any, error) {
	if i.keys == nil {
		return nil, i.problem
	}
	return i.keys.Keyfunc(t)
}

// Keys reports the state of the cached keys; zero for an issuer with a problem.
func (i *Issuer) Keys() verifier.KeySetStatus {
	if i.keys == nil {
		return verifier.KeySetStatus{}
	}
	return i.keys.Status()
}

// CheckClaims evaluates the issuer's claimValidationRules on a token's claims, for the
// client namespace/name: nil when all hold, else an error wrapping ErrRuleFailed that
// names the first rule that does not.
func (i *Issuer) CheckClaims(claims map[string]any, namespace, name string) error {
	return checkRules(i.rules, claims, namespace, name)
}

// stop ends the background refresh of the keys and closes idle connections to the
// issuer: an issuer replaced or deleted holds nothing.
func (i *Issuer) stop() {
	if i.cancel != nil {
		i.cancel()
	}
	if i.httpClient != nil {
		i.httpClient.CloseIdleConnections()
	}
}

// build makes the Issuer of obj; one whose rules or key source cannot be used has a
// Problem and no keys. A usable one refreshes its keys in the background until
// replaced, removed or the registry is closed.
func (r *Registry) build(obj *oauthv1alpha1.OAuthTrustedIssuer) *Issuer {
	spec := &obj.Spec
	i := &Issuer{
		Name: obj.Name, UID: obj.UID, Generation: obj.Generation, URL: spec.Issuer,
		Audiences: slices.Clone(spec.Audiences), MaxLifetime: obj.EffectiveMaxTokenLifetime(),
		RequiredClientClaims: slices.Clone(spec.RequiredClientClaims),
	}
	var err error
	// An invalid selector admits nothing.
	i.Selector, _ = spec.AllowedNamespaces.NamespaceSelector()
	if i.rules, err = compileRules(spec.ClaimValidationRules); err != nil {
		i.problem = &Problem{Reason: oauthv1alpha1.ReasonInvalidRule, Message: err.Error()}
		return i
	}
	if i.keys, i.httpClient, err = r.keySet(obj); err != nil {
		i.problem = &Problem{Reason: oauthv1alpha1.ReasonInvalidKeySource, Message: err.Error()}
		return i
	}
	ctx, cancel := context.WithCancel(r.ctx)
	i.cancel = cancel
	go func() { _ = i.keys.Run(ctx) }()
	return i
}

// keySet makes the KeySet of an issuer's keys, checking every URL by
// oauthv1alpha1.CheckFetchURL, and the HTTP client it fetches with (nil for static
// keys).
func (r *Registry) keySet(obj *oauthv1alpha1.OAuthTrustedIssuer) (*verifier.KeySet, *http.Client, error) {
	spec := &obj.Spec
	if err := oauthv1alpha1.CheckFetchURL(spec.Issuer); err != nil {
		return nil, nil, fmt.Errorf("issuer: %w", err)
	}
	opts := verifier.KeySetOptions{
		RefreshInterval: r.opts.RefreshInterval,
		MaxAge:          r.opts.MaxAge,
		Clock:           r.opts.Clock,
		OnFetch:         r.onFetch(obj.Name),
	}
	switch k := spec.Keys; {
	case k != nil && k.JWKS != "":
		opts.JWKS = []byte(k.JWKS)
	case k != nil && k.JWKSURI != "":
		if err := oauthv1alpha1.CheckFetchURL(k.JWKSURI); err != nil {
			return nil, nil, fmt.Errorf("keys.jwksURI: %w", err)
		}
		opts.JWKSURL = k.JWKSURI
	default:
		opts.DiscoveryURL, opts.Issuer = obj.DiscoveryURL(), spec.Issuer
		if err := oauthv1alpha1.CheckFetchURL(opts.DiscoveryURL); err != nil {
			return nil, nil, fmt.Errorf("keys.discoveryURL: %w", err)
		}
	}
	if opts.JWKS == nil {
		configured := opts.JWKSURL
		if configured == "" {
			configured = opts.DiscoveryURL
		}
		hc, err := r.httpClient(spec.CertificateAuthority, isLoopbackURL(configured))
		if err != nil {
			return nil, nil, err
		}
		opts.HTTPClient = hc
	}
	ks, err := verifier.NewKeySet(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: %w", err)
	}
	return ks, opts.HTTPClient, nil
}

// httpClient is the client of one issuer's fetches: bounded in time, trusting ca
// (PEM) instead of the system's authorities when set, and refusing any URL that
// oauthv1alpha1.CheckFetchURL refuses (a jwks_uri of plain http to another host, say),
// and any loopback URL unless the URL the spec names is one itself (loopback): an
// issuer on the internet cannot make the operator read its own pod's endpoints
// through the jwks_uri of its discovery document.
func (r *Registry) httpClient(ca string, loopback bool) (*http.Client, error) {
	base := r.opts.Transport
	if t, ok := base.(*http.Transport); ok && !loopback && r.checkDials {
		// What is refused is the address dialled, not the host's spelling
		// (0.0.0.0, LOCALHOST, [::ffff:127.0.0.1], a name that resolves to loopback).
		t = t.Clone()
		t.DialContext = (&net.Dialer{Timeout: fetchTimeout, KeepAlive: 30 * time.Second, Control: refuseLocal}).DialContext
		base = t
	}
	if ca != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(ca)) {
			return nil, errors.New("certificateAuthority holds no PEM certificate")
		}
		t, ok := base.(*http.Transport)
		if !ok {
			return nil, errors.New("certificateAuthority: the registry's transport cannot take a certificate authority")
		}
		t = t.Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		base = t
	}
	return &http.Client{Timeout: fetchTimeout, Transport: guard{next: base, loopback: loopback}}, nil
}

// refuseLocal is the Control of the dialer of an issuer that is not on loopback: it
// refuses to connect to a loopback, unspecified or link-local address (the operator's
// own endpoints, a cloud's metadata service), whatever name led there.
func refuseLocal(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused to connect to %s: not an IP address and port", address)
	}
	if a := ap.Addr().Unmap(); a.IsLoopback() || a.IsUnspecified() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() {
		return fmt.Errorf("refused to connect to %s: a local address, reached from an issuer that is not on loopback", address)
	}
	return nil
}

// guard refuses a request to a URL that oauthv1alpha1.CheckFetchURL refuses, and to a
// loopback host unless loopback is set.
type guard struct {
	next     http.RoundTripper
	loopback bool
}

func (g guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := oauthv1alpha1.CheckFetchURL(req.URL.String()); err != nil {
		return nil, fmt.Errorf("refused to fetch: %w", err)
	}
	if !g.loopback && oauthv1alpha1.IsLoopbackHost(req.URL.Hostname()) {
		return nil, fmt.Errorf("refused to fetch %s: a loopback address, named by an issuer that is not on loopback", req.URL.Redacted())
	}
	return g.next.RoundTrip(req)
}

// CloseIdleConnections closes the idle connections of the transport guarded.
func (g guard) CloseIdleConnections() {
	if c, ok := g.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// isLoopbackURL reports whether raw names a loopback host.
func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && oauthv1alpha1.IsLoopbackHost(u.Hostname())
}

// onFetch logs a failed fetch and tells Changes.
func (r *Registry) onFetch(name string) func(error) {
	return func(err error) {
		if err != nil {
			msg := err.Error()
			if len(msg) > 1<<10 { // an issuer's URLs are in it, of any length
				msg = msg[:1<<10] + "…"
			}
			r.opts.Log.Info("fetch the keys of a trusted issuer failed; cached keys, if any, stay in use", "oauthtrustedissuer", name, "error", msg)
		}
		r.changed(name)
	}
}
