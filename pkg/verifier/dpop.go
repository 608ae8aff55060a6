package verifier

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// DPoP (RFC 9449) proofs are checked here, once, for both halves of the
// product: the resource server (Verifier.VerifyDPoP, Middleware) and the
// token server, which calls CheckDPoPProof for the proof of a token request.
// The JWS is parsed and its signature verified by golang-jwt, the embedded
// JWK decoded and thumbprinted (RFC 7638) by go-jose.

// dpopAlgorithms are the JWS algorithms of DPoP proofs accepted: asymmetric
// only ("none" and HMAC never), each bound to its key type (ES256 to P-256,
// RS256 and PS256 to RSA of at least 2048 bits, EdDSA to Ed25519).
var dpopAlgorithms = []string{"ES256", "RS256", "PS256", "EdDSA"}

// DPoPAlgorithms returns the JWS algorithms accepted in DPoP proofs, for a
// server's dpop_signing_alg_values_supported metadata and the algs of a
// WWW-Authenticate DPoP challenge. The one list: the token server and the
// resource server accept the same.
func DPoPAlgorithms() []string { return slices.Clone(dpopAlgorithms) }

// Defaults of DPoP proof checks.
const (
	// DefaultDPoPProofMaxAge is how old a proof's iat may be, by default: a
	// client makes a proof for each request, just before it.
	DefaultDPoPProofMaxAge = 60 * time.Second
	// DefaultDPoPReplayCacheSize is the default Config.DPoPReplayCacheSize.
	DefaultDPoPReplayCacheSize = 100000
)

// Bounds of what a proof may hold.
const (
	// maxDPoPProofSize bounds a proof: one with a 4096-bit RSA key is about
	// 1.5 KiB.
	maxDPoPProofSize = 8 << 10
	// maxDPoPJTILength bounds a proof's jti; 128 random bits take 22
	// characters.
	maxDPoPJTILength = 256
	// maxDPoPRSABits bounds the RSA keys of proofs (at least minRSABits).
	maxDPoPRSABits = 4096
)

// ErrInvalidDPoPProof is wrapped by every refusal of a DPoP proof, and of a
// DPoP-bound token whose proof does not bind it to the request: the error
// is a *DPoPProofError, which says which check failed.
var ErrInvalidDPoPProof = errors.New("invalid DPoP proof")

// DPoPCheck names the check of a DPoP proof that failed.
type DPoPCheck string

// The checks of a DPoP proof (RFC 9449 §4.3), in the order they run.
const (
	// DPoPCheckMalformed: not one JWS in compact form, larger than 8 KiB,
	// an unsupported "crit" header, or a claim missing or of the wrong type
	// (jti, htm, htu, iat).
	DPoPCheckMalformed DPoPCheck = "malformed"
	// DPoPCheckType: the header's typ is not dpop+jwt.
	DPoPCheckType DPoPCheck = "typ"
	// DPoPCheckAlgorithm: alg is not one of DPoPAlgorithms.
	DPoPCheckAlgorithm DPoPCheck = "alg"
	// DPoPCheckKey: the header's jwk is missing, holds private or symmetric
	// key material, or is a key that cannot verify alg.
	DPoPCheckKey DPoPCheck = "jwk"
	// DPoPCheckSignature: the signature does not verify with the jwk.
	DPoPCheckSignature DPoPCheck = "signature"
	// DPoPCheckMethod: htm is not the request's method.
	DPoPCheckMethod DPoPCheck = "htm"
	// DPoPCheckURL: htu is not the request's URL (RFC 9449 §4.3, see
	// CheckDPoPProof).
	DPoPCheckURL DPoPCheck = "htu"
	// DPoPCheckTime: iat is older than the maximum age, or in the future
	// beyond the leeway.
	DPoPCheckTime DPoPCheck = "iat"
	// DPoPCheckAccessTokenHash: ath is not the hash of the access token the
	// proof came with.
	DPoPCheckAccessTokenHash DPoPCheck = "ath"
	// DPoPCheckBinding: the access token's cnf.jkt is not the thumbprint of
	// the proof's key (the token is bound to another key).
	DPoPCheckBinding DPoPCheck = "cnf"
	// DPoPCheckReplay: the proof's jti was used before.
	DPoPCheckReplay DPoPCheck = "jti"
)

