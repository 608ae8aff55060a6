package verifier

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// metadataPath is appended to the issuer to discover its metadata (RFC 8414).
	metadataPath = "/.well-known/oauth-authorization-server"
	// defaultMaxAge is how long a JWKS without Cache-Control max-age stays fresh.
	defaultMaxAge = 5 * time.Minute
	// maxMaxAge caps how long a JWKS stays fresh, whatever its max-age.
	maxMaxAge = 24 * time.Hour
	// unavailableRetry is the minimum time between fetch attempts while no
	// key has ever been obtained (capped by RefreshInterval). The Middleware
	// advertises it as Retry-After.
	unavailableRetry = 5 * time.Second
	// fetchTimeout bounds one fetch (discovery plus JWKS), whatever the client.
	fetchTimeout = 10 * time.Second
	// maxDocumentSize bounds the metadata and JWKS documents.
	maxDocumentSize = 1 << 20
	// maxRedirects bounds the redirects of one GET, as net/http's default does.
	maxRedirects = 10
)

// KeySetOptions say where a KeySet's keys come from and how they are fetched.
// Exactly one of JWKSURL, DiscoveryURL and JWKS is set.
type KeySetOptions struct {
	// JWKSURL is the URL of the JSON Web Key Set.
	JWKSURL string

	// DiscoveryURL is the URL of a discovery document that names the JWKS
	// in its "jwks_uri": RFC 8414 authorization-server metadata
	// (<issuer>/.well-known/oauth-authorization-server) or OpenID Connect
	// discovery (<issuer>/.well-known/openid-configuration). Its "issuer"
	// must equal Issuer. It is read before the first JWKS fetch, and again
	// before each fetch until it has been read once.
	DiscoveryURL string

	// Issuer is the "issuer" the discovery document must name. Required
	// with DiscoveryURL.
	Issuer string

	// JWKS is a JSON Web Key Set document held by the caller (for an issuer
	// whose JWKS nobody can fetch): its keys are used as they are, never
	// fetched, refreshed or dropped. It must hold at least one usable key.
	JWKS []byte

	// HTTPClient fetches the documents: its Transport (credentials, a
	// certificate authority of its own) and Timeout apply. Default: a client
	// with a DefaultHTTPTimeout timeout. Each fetch is also bounded by a 10s
	// deadline of its own and each document by 1 MiB. The KeySet uses a copy
	// that follows a redirect only within the origin (scheme, host and port)
	// of the URL it asked for, and then only as HTTPClient.CheckRedirect
	// allows (at most 10 by default): a redirect to another origin fails
	// the fetch, so credentials the Transport adds never reach another host
	// and no other host can substitute keys.
	HTTPClient *http.Client

	// RefreshInterval is the minimum time between two fetches, explicit
	// Refresh calls excepted. It bounds the refetches caused by tokens that
	// name a key id the set does not hold (forged tokens with random key ids
	// cost the issuer at most one request per interval, and never make a
	// caller wait for its turn: a caller either joins the fetch running or
	// allowed now, or is answered at once from the cache) and the retries
	// after a failed fetch. It is also the shortest time a fetched JWKS is
	// fresh. While no key has been obtained at all, fetches are retried
	// every 5s if RefreshInterval is longer. Zero means
	// DefaultRefreshInterval (30s).
	RefreshInterval time.Duration

	// MaxAge is the longest time a fetched JWKS is fresh: its Cache-Control
	// max-age (5 minutes without one) is clamped to [RefreshInterval,
	// MaxAge]. Zero means 24 hours; a MaxAge below RefreshInterval counts as
	// RefreshInterval.
	MaxAge time.Duration

	// Clock tells the time; a k8s.io/utils/clock.PassiveClock fits. Default:
	// the system clock.
	Clock interface{ Now() time.Time }

	// OnFetch, when set, is called after each fetch with its error (nil when
	// it succeeded), once the cache holds the result and before the callers
	// waiting for the fetch go on: to log or count failed fetches. It must
	// not block; it may call Status.
	OnFetch func(error)
}

