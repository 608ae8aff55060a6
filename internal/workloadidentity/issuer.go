// Package workloadidentity knows the cluster's ServiceAccount token issuer: its `iss`
// value and the public keys that verify projected ServiceAccount tokens. Both are read
// through the API server with the operator's own credentials
// (/.well-known/openid-configuration and /openid/v1/jwks): the discovery document's
// jwks_uri may name an address the operator cannot reach.
//
// Keys are cached (github.com/MicahParks/jwkset storage behind
// github.com/MicahParks/keyfunc/v3), refreshed periodically, refetched at a bounded
// rate when a token names an unknown key id, and kept when the API server does not
// answer, so ServiceAccount tokens keep verifying through an outage.
package workloadidentity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/go-logr/logr"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
	"k8s.io/client-go/rest"
)

// Paths the API server serves its ServiceAccount issuer discovery at.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/openid/v1/jwks"
)

// Defaults of an Issuer.
const (
	// DefaultRefreshInterval is how often the keys are read again.
	DefaultRefreshInterval = 5 * time.Minute
	// DefaultUnknownKeyInterval is the least time between two reads caused by tokens
	// naming a key id the cache does not hold: a flood of made-up key ids costs the API
	// server one request per interval.
	DefaultUnknownKeyInterval = 10 * time.Second
	// maxDocumentBytes bounds what is read of the discovery document and the JWKS.
	maxDocumentBytes = 1 << 20
	// requestTimeout bounds one read from the API server.
	requestTimeout = 10 * time.Second
)

// ErrNotReady is returned while the issuer has not been discovered yet.
var ErrNotReady = errors.New("ServiceAccount issuer not discovered yet")

// Issuer is the cluster's ServiceAccount token issuer. Build it with New and run it
// (Start) as a manager runnable; it is safe for concurrent use.
type Issuer struct {
	httpClient *http.Client
	baseURL    string
	override   string
	log        logr.Logger

	refreshInterval    time.Duration
	unknownKeyInterval time.Duration

	state atomic.Pointer[state]
	ready chan struct{}
}

type state struct {
	issuer  string
	keyfunc jwt.Keyfunc
}

// Options configure an Issuer.
type Options struct {
	// Config reaches the API server, with the operator's credentials.
	Config *rest.Config
	// Issuer, when set, is used instead of the discovered issuer (clusters whose
	// ServiceAccount tokens name an external issuer).
	Issuer string
	// Log receives discovery and refresh failures.
	Log logr.Logger
	// RefreshInterval and UnknownKeyInterval: see the defaults.
	RefreshInterval, UnknownKeyInterval time.Duration
}

// The issuer's discovery document and keys, read with the operator's credentials.
// +kubebuilder:rbac:urls=/.well-known/openid-configuration;/openid/v1/jwks,verbs=get

// New builds an Issuer; nothing is read until Start.
func New(o Options) (*Issuer, error) {
	hc, err := rest.HTTPClientFor(o.Config)
	if err != nil {
		return nil, fmt.Errorf("ServiceAccount issuer: HTTP client for the API server: %w", err)
	}
	base, err := serverURL(o.Config)
	if err != nil {
		return nil, err
	}
	limited := *hc
	next := hc.Transport
	if next == nil { // a plain-HTTP config without credentials
		next = http.DefaultTransport
	}
	limited.Transport = limitedBodies{next}
	limited.Timeout = requestTimeout
	i := &Issuer{
		httpClient: &limited, baseURL: base, override: o.Issuer, log: o.Log,
		refreshInterval: o.RefreshInterval, unknownKeyInterval: o.UnknownKeyInterval,
		ready: make(chan struct{}),
	}
	if i.refreshInterval <= 0 {
		i.refreshInterval = DefaultRefreshInterval
	}
	if i.unknownKeyInterval <= 0 {
		i.unknownKeyInterval = DefaultUnknownKeyInterval
	}
	return i, nil
}