// DPoPProofError is the error of a refused DPoP proof. It wraps
// ErrInvalidDPoPProof; its message is safe to show to the client and never
// contains the proof.
type DPoPProofError struct {
	// Check is the check that failed.
	Check DPoPCheck
	// Description says what was wrong, in words.
	Description string
}

func (e *DPoPProofError) Error() string {
	return ErrInvalidDPoPProof.Error() + ": " + e.Description
}

func (e *DPoPProofError) Unwrap() error { return ErrInvalidDPoPProof }

func proofError(check DPoPCheck, description string) *DPoPProofError {
	return &DPoPProofError{Check: check, Description: description}
}

// DPoPProof is a DPoP proof that CheckDPoPProof accepted.
type DPoPProof struct {
	// ID is the proof's jti: the caller makes sure it is used once.
	ID string
	// IssuedAt is the proof's iat.
	IssuedAt time.Time
	// AccessTokenHash is the proof's ath, "" when it has none.
	AccessTokenHash string
	// Nonce is the proof's nonce, "" when it has none.
	Nonce string
	// Thumbprint is the RFC 7638 SHA-256 thumbprint of Key, base64url
	// without padding: the jkt of the cnf claim of a token bound to Key.
	Thumbprint string
	// Key is the public key of the proof's jwk header.
	Key crypto.PublicKey
}

// DPoPProofOptions are what CheckDPoPProof checks a proof against.
type DPoPProofOptions struct {
	// Method is the request's HTTP method; htm must equal it.
	Method string
	// URL is the absolute URL the request was sent to; htu must name the
	// same (query and fragment are ignored).
	URL string
	// AccessToken, when set, is the access token the proof came with: ath
	// must be its hash. Leave it empty at a token endpoint.
	AccessToken string
	// MaxAge is how old iat may be. Zero means DefaultDPoPProofMaxAge.
	MaxAge time.Duration
	// Leeway is how far in the future iat may be (clock skew). Zero means
	// DefaultLeeway.
	Leeway time.Duration
	// Now is the current time; zero means time.Now().
	Now time.Time
	// Thumbprint, when set, is the thumbprint the proof's key must have (the
	// cnf.jkt of the token it came with): a proof of another key is refused
	// (DPoPCheckBinding) before its signature is verified, so a stolen token
	// sent with one junk proof costs no signature verification.
	Thumbprint string
}

// dpopClaims are the claims of a DPoP proof (RFC 9449 §4.2). Their types are
// checked by encoding/json: a claim of another type makes the proof
// malformed.
type dpopClaims struct {
	ID       string           `json:"jti"`
	Method   string           `json:"htm"`
	URL      string           `json:"htu"`
	IssuedAt *jwt.NumericDate `json:"iat"`
	ATH      string           `json:"ath"`
	Nonce    string           `json:"nonce"`
}

