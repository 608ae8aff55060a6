package verifier

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestVerifyRejectionReasons covers the mapping of golang-jwt's parser and
// validator errors to this package's reasons beyond TestVerifyRejects: the
// cases the libraries report differently from a single failed check.
func TestVerifyRejectionReasons(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	clock := newClock()
	v := newVerifier(t, is, clock)
	now := clock.Now()
	base := claimsAt(is, now)
	esSign := signWith(t, jwt.SigningMethodES256, es.priv)
	expired := now.Add(-time.Hour).Unix()

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"header JSON null", enc.EncodeToString([]byte("null")) + "." + enc.EncodeToString(must(json.Marshal(base))) + ".", "malformed token header"},
		// Decoded before the signature is checked (golang-jwt's order).
		{"claims not JSON", enc.EncodeToString(must(json.Marshal(map[string]any{"alg": "ES256", "kid": "es-1", "typ": "at+jwt"}))) + "." +
			enc.EncodeToString([]byte("{")) + ".", "malformed token claims"},
		{"alg not a string", craft(t, map[string]any{"alg": 256, "kid": "es-1", "typ": "at+jwt"}, base, esSign), "algorithm not allowed"},
		{"audience empty string", mint(t, es, edit(base, map[string]any{"aud": ""})), "wrong audience"},
		{"audience empty array", mint(t, es, edit(base, map[string]any{"aud": []string{}})), "wrong audience"},
		{"audience not strings", mint(t, es, edit(base, map[string]any{"aud": []any{1}})), "wrong audience"},
		{"issuer not a string", mint(t, es, edit(base, map[string]any{"iss": 1})), "wrong issuer"},
		{"iat a string", mint(t, es, edit(base, map[string]any{"iat": "now"})), "missing or malformed iat claim"},
		{"client_id not a string", mint(t, es, edit(base, map[string]any{"client_id": 1})), "missing client_id claim"},

		// Several failed checks: the first in Verify's documented order is reported.
		{"expired and wrong issuer", mint(t, es, edit(base, map[string]any{"exp": expired, "iss": "https://evil.example.com"})), "wrong issuer"},
		{"expired and wrong audience", mint(t, es, edit(base, map[string]any{"exp": expired, "aud": "api://billing"})), "wrong audience"},
		{"expired and not yet valid", mint(t, es, edit(base, map[string]any{"exp": expired, "nbf": now.Add(time.Hour).Unix()})), "token expired"},
		{"not yet valid and issued in the future", mint(t, es, edit(base, map[string]any{
			"nbf": now.Add(time.Hour).Unix(), "iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()})), "token not yet valid"},
		{"issued in the future and no sub", mint(t, es, edit(base, map[string]any{"iat": now.Add(time.Hour).Unix(), "sub": nil})), "token issued in the future"},
		{"expired and no jti", mint(t, es, edit(base, map[string]any{"exp": expired, "jti": nil})), "token expired"},
		{"no client_id and no jti", mint(t, es, edit(base, map[string]any{"client_id": nil, "jti": nil})), "missing client_id claim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims, err := v.Verify(verifyCtx(t), tt.token)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", claims)
			}
			if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrKeysUnavailable) {
				t.Errorf("error %v does not wrap (only) ErrInvalidToken", err)
			}
			if want := "invalid token: " + tt.reason; err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
		})
	}
}