// KeySet is a cache of one issuer's JSON Web Key Set, for verifying the
// tokens it signs. It is safe for concurrent use; create it with NewKeySet.
//
// Keys are fetched on first use (or given once: KeySetOptions.JWKS), and
// kept fresh per the JWKS Cache-Control
// max-age (see KeySetOptions.MaxAge): a stale set is still used while it is
// fetched again in the background, or ahead of use by Run. A token that
// names a key id the set lacks causes a refetch, at most once per
// RefreshInterval. At most one fetch is in flight at a time; callers that
// need it share it. A failed fetch keeps the keys fetched before, and
// Status says since when they are stale.
//
// Only signature keys the package can use are kept: EC P-256, RSA of at
// least 2048 bits (odd exponent) and Ed25519, with a "kid", "use" absent or
// "sig"; other keys of the set are skipped, never failing it (RFC 7517 §5).
// A key serves only the algorithms of its type (ES256; RS256, RS384, RS512,
// PS256, PS384, PS512; EdDSA), and only the JWK's own "alg" when it has one.
type KeySet struct {
	opts       KeySetOptions
	httpClient *http.Client // opts.HTTPClient with the redirect rule

	mu           sync.Mutex
	keys         map[string]*publicKey // last successfully fetched set, by kid
	fetchedAt    time.Time             // when keys were fetched, zero if never
	fresh        time.Time             // keys are stale from this time on
	lastAttempt  time.Time             // start of the last fetch, zero if none
	lastErr      error                 // error of the last fetch, nil if it succeeded
	firstFailure time.Time             // start of the first failed fetch since the last success
	inflight     chan struct{}         // closed when the running fetch, if any, is done
	fetches      uint64                // fetches started so far; the running one's number

	// jwksURL is JWKSURL or the discovered jwks_uri. Only the running
	// fetch reads and writes it.
	jwksURL string
}

// NewKeySet returns a KeySet after checking opts and applying defaults. It
// does not touch the network: keys are fetched on first use (or by Refresh
// or Run).
func NewKeySet(opts KeySetOptions) (*KeySet, error) {
	sources := 0
	for _, set := range []bool{opts.JWKSURL != "", opts.DiscoveryURL != "", opts.JWKS != nil} {
		if set {
			sources++
		}
	}
	switch {
	case sources != 1:
		return nil, errors.New("verifier: KeySetOptions: set exactly one of JWKSURL, DiscoveryURL and JWKS")
	case opts.JWKS != nil:
	case opts.JWKSURL != "":
		if err := checkHTTPURL(opts.JWKSURL); err != nil {
			return nil, fmt.Errorf("verifier: KeySetOptions.JWKSURL: %w", err)
		}
	default:
		if err := checkHTTPURL(opts.DiscoveryURL); err != nil {
			return nil, fmt.Errorf("verifier: KeySetOptions.DiscoveryURL: %w", err)
		}
		if opts.Issuer == "" {
			return nil, errors.New("verifier: KeySetOptions.Issuer is required with DiscoveryURL")
		}
	}
	if err := orDefault(&opts.RefreshInterval, DefaultRefreshInterval, "KeySetOptions.RefreshInterval"); err != nil {
		return nil, err
	}
	if err := orDefault(&opts.MaxAge, maxMaxAge, "KeySetOptions.MaxAge"); err != nil {
		return nil, err
	}
	opts.MaxAge = max(opts.MaxAge, opts.RefreshInterval)
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	ks := &KeySet{opts: opts, httpClient: sameOriginRedirects(opts.HTTPClient), jwksURL: opts.JWKSURL}
	if opts.JWKS != nil {
		keys, err := parseJWKS(opts.JWKS)
		if err == nil && len(keys) == 0 {
			err = errors.New("JWKS has no usable key")
		}
		if err != nil {
			return nil, fmt.Errorf("verifier: KeySetOptions.JWKS: %w", err)
		}
		ks.keys, ks.fetchedAt = keys, opts.Clock.Now()
	}
	return ks, nil
}

// static reports whether the keys are the caller's (KeySetOptions.JWKS).
func (ks *KeySet) static() bool { return ks.opts.JWKS != nil }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Key returns the public key with id kid for verifying a signature with
// algorithm alg. A cached key is returned at once (starting a background
// refresh if the set is stale). An unknown kid causes a fetch that the
// caller waits for (or until ctx ends), unless one was attempted less than
// RefreshInterval ago. The error wraps ErrInvalidToken when the key set is
// known and lacks kid or the key does not serve alg, and ErrKeysUnavailable
// when no key set could be obtained or the last fetch failed.
func (ks *KeySet) Key(ctx context.Context, kid, alg string) (crypto.PublicKey, error) {
	k, err := ks.key(ctx, kid)
	if err != nil {
		return nil, err
	}
	if !k.accepts(alg) {
		return nil, reject("algorithm does not match key")
	}
	return k.key, nil
}

