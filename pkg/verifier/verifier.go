package verifier

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxTokenSize bounds the length of a token accepted by Verify.
const maxTokenSize = 16 << 10

// Verifier verifies RFC 9068 JWT access tokens offline, with keys fetched
// from the issuer's JWKS. It is safe for concurrent use; create one per
// (issuer, audience) and share it.
type Verifier struct {
	cfg       Config
	parser    *jwt.Parser    // JWS compact form, pinned algorithms, signature
	validator *jwt.Validator // registered claims
	keys      *KeySet
	// proofs remembers the DPoP proofs accepted; external is
	// Config.ExternalURL parsed (nil when unset).
	proofs   *proofCache
	external *url.URL
}

// New returns a Verifier for cfg after validating it and applying defaults.
// It does not touch the network: metadata and keys are fetched on first use,
// so an API may start before its token server.
func New(cfg Config) (*Verifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	keys, err := NewKeySet(cfg.keySetOptions())
	if err != nil {
		return nil, err
	}
	v := &Verifier{
		cfg:    cfg,
		keys:   keys,
		proofs: newProofCache(cfg.DPoPReplayCacheSize),
		parser: jwt.NewParser(
			jwt.WithValidMethods(cfg.Algorithms),
			jwt.WithStrictDecoding(),       // one encoding per token
			jwt.WithoutClaimsValidation()), // v.validator runs after the claims are known to be an object
		validator: jwt.NewValidator(
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(cfg.Now)),
	}
	if cfg.ExternalURL != "" {
		v.external, _ = url.Parse(cfg.ExternalURL) // withDefaults checked it
	}
	return v, nil
}

// Refresh fetches the issuer's JWKS now, whatever the cache's age and the
// RefreshInterval throttle, and waits for it. On success the fetched set
// replaces the cached one: keys the issuer no longer publishes (a revoked
// or retired signing key) are refused from then on. The fetch starts after
// the call (a fetch already running is waited for, then another one made),
// so it sees the JWKS as the issuer serves it now.
//
// On failure the cached keys stay in use and the error wraps
// ErrKeysUnavailable (and ctx's error when ctx ended first; the fetch itself
// then continues for other callers). Call Refresh again to retry.
func (v *Verifier) Refresh(ctx context.Context) error {
	return v.keys.Refresh(ctx)
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

	// DPoPThumbprint is the "jkt" of the "cnf" claim of a DPoP-bound token
	// (RFC 9449 §6.1): the thumbprint of the key it is bound to. Empty for
	// a bearer token.
	DPoPThumbprint string

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
// form (header and claims JSON objects, strict base64url); "alg" among
// Config.Algorithms; "typ" is "at+jwt" or "application/at+jwt"
// (case-insensitive); no "crit"; "kid" present and in the issuer's JWKS,
// whose key must match "alg"; the signature; then the claims: "iss" equals
// Config.Issuer; "aud" contains Config.Audience; "exp" present and not
// past, "nbf" (if present) not in the future, "iat" present and not in the
// future, all within Config.Leeway; "sub", "client_id" and "jti" present.
// When several claims fail, the first in this list is reported. Last, a
// token with a "cnf" claim is refused: it is bound to a key (RFC 9449 §7.1:
// a DPoP-bound token presented as a bearer token), see VerifyDPoP.
//
// A rejected token yields an error wrapping ErrInvalidToken whose message
// names the failed check and never contains the token. An error wrapping
// ErrKeysUnavailable instead means the token could not be checked: no key
// set could be obtained, or the token names a key that is not cached while
// the last JWKS fetch failed. ctx bounds only the wait for a key fetch;
// the fetch itself continues for other callers.
func (v *Verifier) Verify(ctx context.Context, rawToken string) (*Claims, error) {
	claims, err := v.verify(ctx, rawToken)
	if err != nil {
		return nil, err
	}
	if _, bound := claims.Raw["cnf"]; bound {
		return nil, errBoundAsBearer
	}
	return claims, nil
}

// errBoundAsBearer refuses a sender-constrained token without its proof.
var errBoundAsBearer = reject("the token is DPoP-bound: present it with the DPoP scheme and a proof")

// verify checks rawToken as Verify documents, whatever its binding.
func (v *Verifier) verify(ctx context.Context, rawToken string) (*Claims, error) {
	if len(rawToken) > maxTokenSize {
		return nil, reject("token too large")
	}
	var (
		claims    accessClaims
		keyCalled bool
		keyErr    error
	)
	token, err := v.parser.ParseWithClaims(rawToken, &claims, func(t *jwt.Token) (any, error) {
		keyCalled = true
		var key any
		key, keyErr = v.key(ctx, t)
		return key, keyErr
	})
	switch {
	case err == nil:
	case keyErr != nil:
		return nil, keyErr
	case keyCalled: // the key was found: only the signature can have failed
		return nil, reject("invalid signature")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, malformed(token)
	case token == nil || token.Header == nil: // a JSON null header
		return nil, reject("malformed token header")
	default: // "alg" missing, unknown or not in WithValidMethods
		return nil, reject("algorithm not allowed")
	}
	if claims == nil { // a JSON null payload
		return nil, reject("malformed token claims")
	}
	if err := v.validator.Validate(claims); err != nil {
		return nil, claimsRejection(err)
	}
	return claims.toClaims(), nil
}

// key is the jwt.Keyfunc of Verify: it checks the header parameters the
// parser does not know, then returns the JWKS key named by "kid" if it may
// verify the token's algorithm (no algorithm/key confusion).
func (v *Verifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, reject("wrong token type: want at+jwt")
	}
	if _, ok := t.Header["crit"]; ok {
		return nil, reject("unsupported critical header parameters")
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, reject("missing key id")
	}
	return v.keys.Key(ctx, kid, t.Method.Alg())
}