// dpopClaims is a jwt.Claims for golang-jwt's parser, which runs no claim
// validation on it (CheckDPoPProof checks the claims itself).
func (dpopClaims) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (c dpopClaims) GetIssuedAt() (*jwt.NumericDate, error)     { return c.IssuedAt, nil }
func (dpopClaims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (dpopClaims) GetIssuer() (string, error)                   { return "", nil }
func (dpopClaims) GetSubject() (string, error)                  { return "", nil }
func (dpopClaims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// dpopParser parses proofs: compact form, strict base64url, pinned
// algorithms and the signature; the claims are checked by CheckDPoPProof.
// privateJWKMembers are the JWK members of private or symmetric keys (RFC 7518 §6).
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

var dpopParser = jwt.NewParser(jwt.WithValidMethods(dpopAlgorithms), jwt.WithStrictDecoding(), jwt.WithoutClaimsValidation())

// CheckDPoPProof checks a DPoP proof (the value of a DPoP header) as RFC
// 9449 §4.3 says, except that its jti was not used before, which only the
// caller can know (it keeps the jtis of the proofs it accepted until they
// are too old to be accepted again: IssuedAt plus the maximum age). It
// checks, in order: one JWS in compact form of at most 8 KiB; typ dpop+jwt;
// alg among DPoPAlgorithms; no crit; a jwk header holding a public key
// (never private or symmetric material) of the algorithm's type (P-256, RSA
// of 2048 to 4096 bits, Ed25519); the
// signature with that key; the claims jti (at most 256 characters), htm,
// htu and iat present; htm equal to o.Method; htu equal to o.URL as
// DPoPURLsEqual compares them; iat not older than o.MaxAge nor further in
// the future than o.Leeway; and, when o.AccessToken is set, ath equal to
// its SHA-256 hash (base64url). A refusal is a *DPoPProofError.
func CheckDPoPProof(proof string, o DPoPProofOptions) (*DPoPProof, error) {
	if len(proof) > maxDPoPProofSize {
		return nil, proofError(DPoPCheckMalformed, "proof too large")
	}
	var (
		claims dpopClaims
		jwk    *jose.JSONWebKey
		keyErr error
		called bool
	)
	token, err := dpopParser.ParseWithClaims(proof, &claims, func(t *jwt.Token) (any, error) {
		called = true
		jwk, keyErr = proofKey(t, o.Thumbprint)
		if keyErr != nil {
			return nil, keyErr
		}
		return jwk.Key, nil
	})
	switch {
	case err == nil:
	case keyErr != nil:
		return nil, keyErr
	case called: // the key was usable: only the signature can have failed
		return nil, proofError(DPoPCheckSignature, "the signature does not verify with the proof's jwk")
	case errors.Is(err, jwt.ErrTokenMalformed), token == nil, token.Header == nil:
		return nil, proofError(DPoPCheckMalformed, "not a JWS in compact form with JSON header and claims")
	default: // alg missing, unknown or not allowed
		return nil, proofError(DPoPCheckAlgorithm, "alg must be one of "+strings.Join(dpopAlgorithms, ", "))
	}
	if err := claims.check(o); err != nil {
		return nil, err
	}
	thumbprint, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil { // a key go-jose decoded always has one
		return nil, proofError(DPoPCheckKey, "the proof's jwk has no thumbprint")
	}
	return &DPoPProof{
		ID: claims.ID, IssuedAt: claims.IssuedAt.Time, AccessTokenHash: claims.ATH, Nonce: claims.Nonce,
		Thumbprint: base64.RawURLEncoding.EncodeToString(thumbprint), Key: jwk.Key,
	}, nil
}

// proofKey checks the header of a proof and returns its key: the keyfunc of
// CheckDPoPProof, which golang-jwt calls once the algorithm is known to be
// allowed.
func proofKey(t *jwt.Token, thumbprint string) (*jose.JSONWebKey, error) {
	if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, "dpop+jwt") {
		return nil, proofError(DPoPCheckType, "typ must be dpop+jwt")
	}
	if _, ok := t.Header["crit"]; ok {
		return nil, proofError(DPoPCheckMalformed, "unsupported critical header parameters")
	}
	raw, ok := t.Header["jwk"].(map[string]any)
	if !ok {
		return nil, proofError(DPoPCheckKey, "the header has no jwk object")
	}
	for _, member := range privateJWKMembers {
		// go-jose's IsPublic looks at "d" only: an RSA key with its primes and
		// no d would pass, published in every proof.
		if _, ok := raw[member]; ok {
			return nil, proofError(DPoPCheckKey, "the jwk must be a public key without private members")
		}
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, proofError(DPoPCheckKey, "malformed jwk")
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(b); err != nil {
		return nil, proofError(DPoPCheckKey, "malformed jwk")
	}
	if !jwk.IsPublic() {
		// go-jose decodes a JWK with private members ("d", …) or of kty oct
		// as a private or symmetric key.
		return nil, proofError(DPoPCheckKey, "the jwk must be a public key without private members")
	}
	if rsaKey, ok := jwk.Key.(*rsa.PublicKey); ok && (rsaKey.N.BitLen() > maxDPoPRSABits || rsaKey.E != 65537) {
		// A client chooses its key: a huge modulus or exponent would only cost
		// us time (the rule of the operator's private_key_jwt client keys too).
		return nil, proofError(DPoPCheckKey, "RSA keys of proofs are at most 4096 bits, with the exponent 65537")
	}
	if k := (&publicKey{alg: jwk.Algorithm, key: jwk.Key}); !usable(jwk.Key) || !k.accepts(t.Method.Alg()) {
		return nil, proofError(DPoPCheckKey, "the jwk is not a key for alg "+t.Method.Alg()+" (P-256, RSA of 2048 to 4096 bits, Ed25519)")
	}
	if thumbprint != "" {
		if tp, err := jwk.Thumbprint(crypto.SHA256); err != nil ||
			subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(tp)), []byte(thumbprint)) != 1 {
			return nil, proofError(DPoPCheckBinding, "the proof's key is not the key the token is bound to")
		}
	}
	return &jwk, nil
}