// Keyfunc is a jwt.Keyfunc for golang-jwt's parser: the key named by the
// token's "kid" (see Key), or, for a token without "kid", every cached key
// that serves its algorithm (no fetch is made for it once keys are held).
// It waits for a fetch at most as long as a fetch may take (10s).
func (ks *KeySet) Keyfunc(t *jwt.Token) (any, error) {
	if t == nil || t.Method == nil {
		return nil, reject("algorithm not allowed")
	}
	alg := t.Method.Alg()
	raw, ok := t.Header["kid"]
	if !ok {
		return ks.keysFor(context.Background(), alg)
	}
	kid, _ := raw.(string)
	if kid == "" {
		return nil, reject("malformed key id")
	}
	return ks.Key(context.Background(), kid, alg)
}

// keysFor returns every cached key that serves alg, fetching the set first
// when none is held and a fetch is allowed.
func (ks *KeySet) keysFor(ctx context.Context, alg string) (jwt.VerificationKeySet, error) {
	ks.mu.Lock()
	now := ks.opts.Clock.Now()
	if len(ks.keys) == 0 && ks.mayFetchLocked(now) {
		done := ks.startFetchLocked(now)
		ks.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return jwt.VerificationKeySet{}, unavailable(ctx.Err())
		}
		ks.mu.Lock()
	} else if !now.Before(ks.fresh) && ks.mayFetchLocked(now) {
		ks.startFetchLocked(now) // stale-while-revalidate
	}
	defer ks.mu.Unlock()
	var set jwt.VerificationKeySet
	for _, kid := range slices.Sorted(maps.Keys(ks.keys)) {
		if k := ks.keys[kid]; k.accepts(alg) {
			set.Keys = append(set.Keys, k.key)
		}
	}
	if len(set.Keys) == 0 {
		if err := ks.missLocked(); !errors.Is(err, ErrInvalidToken) {
			return set, err
		}
		return set, reject("no key for the algorithm")
	}
	return set, nil
}

// key returns the key with id kid; see Key.
func (ks *KeySet) key(ctx context.Context, kid string) (*publicKey, error) {
	ks.mu.Lock()
	now := ks.opts.Clock.Now()
	if k, ok := ks.keys[kid]; ok {
		if !now.Before(ks.fresh) && ks.mayFetchLocked(now) {
			ks.startFetchLocked(now) // stale-while-revalidate
		}
		ks.mu.Unlock()
		return k, nil
	}
	if !ks.mayFetchLocked(now) {
		err := ks.missLocked()
		ks.mu.Unlock()
		return nil, err
	}
	done := ks.startFetchLocked(now)
	ks.mu.Unlock()

	select {
	case <-done:
	case <-ctx.Done():
		return nil, unavailable(ctx.Err())
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if k, ok := ks.keys[kid]; ok {
		return k, nil
	}
	return nil, ks.missLocked()
}

// mayFetchLocked reports whether a fetch may be started or joined now.
func (ks *KeySet) mayFetchLocked(now time.Time) bool {
	return !ks.static() && (ks.inflight != nil || !now.Before(ks.nextAllowedLocked()))
}

// nextAllowedLocked is the earliest time a fetch may start, zero if at once.
func (ks *KeySet) nextAllowedLocked() time.Time {
	if ks.lastAttempt.IsZero() {
		return time.Time{}
	}
	gap := ks.opts.RefreshInterval
	if len(ks.keys) == 0 {
		gap = min(gap, unavailableRetry)
	}
	return ks.lastAttempt.Add(gap)
}

// missLocked is the error for a kid not in the cache after any allowed fetch.
func (ks *KeySet) missLocked() error {
	switch {
	case ks.lastErr != nil:
		return unavailable(ks.lastErr)
	case len(ks.keys) == 0:
		return unavailable(errors.New("JWKS has no usable key"))
	default:
		return reject("unknown key id")
	}
}

// startFetchLocked starts a fetch unless one is running, and returns a
// channel closed once the running fetch has updated the cache. Concurrent
// callers thus share one fetch. It runs in its own goroutine, detached from
// any caller's context, so that a caller giving up does not fail it for the
// others.
func (ks *KeySet) startFetchLocked(now time.Time) <-chan struct{} {
	if ks.inflight != nil {
		return ks.inflight
	}
	done := make(chan struct{})
	ks.inflight = done
	ks.lastAttempt = now
	ks.fetches++
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		keys, lifetime, err := ks.fetch(ctx)
		cancel()

		ks.mu.Lock()
		ks.lastErr = err
		if err == nil {
			now := ks.opts.Clock.Now()
			ks.keys, ks.fetchedAt, ks.firstFailure = keys, now, time.Time{}
			ks.fresh = now.Add(min(max(lifetime, ks.opts.RefreshInterval), ks.opts.MaxAge))
		} else if ks.firstFailure.IsZero() {
			ks.firstFailure = ks.lastAttempt
		}
		ks.mu.Unlock()
		if ks.opts.OnFetch != nil { // still in flight: hooks run one at a time, before waiters go on
			ks.opts.OnFetch(err)
		}
		ks.mu.Lock()
		ks.inflight = nil
		ks.mu.Unlock()
		close(done)
	}()
	return done
}

