// Package workloadidentity knows the cluster's ServiceAccount token issuer: its `iss`
// value and the public keys that verify projected ServiceAccount tokens. Both are read
// through the API server with the operator's own credentials
// (/.well-known/openid-configuration and /openid/v1/jwks): the discovery document's
// jwks_uri may name an address the operator cannot reach.
//
// Keys are cached in a pkg/verifier KeySet (the one JWKS cache of the project),
// refreshed periodically, refetched at a bounded rate when a token names an unknown
// key id, and kept when the API server does not answer, so ServiceAccount tokens keep
// verifying through an outage. Neither read follows a redirect to another host: the
// operator's credentials go to the API server only.
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

	"github.com/go-logr/logr"
	"github.com/golang-jwt/jwt/v5"
	"k8s.io/client-go/rest"

	"github.com/oauth-client-operator/oauth-client-operator/pkg/verifier"
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
	// maxDocumentBytes bounds what is read of the discovery document (the KeySet
	// bounds the JWKS likewise).
	maxDocumentBytes = 1 << 20
	// requestTimeout bounds one read from the API server.
	requestTimeout = 10 * time.Second
)

// ErrNotReady is returned while the issuer has not been discovered yet.
var ErrNotReady = errors.New("ServiceAccount issuer not discovered yet")

// Issuer is the cluster's ServiceAccount token issuer. Build it with New and run it
// (Start) as a manager runnable; it is safe for concurrent use.
type Issuer struct {
	// httpClient reads the discovery document: the operator's credentials, no
	// redirects.
	httpClient *http.Client
	baseURL    string
	override   string
	log        logr.Logger
	keys       *verifier.KeySet

	issuer atomic.Pointer[string] // set once discovered and the keys read
	ready  chan struct{}
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
	// RefreshInterval and UnknownKeyInterval: see the defaults. The keys are also
	// never read twice within UnknownKeyInterval.
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
	bounded := *hc
	bounded.Timeout = requestTimeout
	// The API server never redirects its discovery document: a redirect is an error.
	noRedirects := bounded
	noRedirects.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	i := &Issuer{httpClient: &noRedirects, baseURL: base, override: o.Issuer, log: o.Log, ready: make(chan struct{})}

	refresh, unknown := o.RefreshInterval, o.UnknownKeyInterval
	if refresh <= 0 {
		refresh = DefaultRefreshInterval
	}
	if unknown <= 0 {
		unknown = DefaultUnknownKeyInterval
	}
	i.keys, err = verifier.NewKeySet(verifier.KeySetOptions{
		JWKSURL:         base + JWKSPath,
		HTTPClient:      &bounded,
		RefreshInterval: unknown,
		MaxAge:          refresh,
		OnFetch:         i.fetched,
	})
	if err != nil {
		return nil, fmt.Errorf("ServiceAccount issuer keys: %w", err)
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

// Start discovers the issuer and reads its keys, retrying with backoff until the API
// server answers, then keeps the keys fresh until ctx ends.
func (i *Issuer) Start(ctx context.Context) error {
	delay := time.Second
	for {
		err := i.discover(ctx)
		if err == nil {
			close(i.ready)
			return i.keys.Run(ctx)
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

func (i *Issuer) discover(ctx context.Context) error {
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
	if err := i.keys.Refresh(ctx); err != nil {
		return fmt.Errorf("read the ServiceAccount issuer keys from %s: %w", JWKSPath, err)
	}
	i.issuer.Store(&issuer)
	i.log.Info("ServiceAccount token issuer discovered", "issuer", issuer, "overridden", i.override != "", "keys", i.keys.Status().Keys)
	return nil
}

// fetched logs a failed refresh of keys already in use (Start logs the first read).
func (i *Issuer) fetched(err error) {
	if err != nil && i.issuer.Load() != nil {
		i.log.Error(err, "refresh the ServiceAccount issuer keys; the cached keys stay in use",
			"staleSince", i.keys.Status().StaleSince)
	}
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
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocumentBytes)).Decode(v); err != nil {
		return fmt.Errorf("get %s: %w", path, err)
	}
	return nil
}

// Issuer is the `iss` of the cluster's ServiceAccount tokens; "" until discovered.
func (i *Issuer) Issuer() string {
	if s := i.issuer.Load(); s != nil {
		return *s
	}
	return ""
}

// Keyfunc returns the key that verifies a ServiceAccount token (for golang-jwt's
// parser), by its `kid`, or every key of the token's algorithm when it has none.
func (i *Issuer) Keyfunc(token *jwt.Token) (any, error) {
	if i.issuer.Load() == nil {
		return nil, ErrNotReady
	}
	return i.keys.Keyfunc(token)
}

// Keys reports the state of the cached keys: how many, when read, since when stale.
func (i *Issuer) Keys() verifier.KeySetStatus { return i.keys.Status() }
