package verifier

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultLeeway is the default Config.Leeway.
	DefaultLeeway = 30 * time.Second
	// DefaultRefreshInterval is the default Config.RefreshInterval.
	DefaultRefreshInterval = 30 * time.Second
	// DefaultHTTPTimeout is the timeout of the default Config.HTTPClient.
	DefaultHTTPTimeout = 10 * time.Second
)

// defaultAlgorithms are the accepted algorithms when Config.Algorithms is
// empty. They are also the only supported ones: "none" and HMAC algorithms
// are deliberately absent, since a resource server never holds a secret
// shared with the issuer.
var defaultAlgorithms = []string{"ES256", "RS256", "EdDSA"}

// Config configures a Verifier. Issuer and Audience are required; every
// other field has a default.
type Config struct {
	// Issuer is the exact "iss" value tokens must carry, for example
	// "https://auth.example.com". Unless JWKSURL is set it is also where
	// keys are discovered: Issuer + "/.well-known/oauth-authorization-server"
	// (RFC 8414), whose "issuer" must equal Issuer and whose "jwks_uri"
	// names the key set.
	Issuer string

	// Audience is the value that the token's "aud" claim (a string or an
	// array of strings) must contain: the identifier of this API. It is
	// also the realm of the Middleware's WWW-Authenticate challenges.
	Audience string

	// JWKSURL is the URL of the issuer's JSON Web Key Set. Optional: when
	// empty it is discovered from the issuer's metadata on first use.
	JWKSURL string

	// Algorithms pins the accepted JWS "alg" values. Only "ES256", "RS256"
	// and "EdDSA" are supported, which is also the default (when empty);
	// "none" and HMAC algorithms (HS256, …) are always rejected.
	Algorithms []string

	// Leeway is the clock skew tolerated when checking "exp", "nbf" and
	// "iat". Zero means DefaultLeeway (30s); negative is an error. For
	// (nearly) no leeway use a tiny positive value such as time.Nanosecond.
	Leeway time.Duration

	// HTTPClient fetches the metadata and the JWKS. Default: a client with
	// a DefaultHTTPTimeout (10s) timeout. Each fetch is also bounded by a
	// 10s deadline of its own, and each document by 1 MiB. Redirects are
	// followed only within the origin (scheme, host, port) of the URL asked
	// for: a redirect to another origin fails the fetch (see KeySetOptions).
	HTTPClient *http.Client

	// RefreshInterval is the minimum time between two fetches of the JWKS.
	// It throttles the refetches caused by tokens with an unknown "kid", so
	// forged tokens with random kids cannot cause a refetch storm, and the
	// retries after a failed fetch. It is also the shortest time a fetched
	// JWKS is considered fresh (its Cache-Control max-age is clamped to
	// [RefreshInterval, 24h], 5 minutes without max-age). Only while no key
	// has been obtained at all are fetches retried more often: every 5s,
	// if RefreshInterval is longer. Zero means DefaultRefreshInterval (30s);
	// negative is an error.
	RefreshInterval time.Duration

	// Now returns the current time. Default time.Now; set it in tests.
	Now func() time.Time

	// RequireDPoP makes the Middleware accept only DPoP-bound tokens
	// (RFC 9449), presented with the DPoP scheme and a proof: a bearer token
	// is refused however valid. Without it both are accepted, and a
	// DPoP-bound token is still refused as a bearer token.
	RequireDPoP bool

	// ExternalURL is the URL at which clients reach this server, when it is
	// not the one the request names: behind a proxy or Ingress that changes
	// the scheme, host, port or path prefix. The Middleware compares a DPoP
	// proof's htu with ExternalURL followed by the request's path. Empty:
	// the request's own URL (https when it came over TLS, its Host header,
	// its path).
	ExternalURL string

	// DPoPProofMaxAge is how old a DPoP proof's iat may be. Zero means
	// DefaultDPoPProofMaxAge (60s); negative is an error. Its future
	// tolerance is Leeway.
	DPoPProofMaxAge time.Duration

	// DPoPReplayCacheSize bounds the DPoP proofs remembered against replay
	// (about 100 bytes each, kept DPoPProofMaxAge): one client may fill a
	// thirty-second of it (the clients of one namespace, of client ids
	// <namespace>.<name>, a sixteenth), and each keeps a reserve of 64
	// beyond. A proof that finds no room is refused (503), never accepted
	// unremembered. Zero
	// means DefaultDPoPReplayCacheSize (100000); negative is an error.
	DPoPReplayCacheSize int
}

// withDefaults validates c and returns a copy with defaults applied.
func (c Config) withDefaults() (Config, error) {
	if c.Issuer == "" {
		return c, errors.New("verifier: Config.Issuer is required")
	}
	if c.Audience == "" {
		return c, errors.New("verifier: Config.Audience is required")
	}
	if c.JWKSURL != "" {
		if err := checkHTTPURL(c.JWKSURL); err != nil {
			return c, fmt.Errorf("verifier: Config.JWKSURL: %w", err)
		}
	} else if err := checkHTTPURL(c.Issuer); err != nil {
		return c, fmt.Errorf("verifier: Config.Issuer (used for discovery, JWKSURL being empty): %w", err)
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = defaultAlgorithms
	}
	c.Algorithms = slices.Clone(c.Algorithms)
	for _, alg := range c.Algorithms {
		if !slices.Contains(defaultAlgorithms, alg) {
			return c, fmt.Errorf("verifier: Config.Algorithms: unsupported algorithm %q (supported: %v)", alg, defaultAlgorithms)
		}
	}
	if err := orDefault(&c.Leeway, DefaultLeeway, "Config.Leeway"); err != nil {
		return c, err
	}
	if err := orDefault(&c.RefreshInterval, DefaultRefreshInterval, "Config.RefreshInterval"); err != nil {
		return c, err
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if c.ExternalURL != "" {
		if u, err := url.Parse(c.ExternalURL); err != nil || checkHTTPURL(c.ExternalURL) != nil || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return c, fmt.Errorf("verifier: Config.ExternalURL %q is not an absolute http(s) URL without query, fragment or user information", c.ExternalURL)
		}
	}
	if err := orDefault(&c.DPoPProofMaxAge, DefaultDPoPProofMaxAge, "Config.DPoPProofMaxAge"); err != nil {
		return c, err
	}
	if err := orDefault(&c.DPoPReplayCacheSize, DefaultDPoPReplayCacheSize, "Config.DPoPReplayCacheSize"); err != nil {
		return c, err
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// keySetOptions are the options of the Verifier's KeySet: the JWKS URL, or
// discovery from the issuer's RFC 8414 metadata.
func (c *Config) keySetOptions() KeySetOptions {
	o := KeySetOptions{JWKSURL: c.JWKSURL, HTTPClient: c.HTTPClient, RefreshInterval: c.RefreshInterval, Clock: nowFunc(c.Now)}
	if o.JWKSURL == "" {
		o.DiscoveryURL, o.Issuer = strings.TrimSuffix(c.Issuer, "/")+metadataPath, c.Issuer
	}
	return o
}

// nowFunc is a clock made of Config.Now.
type nowFunc func() time.Time

func (f nowFunc) Now() time.Time { return f() }

// checkHTTPURL reports whether s is an absolute http or https URL.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// orDefault sets *v to def when it is zero; a negative value is an error naming
// field: the one rule of the durations and sizes of Config and KeySetOptions.
func orDefault[T ~int | ~int64](v *T, def T, field string) error {
	if *v < 0 {
		return fmt.Errorf("verifier: %s must not be negative", field)
	}
	if *v == 0 {
		*v = def
	}
	return nil
}