// Refresh fetches the JWKS now, whatever the cache's age and the
// RefreshInterval throttle, and waits for it. On success the fetched set
// replaces the cached one: keys the issuer no longer publishes are refused
// from then on. A fetch running at the call may have read the JWKS before
// the issuer changed it, so Refresh waits for it and then starts (or joins)
// the next one. Static keys (KeySetOptions.JWKS) are not fetched: Refresh
// returns nil. On failure the cached keys stay in use and the error wraps
// ErrKeysUnavailable (and ctx's error when ctx ended first; the fetch
// itself then continues for other callers).
func (ks *KeySet) Refresh(ctx context.Context) error {
	if ks.static() {
		return nil
	}
	ks.mu.Lock()
	before := ks.fetches
	for {
		if ks.inflight == nil {
			ks.startFetchLocked(ks.opts.Clock.Now())
		}
		done, n := ks.inflight, ks.fetches
		ks.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return unavailable(ctx.Err())
		}
		ks.mu.Lock()
		if n > before {
			break
		}
	}
	err := ks.lastErr
	ks.mu.Unlock()
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// Run keeps the set fresh until ctx ends, without waiting for tokens to
// need it: it fetches the JWKS whenever it goes stale and, after a failed
// fetch, again once RefreshInterval (5s while no key is held) has passed.
// So keys an issuer removed are dropped even when no token is verified for
// a while. Without Run, a stale set is refreshed when a token uses it. It
// returns nil when ctx ends; for static keys it only waits for that. Waits
// are measured by the Clock but slept on the system's timers.
func (ks *KeySet) Run(ctx context.Context) error {
	if ks.static() {
		<-ctx.Done()
		return nil
	}
	for {
		ks.mu.Lock()
		now := ks.opts.Clock.Now()
		next := ks.nextAllowedLocked()
		if !ks.fresh.IsZero() && ks.fresh.After(next) {
			next = ks.fresh
		}
		var done <-chan struct{}
		if ks.inflight != nil || !now.Before(next) {
			done = ks.startFetchLocked(now)
		}
		ks.mu.Unlock()

		if done == nil {
			timer := time.NewTimer(next.Sub(now))
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return nil
			}
			continue
		}
		select {
		case <-done:
		case <-ctx.Done():
			return nil
		}
	}
}

// KeySetStatus is what a KeySet knows of its keys: for readiness checks and
// status reports.
type KeySetStatus struct {
	// Keys is how many usable keys are cached.
	Keys int
	// FetchedAt is when the cached keys were fetched; zero before the first
	// successful fetch.
	FetchedAt time.Time
	// FreshUntil is when the cached keys go stale; zero for static keys.
	FreshUntil time.Time
	// LastError is the error of the last fetch; nil when it succeeded or
	// none was made.
	LastError error
	// StaleSince is zero while the cached keys are fresh or were confirmed
	// by the last fetch. Otherwise the issuer has not answered since it: the
	// later of FreshUntil and the first failed fetch since the last
	// successful one (that failed fetch, when no key was ever obtained). The
	// stale keys stay in use.
	StaleSince time.Time
}