// check checks the claims of a proof whose signature verified.
func (c *dpopClaims) check(o DPoPProofOptions) error {
	switch {
	case c.ID == "" || c.Method == "" || c.URL == "" || c.IssuedAt == nil:
		return proofError(DPoPCheckMalformed, "jti, htm, htu and iat are required")
	case len(c.ID) > maxDPoPJTILength:
		return proofError(DPoPCheckMalformed, "jti too long")
	case c.Method != o.Method:
		return proofError(DPoPCheckMethod, "htm is not the request's method")
	case !DPoPURLsEqual(c.URL, o.URL):
		return proofError(DPoPCheckURL, "htu is not the request's URL")
	}
	now, maxAge, leeway := o.Now, o.MaxAge, o.Leeway
	if now.IsZero() {
		now = time.Now()
	}
	if maxAge <= 0 {
		maxAge = DefaultDPoPProofMaxAge
	}
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	switch iat := c.IssuedAt.Time; {
	case iat.Before(now.Add(-maxAge)):
		return proofError(DPoPCheckTime, "the proof is too old: make one for each request")
	case iat.After(now.Add(leeway)):
		return proofError(DPoPCheckTime, "the proof is issued in the future")
	}
	if o.AccessToken != "" {
		want := AccessTokenHash(o.AccessToken)
		if subtle.ConstantTimeCompare([]byte(c.ATH), []byte(want)) != 1 {
			return proofError(DPoPCheckAccessTokenHash, "ath is not the hash of the access token")
		}
	}
	return nil
}

// AccessTokenHash is the ath of a proof sent with accessToken: the
// base64url SHA-256 hash of its ASCII text (RFC 9449 §4.2).
func AccessTokenHash(accessToken string) string {
	h := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// DPoPURLsEqual reports whether a proof's htu names the URL a request was
// sent to, as RFC 9449 §4.3 compares them: query and fragment ignored, and
// after the normalisations of RFC 3986 §6.2.2 and §6.2.3: scheme and host
// case-insensitive, the scheme's default port the same as none, an empty
// path the same as "/", percent-encoded unreserved characters the same as
// the characters, and percent-encodings compared case-insensitively. Both
// must be absolute http or https URLs without user information; dot
// segments are not resolved (a proof for /a/../b does not name /b).
func DPoPURLsEqual(htu, requestURL string) bool {
	a, ok := normalizeHTU(htu)
	if !ok {
		return false
	}
	b, ok := normalizeHTU(requestURL)
	return ok && a == b
}

// normalizeHTU is u without query and fragment, normalised for comparison.
func normalizeHTU(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.Opaque != "" || u.Hostname() == "" {
		return "", false
	}
	if scheme := strings.ToLower(u.Scheme); scheme != "https" && scheme != "http" {
		return "", false
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return origin(u) + normalizePercent(path), true
}

// normalizePercent decodes the percent-encoded unreserved characters of an
// escaped path and upper-cases the hex digits of the other encodings (RFC
// 3986 §6.2.2.1 and §6.2.2.2). url.Parse has refused malformed encodings.
func normalizePercent(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+2 >= len(p) {
			b.WriteByte(p[i])
			continue
		}
		hex := strings.ToUpper(p[i+1 : i+3])
		var c byte
		for _, h := range []byte(hex) {
			c <<= 4
			switch {
			case h >= '0' && h <= '9':
				c |= h - '0'
			default:
				c |= h - 'A' + 10
			}
		}
		if unreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + hex)
		}
		i += 2
	}
	return b.String()
}

