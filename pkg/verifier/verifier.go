package verifier

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxTokenSize bounds the length of a token accepted by Verify.
const maxTokenSize = 16 << 10

// b64 decodes JWS segments: base64url without padding, rejecting non-zero
// trailing bits so that a token has exactly one encoding.
var b64 = base64.RawURLEncoding.Strict()

// Verifier verifies RFC 9068 JWT access tokens offline, with keys fetched
// from the issuer's JWKS. It is safe for concurrent use; create one per
// (issuer, audience) and share it.
type Verifier struct {
	cfg     Config
	methods map[string]jwt.SigningMethod // the pinned algorithms
	keys    *keyCache
}

// New returns a Verifier for cfg after validating it and applying defaults.
// It does not touch the network: metadata and keys are fetched on first use,
// so an API may start before its token server.
func New(cfg Config) (*Verifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	v := &Verifier{cfg: cfg, methods: make(map[string]jwt.SigningMethod, len(cfg.Algorithms))}
	for _, alg := range cfg.Algorithms {
		v.methods[alg] = supportedMethods[alg]
	}
	v.keys = newKeyCache(&v.cfg)
	return v, nil
}

// Claims are the claims of a verified access token.
type Claims struct {
	Issuer    string    // "iss"
	Subject   string    // "sub"; for client-credentials tokens, the client id
	Audience  []string  // "aud", normalised to a list
	ClientID  string    // "client_id"
	Scopes    []string  // "scope", split on spaces; empty if absent
	ID        string    // "jti"
	IssuedAt  time.Time // "iat"
	NotBefore time.Time // "nbf"; zero if absent
	ExpiresAt time.Time // "exp"

	// Raw holds every claim as decoded by encoding/json (numbers are float64).
	Raw map[string]any
}

// HasScope reports whether the token was granted scope s.
func (c *Claims) HasScope(s string) bool {
	return slices.Contains(c.Scopes, s)
}

// RequireScopes returns nil if the token was granted every one of scopes,
// and otherwise an error wrapping ErrInsufficientScope.
func (c *Claims) RequireScopes(scopes ...string) error {
	for _, s := range scopes {
		if !c.HasScope(s) {
			return &scopeError{missing: s}
		}
	}
	return nil
}

type scopeError struct{ missing string }

func (e *scopeError) Error() string {
	return ErrInsufficientScope.Error() + ": missing scope " + e.missing
}

func (e *scopeError) Unwrap() error { return ErrInsufficientScope }

// Verify checks rawToken as an RFC 9068 access token (following RFC 9068 §4
// and RFC 8725) and returns its claims. It checks, in order: JWS compact
// form; "alg" among Config.Algorithms; "typ" is "at+jwt" or
// "application/at+jwt" (case-insensitive); no "crit"; "kid" present and in the
// issuer's JWKS, whose key must match "alg"; the signature; "iss" equals
// Config.Issuer; "aud" contains Config.Audience; "exp" present and not
// past, "nbf" (if present) not in the future, "iat" present and not in the
// future, all within Config.Leeway; "sub", "client_id" and "jti" present.
//
// A rejected token yields an error wrapping ErrInvalidToken whose message
// names the failed check and never contains the token. An error wrapping
// ErrKeysUnavailable instead means the token could not be checked: no key
// set could be obtained, or the token names a key that is not cached while
// the last JWKS fetch failed. ctx bounds only the wait for a key fetch;
// the fetch itself continues for other callers.
func (v *Verifier) Verify(ctx context.Context, rawToken string) (*Claims, error) {
	if len(rawToken) > maxTokenSize {
		return nil, reject("token too large")
	}
	parts := strings.Split(rawToken, ".")
	if len(parts) != 3 {
		return nil, reject("malformed token: not a JWS in compact form")
	}
	// A map, not a struct: encoding/json matches struct fields
	// case-insensitively, and "ALG" is not "alg".
	var h map[string]any
	if err := decodeSegment(parts[0], &h); err != nil || h == nil {
		return nil, reject("malformed token header")
	}
	alg, _ := h["alg"].(string)
	method, ok := v.methods[alg]
	if !ok {
		return nil, reject("algorithm not allowed")
	}
	if typ, _ := h["typ"].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, reject("wrong token type: want at+jwt")
	}
	if _, ok := h["crit"]; ok {
		return nil, reject("unsupported critical header parameters")
	}
	kid, _ := h["kid"].(string)
	if kid == "" {
		return nil, reject("missing key id")
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, reject("malformed token signature")
	}
	key, err := v.keys.key(ctx, kid)
	if err != nil {
		return nil, err
	}
	if !key.accepts(alg) {
		return nil, reject("algorithm does not match key")
	}
	if method.Verify(parts[0]+"."+parts[1], sig, key.key) != nil {
		return nil, reject("invalid signature")
	}
	var raw map[string]any
	if err := decodeSegment(parts[1], &raw); err != nil || raw == nil {
		return nil, reject("malformed token claims")
	}
	return v.checkClaims(raw)
}

// decodeSegment decodes a base64url JSON segment into dst.
func decodeSegment(seg string, dst any) error {
	b, err := b64.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}

// checkClaims validates the claims of a token whose signature is valid.
func (v *Verifier) checkClaims(raw map[string]any) (*Claims, error) {
	m := jwt.MapClaims(raw)
	c := &Claims{Raw: raw}
	var err error
	if c.Issuer, err = m.GetIssuer(); err != nil || c.Issuer != v.cfg.Issuer {
		return nil, reject("wrong issuer")
	}
	if c.Audience, err = m.GetAudience(); err != nil || !slices.Contains(c.Audience, v.cfg.Audience) {
		return nil, reject("wrong audience")
	}

	now, leeway := v.cfg.Now(), v.cfg.Leeway
	exp, err := m.GetExpirationTime()
	switch {
	case err != nil || exp == nil:
		return nil, reject("missing or malformed exp claim")
	case !now.Before(exp.Add(leeway)):
		return nil, reject("token expired")
	}
	c.ExpiresAt = exp.Time
	nbf, err := m.GetNotBefore()
	switch {
	case err != nil:
		return nil, reject("malformed nbf claim")
	case nbf != nil && now.Add(leeway).Before(nbf.Time):
		return nil, reject("token not yet valid")
	case nbf != nil:
		c.NotBefore = nbf.Time
	}
	iat, err := m.GetIssuedAt()
	switch {
	case err != nil || iat == nil:
		return nil, reject("missing or malformed iat claim")
	case now.Add(leeway).Before(iat.Time):
		return nil, reject("token issued in the future")
	}
	c.IssuedAt = iat.Time

	var ok bool
	if c.Subject, ok = raw["sub"].(string); !ok || c.Subject == "" {
		return nil, reject("missing sub claim")
	}
	if c.ClientID, ok = raw["client_id"].(string); !ok || c.ClientID == "" {
		return nil, reject("missing client_id claim")
	}
	if c.ID, ok = raw["jti"].(string); !ok || c.ID == "" {
		return nil, reject("missing jti claim")
	}
	if s, present := raw["scope"]; present {
		scope, ok := s.(string)
		if !ok {
			return nil, reject("malformed scope claim")
		}
		c.Scopes = strings.Fields(scope)
	}
	return c, nil
}