// malformed is the rejection of a token the parser found malformed, named
// after the part it stopped at: the parser decodes the header, then the
// claims, then looks up "alg", then decodes the signature, and returns the
// token as far as it got.
func malformed(t *jwt.Token) error {
	switch {
	case t == nil:
		return reject("malformed token: not a JWS in compact form")
	case t.Header == nil:
		return reject("malformed token header")
	case t.Method == nil:
		return reject("malformed token claims")
	default:
		return reject("malformed token signature")
	}
}

// Rejections of claims. The getters of accessClaims return the first of
// each pair for a claim that is missing or malformed.
var (
	errIssuer      = reject("wrong issuer")
	errAudience    = reject("wrong audience")
	errExp         = reject("missing or malformed exp claim")
	errExpired     = reject("token expired")
	errNbf         = reject("malformed nbf claim")
	errNotYetValid = reject("token not yet valid")
	errIat         = reject("missing or malformed iat claim")
	errIatFuture   = reject("token issued in the future")
)

// claimChecks maps, in the order Verify documents, what jwt.Validator
// reports (an accessClaims getter's error or one of its own) to the
// rejection.
var claimChecks = []struct{ reported, rejection error }{
	{errIssuer, errIssuer}, {jwt.ErrTokenInvalidIssuer, errIssuer},
	{errAudience, errAudience}, {jwt.ErrTokenInvalidAudience, errAudience},
	{errExp, errExp}, {jwt.ErrTokenExpired, errExpired},
	{errNbf, errNbf}, {jwt.ErrTokenNotValidYet, errNotYetValid},
	{errIat, errIat}, {jwt.ErrTokenUsedBeforeIssued, errIatFuture},
}

// claimsRejection returns the rejection for err, an error of jwt.Validator
// that may join several failed checks.
func claimsRejection(err error) error {
	for _, c := range claimChecks {
		if errors.Is(err, c.reported) {
			return c.rejection
		}
	}
	if rej, ok := errors.AsType[*rejection](err); ok { // from accessClaims.Validate
		return rej
	}
	return reject("invalid claims")
}

// accessClaims are a token's claims as jwt.Validator checks them. Its
// getters report a missing or malformed claim as this package's rejection
// (the validator passes getter errors through), and Validate checks the
// RFC 9068 claims the validator does not know.
type accessClaims map[string]any

var _ jwt.ClaimsValidator = accessClaims(nil)

func (c accessClaims) GetExpirationTime() (*jwt.NumericDate, error) {
	return required(jwt.MapClaims(c).GetExpirationTime())(errExp)
}

func (c accessClaims) GetIssuedAt() (*jwt.NumericDate, error) {
	return required(jwt.MapClaims(c).GetIssuedAt())(errIat)
}

func (c accessClaims) GetNotBefore() (*jwt.NumericDate, error) {
	nbf, err := jwt.MapClaims(c).GetNotBefore()
	if err != nil {
		return nil, errNbf
	}
	return nbf, nil
}

func (c accessClaims) GetIssuer() (string, error) {
	return required(jwt.MapClaims(c).GetIssuer())(errIssuer)
}

func (c accessClaims) GetSubject() (string, error) {
	return required(jwt.MapClaims(c).GetSubject())(reject("missing sub claim"))
}

func (c accessClaims) GetAudience() (jwt.ClaimStrings, error) {
	aud, err := jwt.MapClaims(c).GetAudience()
	if err != nil || len(aud) == 0 || len(aud) == 1 && aud[0] == "" { // as jwt.Validator defines missing
		return nil, errAudience
	}
	return aud, nil
}

// Validate checks the claims RFC 9068 requires beyond the registered ones
// the validator checks.
func (c accessClaims) Validate() error {
	if _, err := c.GetSubject(); err != nil {
		return err
	}
	if s, _ := c["client_id"].(string); s == "" {
		return reject("missing client_id claim")
	}
	if s, _ := c["jti"].(string); s == "" {
		return reject("missing jti claim")
	}
	if s, ok := c["scope"]; ok {
		if _, ok := s.(string); !ok {
			return reject("malformed scope claim")
		}
	}
	if cnf, ok := c["cnf"]; ok {
		m, ok := cnf.(map[string]any)
		if !ok {
			return reject("malformed cnf claim")
		}
		if jkt, ok := m["jkt"]; ok {
			if s, _ := jkt.(string); s == "" {
				return reject("malformed cnf claim")
			}
		}
	}
	return nil
}

// required turns the result of a jwt.MapClaims getter into a function that
// returns it, or missing when the claim is absent, empty or malformed.
func required[T comparable](value T, err error) func(missing error) (T, error) {
	return func(missing error) (T, error) {
		var zero T
		if err != nil || value == zero {
			return zero, missing
		}
		return value, nil
	}
}

// toClaims returns the Claims of validated claims.
func (c accessClaims) toClaims() *Claims {
	out := &Claims{Raw: c}
	out.Issuer, _ = c.GetIssuer()
	out.Subject, _ = c.GetSubject()
	out.Audience, _ = c.GetAudience()
	out.ClientID, _ = c["client_id"].(string)
	out.ID, _ = c["jti"].(string)
	if scope, ok := c["scope"].(string); ok {
		out.Scopes = strings.Fields(scope)
	}
	if cnf, ok := c["cnf"].(map[string]any); ok {
		out.DPoPThumbprint, _ = cnf["jkt"].(string)
	}
	exp, _ := c.GetExpirationTime()
	iat, _ := c.GetIssuedAt()
	out.ExpiresAt, out.IssuedAt = exp.Time, iat.Time
	if nbf, _ := c.GetNotBefore(); nbf != nil {
		out.NotBefore = nbf.Time
	}
	return out
}