// serverURL is the API server's base URL, with any path prefix of the config.
func serverURL(cfg *rest.Config) (string, error) {
	u, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return "", fmt.Errorf("ServiceAccount issuer: API server URL: %w", err)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// NeedLeaderElection is false: every replica verifies ServiceAccount tokens.
func (i *Issuer) NeedLeaderElection() bool { return false }

// Start discovers the issuer, retrying with backoff until the API server answers, then
// keeps the keys fresh until ctx ends.
func (i *Issuer) Start(ctx context.Context) error {
	delay := time.Second
	for {
		err := i.discover(ctx)
		if err == nil {
			close(i.ready)
			<-ctx.Done()
			return nil
		}
		i.log.Error(err, "discover the ServiceAccount token issuer; retrying", "retryIn", delay.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
}

// Ready is closed once the issuer is discovered and its keys were read once.
func (i *Issuer) Ready() <-chan struct{} { return i.ready }

func (i *Issuer) discover(parent context.Context) (err error) {
	// The key storage polls until its context ends: a failed attempt stops its own.
	ctx, cancel := context.WithCancel(parent)
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	issuer := i.override
	if issuer == "" {
		var doc struct {
			Issuer string `json:"issuer"`
		}
		if err := i.getJSON(ctx, DiscoveryPath, &doc); err != nil {
			return err
		}
		if doc.Issuer == "" {
			return fmt.Errorf("%s of the API server names no issuer", DiscoveryPath)
		}
		issuer = doc.Issuer
	}
	stored, err := jwkset.NewStorageFromHTTP(i.baseURL+JWKSPath, jwkset.HTTPClientStorageOptions{
		Client:          i.httpClient,
		Ctx:             ctx,
		HTTPTimeout:     requestTimeout,
		RefreshInterval: i.refreshInterval,
		RefreshErrorHandler: func(_ context.Context, err error) {
			i.log.Error(err, "refresh the ServiceAccount issuer keys; the cached keys stay in use")
		},
	})
	if err != nil {
		return fmt.Errorf("read the ServiceAccount issuer keys from %s: %w", JWKSPath, err)
	}
	refreshing, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs: map[string]jwkset.Storage{i.baseURL + JWKSPath: stored},
		// The gate below admits one refresh per interval; the library's own limiter
		// would make requests wait for their turn.
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
		RateLimitWaitMax:  requestTimeout,
	})
	if err != nil {
		return fmt.Errorf("ServiceAccount issuer keys: %w", err)
	}
	kf, err := keyfunc.New(keyfunc.Options{
		Ctx:     ctx,
		Storage: gatedRefresh{Storage: refreshing, cached: stored, allow: rate.NewLimiter(rate.Every(i.unknownKeyInterval), 1)},
	})
	if err != nil {
		return fmt.Errorf("ServiceAccount issuer keys: %w", err)
	}
	i.state.Store(&state{issuer: issuer, keyfunc: kf.Keyfunc})
	i.log.Info("ServiceAccount token issuer discovered", "issuer", issuer, "overridden", i.override != "")
	return nil
}

func (i *Issuer) getJSON(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, i.baseURL+path, nil)
	if err != nil {
		return fmt.Errorf("get %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := i.httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: the API server answered %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("get %s: %w", path, err)
	}
	return nil
}

// Issuer is the `iss` of the cluster's ServiceAccount tokens; "" until discovered.
func (i *Issuer) Issuer() string {
	if s := i.state.Load(); s != nil {
		return s.issuer
	}
	return ""
}

// Keyfunc returns the key that verifies a ServiceAccount token (for golang-jwt's
// parser), by its `kid`, or every key of the token's algorithm when it has none.
func (i *Issuer) Keyfunc(token *jwt.Token) (any, error) {
	s := i.state.Load()
	if s == nil {
		return nil, ErrNotReady
	}
	return s.keyfunc(token)
}

// gatedRefresh reads keys from the cache, and lets a read of an unknown key id refresh
// the cache only when its limiter allows: callers never wait for a refresh slot, and
// made-up key ids cannot make the operator hammer the API server.
type gatedRefresh struct {
	jwkset.Storage                // refreshes on an unknown key id
	cached         jwkset.Storage // never refreshes on its own
	allow          *rate.Limiter
}

func (g gatedRefresh) KeyRead(ctx context.Context, keyID string) (jwkset.JWK, error) {
	jwk, err := g.cached.KeyRead(ctx, keyID)
	if err == nil || !errors.Is(err, jwkset.ErrKeyNotFound) || !g.allow.Allow() {
		return jwk, err
	}
	return g.Storage.KeyRead(ctx, keyID)
}

// limitedBodies caps what is read of any response body.
type limitedBodies struct{ next http.RoundTripper }

func (l limitedBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{io.LimitReader(resp.Body, maxDocumentBytes), resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}