// unreserved reports whether c is an RFC 3986 unreserved character.
func unreserved(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// DPoPRequest is the request a DPoP-bound token came with.
type DPoPRequest struct {
	// Proof is the value of its DPoP header.
	Proof string
	// Method is its HTTP method.
	Method string
	// URL is the absolute URL the client sent it to (see
	// Config.ExternalURL); query and fragment are ignored.
	URL string
}

// VerifyDPoP checks a DPoP-bound access token presented with the DPoP
// scheme (RFC 9449 §7) and returns its claims. It checks the token as
// Verify does, except that it must be bound ("cnf" with "jkt"); then the
// proof as CheckDPoPProof does, against req, with ath the hash of rawToken,
// iat at most Config.DPoPProofMaxAge old and Config.Leeway ahead; then that
// the token's cnf.jkt is the proof key's thumbprint; last, that the proof
// was not used before (its jti is remembered until it is too old).
//
// A token refused is an error wrapping ErrInvalidToken (a bearer token is
// one: it has no key to prove); a proof refused, or one made with another
// key than the token is bound to, a *DPoPProofError wrapping
// ErrInvalidDPoPProof (Check DPoPCheckBinding for the other key,
// DPoPCheckReplay for a replay). ErrKeysUnavailable and
// ErrDPoPReplayCacheFull are server-side conditions, as with Verify.
func (v *Verifier) VerifyDPoP(ctx context.Context, rawToken string, req DPoPRequest) (*Claims, error) {
	claims, err := v.verify(ctx, rawToken)
	if err != nil {
		return nil, err
	}
	if claims.DPoPThumbprint == "" {
		return nil, errNotBound
	}
	now := v.cfg.Now()
	proof, err := CheckDPoPProof(req.Proof, DPoPProofOptions{
		Method: req.Method, URL: req.URL, AccessToken: rawToken,
		MaxAge: v.cfg.DPoPProofMaxAge, Leeway: v.cfg.Leeway, Now: now,
		Thumbprint: claims.DPoPThumbprint,
	})
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(proof.Thumbprint), []byte(claims.DPoPThumbprint)) != 1 {
		return nil, proofError(DPoPCheckBinding, "the proof's key is not the key the token is bound to")
	}
	// Last: only a proof that binds a valid token to this request is
	// remembered. A second later than the proof could be accepted.
	until := proof.IssuedAt.Add(v.cfg.DPoPProofMaxAge + time.Second)
	if err := v.proofs.firstUse(claims.ClientID, proof.Thumbprint, proof.ID, until, now); err != nil {
		return nil, err
	}
	return claims, nil
}

var errNotBound = reject("the token is not DPoP-bound: present it with the Bearer scheme")

// requestURL is the URL a request was sent to, as its DPoP proof's htu
// must name it: Config.ExternalURL followed by the request's path, or the
// request's own scheme, host and path.
func (v *Verifier) requestURL(r *http.Request) string {
	path := r.URL.EscapedPath()
	if e := v.external; e != nil {
		return e.Scheme + "://" + e.Host + strings.TrimSuffix(e.EscapedPath(), "/") + path
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + path
}