// Status returns what the KeySet knows of its keys now.
func (ks *KeySet) Status() KeySetStatus {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	s := KeySetStatus{Keys: len(ks.keys), FetchedAt: ks.fetchedAt, FreshUntil: ks.fresh, LastError: ks.lastErr}
	if ks.lastErr != nil && !ks.firstFailure.IsZero() && !ks.opts.Clock.Now().Before(ks.fresh) {
		s.StaleSince = ks.firstFailure
		if ks.fresh.After(s.StaleSince) {
			s.StaleSince = ks.fresh
		}
	}
	return s
}

// fetch discovers the JWKS URL if needed, then downloads and parses the
// JWKS. It returns the keys and the response's freshness lifetime.
func (ks *KeySet) fetch(ctx context.Context) (map[string]*publicKey, time.Duration, error) {
	if ks.jwksURL == "" {
		u, err := ks.discover(ctx)
		if err != nil {
			return nil, 0, err
		}
		ks.jwksURL = u
	}
	body, header, err := ks.get(ctx, ks.jwksURL, "application/jwk-set+json, application/json")
	if err != nil {
		return nil, 0, fmt.Errorf("fetch JWKS: %w", err)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch JWKS: %w", err)
	}
	return keys, maxAge(header.Values("Cache-Control")), nil
}

// discover reads the discovery document and returns its jwks_uri, after
// checking that the document is about the expected issuer.
func (ks *KeySet) discover(ctx context.Context) (string, error) {
	body, _, err := ks.get(ctx, ks.opts.DiscoveryURL, "application/json")
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	var md struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &md); err != nil {
		return "", errors.New("discovery: metadata is not valid JSON")
	}
	if md.Issuer != ks.opts.Issuer {
		return "", fmt.Errorf("discovery: metadata issuer %q does not match %q", md.Issuer, ks.opts.Issuer)
	}
	if err := checkHTTPURL(md.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery: jwks_uri: %w", err)
	}
	return md.JWKSURI, nil
}

// get fetches url and returns the body of a 200 response.
func (ks *KeySet) get(ctx context.Context, url, accept string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", accept)
	resp, err := ks.httpClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		// The status code, not the server's reason phrase: that is any text the server
		// chooses, of any length, and this error ends up in statuses and logs.
		return nil, nil, fmt.Errorf("GET %s: status %d %s", url, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxDocumentSize {
		return nil, nil, fmt.Errorf("GET %s: document larger than %d bytes", url, maxDocumentSize)
	}
	return body, resp.Header, nil
}

// sameOriginRedirects returns a copy of hc that refuses a redirect to
// another origin than the first request's, then applies hc's own redirect
// policy.
func sameOriginRedirects(hc *http.Client) *http.Client {
	c := *hc
	policy := hc.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !sameOrigin(req.URL, via[0].URL) {
			return fmt.Errorf("refused a redirect from %s to another origin (%s)", origin(via[0].URL), origin(req.URL))
		}
		if policy != nil {
			return policy(req, via)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
	return &c
}

// sameOrigin reports whether a and b have the same origin (RFC 6454):
// scheme, host and port, the port defaulted by the scheme.
func sameOrigin(a, b *url.URL) bool {
	return origin(a) == origin(b)
}

// origin is the ASCII serialisation of u's origin: scheme://host:port.
//
// pkg/client has the same function on purpose: each public package imports no other
// package of the project, so users can vendor it alone (test/vendorable).
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") { // IPv6
		host = "[" + host + "]"
	}
	return scheme + "://" + host + ":" + port
}

// maxAge returns the max-age of Cache-Control header values, 0 for no-store
// or no-cache (the caller clamps it), or defaultMaxAge when there is none.
func maxAge(values []string) time.Duration {
	age := defaultMaxAge
	found := false
	for _, v := range values {
		for directive := range strings.SplitSeq(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(directive), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(arg), `"`), 10, 64)
				if err == nil && n >= 0 && !found {
					age, found = time.Duration(min(n, int64(maxMaxAge/time.Second)))*time.Second, true
				}
			}
		}
	}
	return age
}
