package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
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
)

// keyCache holds the issuer's verification keys, fetched lazily and
// refreshed according to the JWKS Cache-Control max-age. It is safe for
// concurrent use; at most one fetch is in flight at a time.
type keyCache struct {
	cfg *Config

	mu          sync.Mutex
	keys        map[string]*publicKey // last successfully fetched set, by kid
	fresh       time.Time             // keys are stale from this time on
	lastAttempt time.Time             // start of the last fetch, zero if none
	lastErr     error                 // error of the last fetch, nil if it succeeded
	inflight    chan struct{}         // closed when the running fetch, if any, is done
	fetches     uint64                // fetches started so far; the running one's number

	// jwksURL is Config.JWKSURL or the discovered jwks_uri. Only the running
	// fetch reads and writes it.
	jwksURL string
}

func newKeyCache(cfg *Config) *keyCache {
	return &keyCache{cfg: cfg, jwksURL: cfg.JWKSURL}
}

// key returns the key with id kid. A known key is returned at once (starting
// a background refresh if the set is stale). An unknown kid causes a fetch
// that the caller waits for, unless one was attempted less than
// RefreshInterval ago. The error wraps ErrInvalidToken when the key set is
// known and lacks kid, and ErrKeysUnavailable when no key set could be
// obtained or the last fetch failed.
func (c *keyCache) key(ctx context.Context, kid string) (*publicKey, error) {
	c.mu.Lock()
	now := c.cfg.Now()
	if k, ok := c.keys[kid]; ok {
		if !now.Before(c.fresh) && c.mayFetchLocked(now) {
			c.startFetchLocked(now) // stale-while-revalidate
		}
		c.mu.Unlock()
		return k, nil
	}
	if !c.mayFetchLocked(now) {
		err := c.missLocked()
		c.mu.Unlock()
		return nil, err
	}
	done := c.startFetchLocked(now)
	c.mu.Unlock()

	select {
	case <-done:
	case <-ctx.Done():
		return nil, unavailable(ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.keys[kid]; ok {
		return k, nil
	}
	return nil, c.missLocked()
}

// mayFetchLocked reports whether a fetch may be started or joined now.
func (c *keyCache) mayFetchLocked(now time.Time) bool {
	if c.inflight != nil || c.lastAttempt.IsZero() {
		return true
	}
	gap := c.cfg.RefreshInterval
	if len(c.keys) == 0 {
		gap = min(gap, unavailableRetry)
	}
	return !now.Before(c.lastAttempt.Add(gap))
}

// missLocked is the error for a kid not in the cache after any allowed fetch.
func (c *keyCache) missLocked() error {
	switch {
	case c.lastErr != nil:
		return unavailable(c.lastErr)
	case len(c.keys) == 0:
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
func (c *keyCache) startFetchLocked(now time.Time) <-chan struct{} {
	if c.inflight != nil {
		return c.inflight
	}
	done := make(chan struct{})
	c.inflight = done
	c.lastAttempt = now
	c.fetches++
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		keys, lifetime, err := c.fetch(ctx)
		cancel()

		c.mu.Lock()
		c.inflight = nil
		c.lastErr = err
		if err == nil {
			c.keys = keys
			c.fresh = c.cfg.Now().Add(min(max(lifetime, c.cfg.RefreshInterval), maxMaxAge))
		}
		c.mu.Unlock()
		close(done)
	}()
	return done
}

// refresh makes a fetch that starts after the call, whatever the throttle,
// and waits for it: a fetch running at the call may have read the JWKS
// before the issuer changed it, so refresh waits for it and then starts
// (or joins) the next one. It returns the error of that fetch (or of a later
// one that ended meanwhile), if any.
func (c *keyCache) refresh(ctx context.Context) error {
	c.mu.Lock()
	before := c.fetches
	for {
		if c.inflight == nil {
			c.startFetchLocked(c.cfg.Now())
		}
		done, n := c.inflight, c.fetches
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return unavailable(ctx.Err())
		}
		c.mu.Lock()
		if n > before {
			break
		}
	}
	err := c.lastErr
	c.mu.Unlock()
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// fetch discovers the JWKS URL if needed, then downloads and parses the
// JWKS. It returns the keys and the response's freshness lifetime.
func (c *keyCache) fetch(ctx context.Context) (map[string]*publicKey, time.Duration, error) {
	if c.jwksURL == "" {
		u, err := c.discover(ctx)
		if err != nil {
			return nil, 0, err
		}
		c.jwksURL = u
	}
	body, header, err := c.get(ctx, c.jwksURL, "application/jwk-set+json, application/json")
	if err != nil {
		return nil, 0, fmt.Errorf("fetch JWKS: %w", err)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch JWKS: %w", err)
	}
	return keys, maxAge(header.Values("Cache-Control")), nil
}

// discover reads the issuer's RFC 8414 metadata and returns its jwks_uri,
// after checking that the metadata is about Config.Issuer.
func (c *keyCache) discover(ctx context.Context) (string, error) {
	body, _, err := c.get(ctx, strings.TrimSuffix(c.cfg.Issuer, "/")+metadataPath, "application/json")
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
	if md.Issuer != c.cfg.Issuer {
		return "", fmt.Errorf("discovery: metadata issuer %q does not match %q", md.Issuer, c.cfg.Issuer)
	}
	if err := checkHTTPURL(md.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery: jwks_uri: %w", err)
	}
	return md.JWKSURI, nil
}

// get fetches url and returns the body of a 200 response.
func (c *keyCache) get(ctx context.Context, url, accept string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", accept)
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: status %s", url, resp.Status)
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
