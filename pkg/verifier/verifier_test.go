package verifier

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestNewValidatesConfig(t *testing.T) {
	valid := Config{Issuer: "https://auth.example.com", Audience: testAudience}
	tests := []struct {
		name string
		edit func(*Config)
		want string // substring of the error; "" means success
	}{
		{"valid", func(*Config) {}, ""},
		{"explicit JWKS URL, non-URL issuer", func(c *Config) { c.Issuer, c.JWKSURL = "urn:issuer", "https://keys.example.com/jwks" }, ""},
		{"pinned algorithms", func(c *Config) { c.Algorithms = []string{"EdDSA", "ES256"} }, ""},
		{"missing issuer", func(c *Config) { c.Issuer = "" }, "Issuer is required"},
		{"missing audience", func(c *Config) { c.Audience = "" }, "Audience is required"},
		{"issuer not a URL for discovery", func(c *Config) { c.Issuer = "auth.example.com" }, "not an absolute http(s) URL"},
		{"bad JWKS URL", func(c *Config) { c.JWKSURL = "ftp://keys.example.com" }, "JWKSURL"},
		{"HS256", func(c *Config) { c.Algorithms = []string{"ES256", "HS256"} }, `unsupported algorithm "HS256"`},
		{"none", func(c *Config) { c.Algorithms = []string{"none"} }, `unsupported algorithm "none"`},
		{"negative leeway", func(c *Config) { c.Leeway = -time.Second }, "Leeway"},
		{"negative refresh interval", func(c *Config) { c.RefreshInterval = -time.Second }, "RefreshInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.edit(&cfg)
			v, err := New(cfg)
			if tt.want == "" {
				if err != nil || v == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestNewAppliesDefaultsWithoutNetwork(t *testing.T) {
	is := newIssuer(t, newKey("es-1", "ES256"))
	v, err := New(Config{Issuer: is.URL(), Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.cfg; got.Leeway != 30*time.Second || got.RefreshInterval != 30*time.Second ||
		got.HTTPClient == nil || got.HTTPClient.Timeout != 10*time.Second || got.Now == nil ||
		!slices.Equal(got.Algorithms, []string{"ES256", "RS256", "EdDSA"}) {
		t.Errorf("defaults not applied: %+v", got)
	}
	if n := is.metaHits.Load() + is.jwksHits.Load(); n != 0 {
		t.Errorf("New made %d requests, want none", n)
	}
}

func TestVerifyAcceptsEachAlgorithm(t *testing.T) {
	keys := []*testKey{newKey("es-1", "ES256"), newKey("rs-1", "RS256"), newKey("ed-1", "EdDSA")}
	is := newIssuer(t, keys...)
	clock := newClock()
	v := newVerifier(t, is, clock)
	for _, k := range keys {
		t.Run(k.alg, func(t *testing.T) {
			now := clock.Now()
			claims, err := v.Verify(verifyCtx(t), mint(t, k, claimsAt(is, now)))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := &Claims{
				Issuer: is.URL(), Subject: "client-1", Audience: []string{testAudience}, ClientID: "client-1",
				Scopes: []string{"orders:read", "orders:write"}, ID: "8d7a1c52-0d2e-4e0c-9a55-6c0f2b6f1d11",
				IssuedAt: now, NotBefore: now, ExpiresAt: now.Add(5 * time.Minute),
			}
			if claims.Issuer != want.Issuer || claims.Subject != want.Subject || !slices.Equal(claims.Audience, want.Audience) ||
				claims.ClientID != want.ClientID || !slices.Equal(claims.Scopes, want.Scopes) || claims.ID != want.ID ||
				!claims.IssuedAt.Equal(want.IssuedAt) || !claims.NotBefore.Equal(want.NotBefore) || !claims.ExpiresAt.Equal(want.ExpiresAt) {
				t.Errorf("claims = %+v, want %+v", claims, want)
			}
			if claims.Raw["client_id"] != "client-1" || claims.Raw["exp"] != float64(now.Add(5*time.Minute).Unix()) {
				t.Errorf("Raw = %v", claims.Raw)
			}
			if !claims.HasScope("orders:read") || claims.HasScope("orders") || claims.HasScope("admin") {
				t.Error("HasScope wrong")
			}
		})
	}
	if n := is.jwksHits.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1", n)
	}
}

func TestVerifyAcceptsVariants(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	clock := newClock()
	v := newVerifier(t, is, clock)
	now := clock.Now()
	base := claimsAt(is, now)
	esHeader := func(typ string) map[string]any { return map[string]any{"alg": "ES256", "kid": "es-1", "typ": typ} }

	tests := []struct {
		name  string
		token string
		check func(*Claims) bool
	}{
		{"audience array", mint(t, es, edit(base, map[string]any{"aud": []string{"other", testAudience}})),
			func(c *Claims) bool { return slices.Equal(c.Audience, []string{"other", testAudience}) }},
		{"typ application/at+jwt, any case", craft(t, esHeader("Application/AT+JWT"), base, signWith(t, jwt.SigningMethodES256, es.priv)), nil},
		{"typ AT+JWT", craft(t, esHeader("AT+JWT"), base, signWith(t, jwt.SigningMethodES256, es.priv)), nil},
		{"no nbf, no scope", mint(t, es, edit(base, map[string]any{"nbf": nil, "scope": nil})),
			func(c *Claims) bool { return c.NotBefore.IsZero() && len(c.Scopes) == 0 }},
		{"expired within leeway", mint(t, es, edit(base, map[string]any{"exp": now.Add(-29 * time.Second).Unix()})), nil},
		{"nbf in future within leeway", mint(t, es, edit(base, map[string]any{"nbf": now.Add(29 * time.Second).Unix()})), nil},
		{"iat in future within leeway", mint(t, es, edit(base, map[string]any{"iat": now.Add(29 * time.Second).Unix()})), nil},
		{"fractional dates", mint(t, es, edit(base, map[string]any{"iat": float64(now.Unix()) + 0.5})), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(verifyCtx(t), tt.token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tt.check != nil && !tt.check(c) {
				t.Errorf("unexpected claims %+v", c)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	es := newKey("es-1", "ES256")
	rs := newKey("rs-1", "RS256")
	ed := newKey("ed-1", "EdDSA")
	esNoAlg := freshECKey("es-noalg")
	esNoAlg.jwkAlg = ""
	rs384 := &testKey{kid: "rs-384", alg: "RS256", priv: rs.priv, jwkAlg: "RS384"} // RSA key published for another alg
	rsNoAlg := &testKey{kid: "rs-noalg", alg: "RS256", priv: rs.priv}
	edNoAlg := &testKey{kid: "ed-noalg", alg: "EdDSA", priv: ed.priv}
	other := freshECKey("es-1") // same kid, not the published key
	is := newIssuer(t, es, rs, ed, esNoAlg, rs384, rsNoAlg, edNoAlg)
	clock := newClock()
	v := newVerifier(t, is, clock)
	now := clock.Now()
	base := claimsAt(is, now)
	valid := mint(t, es, base)
	hdr := func(alg, kid string) map[string]any { return map[string]any{"alg": alg, "kid": kid, "typ": "at+jwt"} }
	esSign := signWith(t, jwt.SigningMethodES256, es.priv)
	rsSign := signWith(t, jwt.SigningMethodRS256, rs.priv)

	// HMAC keys an attacker could derive from the issuer's public key.
	esJWK := es.jwk()
	der := must(x509.MarshalPKIXPublicKey(es.priv.Public()))
	hmacWith := func(key []byte) func(string) []byte {
		return func(input string) []byte {
			m := hmac.New(sha256.New, key)
			m.Write([]byte(input))
			return m.Sum(nil)
		}
	}

	// tamper replaces the payload of a valid token.
	tamper := func(token string, claims map[string]any) string {
		parts := strings.Split(token, ".")
		parts[1] = enc.EncodeToString(must(json.Marshal(claims)))
		return strings.Join(parts, ".")
	}
	// nonCanonical sets a trailing (unused) bit of the signature's base64.
	nonCanonical := func(token string) string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		last := strings.IndexByte(alphabet, token[len(token)-1])
		return token[:len(token)-1] + string(alphabet[last^1])
	}

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"empty", "", "malformed token: not a JWS in compact form"},
		{"not compact", "abc.def", "malformed token: not a JWS in compact form"},
		{"JWE-like five parts", valid + ".x.y", "malformed token: not a JWS in compact form"},
		{"header not base64url", "!!." + strings.SplitN(valid, ".", 2)[1], "malformed token header"},
		{"header not an object", enc.EncodeToString([]byte("[1]")) + "." + strings.SplitN(valid, ".", 2)[1], "malformed token header"},
		{"too large", strings.Repeat("a", maxTokenSize+1), "token too large"},

		{"alg none", craft(t, hdr("none", "es-1"), base, nil), "algorithm not allowed"},
		{"alg missing", craft(t, map[string]any{"kid": "es-1", "typ": "at+jwt"}, base, esSign), "algorithm not allowed"},
		{"alg in other case", craft(t, hdr("es256", "es-1"), base, esSign), "algorithm not allowed"},
		{"alg key in other case", craft(t, map[string]any{"ALG": "ES256", "kid": "es-1", "typ": "at+jwt"}, base, esSign), "algorithm not allowed"},
		{"ES384", craft(t, hdr("ES384", "es-1"), base, esSign), "algorithm not allowed"},
		{"HS256 keyed with the public JWK", craft(t, hdr("HS256", "es-1"), base, hmacWith(esJWK)), "algorithm not allowed"},
		{"HS256 keyed with the public key DER", craft(t, hdr("HS256", "es-1"), base, hmacWith(der)), "algorithm not allowed"},
		{"HS256 keyed with the public key PEM", craft(t, hdr("HS256", "es-1"), base,
			hmacWith(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))), "algorithm not allowed"},

		{"RS256 header, EC kid", craft(t, hdr("RS256", "es-1"), base, rsSign), "algorithm does not match key"},
		{"RS256 header, EC kid without JWK alg", craft(t, hdr("RS256", "es-noalg"), base, rsSign), "algorithm does not match key"},
		{"EdDSA header, EC kid without JWK alg", craft(t, hdr("EdDSA", "es-noalg"), base,
			signWith(t, jwt.SigningMethodEdDSA, ed.priv)), "algorithm does not match key"},
		{"ES256 header, RSA kid", craft(t, hdr("ES256", "rs-1"), base, esSign), "algorithm does not match key"},
		{"ES256 header, RSA kid without JWK alg", craft(t, hdr("ES256", "rs-noalg"), base, esSign), "algorithm does not match key"},
		{"ES256 header, Ed25519 kid without JWK alg", craft(t, hdr("ES256", "ed-noalg"), base, esSign), "algorithm does not match key"},
		{"RS256 with RSA key published as RS384", craft(t, hdr("RS256", "rs-384"), base, rsSign), "algorithm does not match key"},

		{"typ JWT", craft(t, map[string]any{"alg": "ES256", "kid": "es-1", "typ": "JWT"}, base, esSign), "wrong token type: want at+jwt"},
		{"typ missing", craft(t, map[string]any{"alg": "ES256", "kid": "es-1"}, base, esSign), "wrong token type: want at+jwt"},
		{"crit header", craft(t, map[string]any{"alg": "ES256", "kid": "es-1", "typ": "at+jwt", "crit": []string{"exp"}, "exp": 1}, base, esSign),
			"unsupported critical header parameters"},
		{"kid missing", craft(t, map[string]any{"alg": "ES256", "typ": "at+jwt"}, base, esSign), "missing key id"},
		{"kid not a string", craft(t, map[string]any{"alg": "ES256", "kid": 1, "typ": "at+jwt"}, base, esSign), "missing key id"},

		{"signed by another key with the same kid", mint(t, other, base), "invalid signature"},
		{"payload tampered", tamper(valid, edit(base, map[string]any{"scope": "admin"})), "invalid signature"},
		{"empty signature", craft(t, hdr("ES256", "es-1"), base, nil), "invalid signature"},
		{"signature not base64url", valid[:strings.LastIndexByte(valid, '.')+1] + "***", "malformed token signature"},
		{"signature non-canonical base64url", nonCanonical(valid), "malformed token signature"},
		{"claims not an object", craft(t, hdr("ES256", "es-1"), nil, esSign), "malformed token claims"},

		{"wrong issuer", mint(t, es, edit(base, map[string]any{"iss": "https://evil.example.com"})), "wrong issuer"},
		{"issuer with trailing slash", mint(t, es, edit(base, map[string]any{"iss": is.URL() + "/"})), "wrong issuer"},
		{"issuer missing", mint(t, es, edit(base, map[string]any{"iss": nil})), "wrong issuer"},
		{"wrong audience", mint(t, es, edit(base, map[string]any{"aud": "api://billing"})), "wrong audience"},
		{"audience array without ours", mint(t, es, edit(base, map[string]any{"aud": []string{"a", "b"}})), "wrong audience"},
		{"audience missing", mint(t, es, edit(base, map[string]any{"aud": nil})), "wrong audience"},
		{"expired beyond leeway", mint(t, es, edit(base, map[string]any{"exp": now.Add(-31 * time.Second).Unix()})), "token expired"},
		{"expired exactly at leeway", mint(t, es, edit(base, map[string]any{"exp": now.Add(-30 * time.Second).Unix()})), "token expired"},
		{"exp missing", mint(t, es, edit(base, map[string]any{"exp": nil})), "missing or malformed exp claim"},
		{"exp a string", mint(t, es, edit(base, map[string]any{"exp": "tomorrow"})), "missing or malformed exp claim"},
		{"nbf in future", mint(t, es, edit(base, map[string]any{"nbf": now.Add(31 * time.Second).Unix()})), "token not yet valid"},
		{"nbf a string", mint(t, es, edit(base, map[string]any{"nbf": "now"})), "malformed nbf claim"},
		{"iat in future", mint(t, es, edit(base, map[string]any{"iat": now.Add(31 * time.Second).Unix()})), "token issued in the future"},
		{"iat missing", mint(t, es, edit(base, map[string]any{"iat": nil})), "missing or malformed iat claim"},
		{"sub missing", mint(t, es, edit(base, map[string]any{"sub": nil})), "missing sub claim"},
		{"sub empty", mint(t, es, edit(base, map[string]any{"sub": ""})), "missing sub claim"},
		{"client_id missing", mint(t, es, edit(base, map[string]any{"client_id": nil})), "missing client_id claim"},
		{"jti missing", mint(t, es, edit(base, map[string]any{"jti": nil})), "missing jti claim"},
		{"scope not a string", mint(t, es, edit(base, map[string]any{"scope": []string{"orders:read"}})), "malformed scope claim"},
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
			for _, part := range strings.Split(tt.token, ".") {
				if len(part) > 8 && strings.Contains(err.Error(), part) {
					t.Errorf("error %q contains part of the token", err)
				}
			}
		})
	}
	if n := is.jwksHits.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1", n)
	}
}

func TestVerifyPinnedAlgorithms(t *testing.T) {
	es, rs := newKey("es-1", "ES256"), newKey("rs-1", "RS256")
	is := newIssuer(t, es, rs)
	clock := newClock()
	v := newVerifier(t, is, clock, func(c *Config) { c.Algorithms = []string{"ES256"} })
	if _, err := v.Verify(verifyCtx(t), mint(t, es, claimsAt(is, clock.Now()))); err != nil {
		t.Fatalf("ES256: %v", err)
	}
	_, err := v.Verify(verifyCtx(t), mint(t, rs, claimsAt(is, clock.Now())))
	if !errors.Is(err, ErrInvalidToken) || err.Error() != "invalid token: algorithm not allowed" {
		t.Fatalf("RS256 with only ES256 pinned: %v", err)
	}
}

func TestVerifyCustomLeeway(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	clock := newClock()
	now := clock.Now()
	token := mint(t, es, edit(claimsAt(is, now), map[string]any{"exp": now.Add(-10 * time.Second).Unix()}))
	if _, err := newVerifier(t, is, clock).Verify(verifyCtx(t), token); err != nil {
		t.Fatalf("default 30s leeway: %v", err)
	}
	v := newVerifier(t, is, clock, func(c *Config) { c.Leeway = 5 * time.Second })
	if _, err := v.Verify(verifyCtx(t), token); err == nil || err.Error() != "invalid token: token expired" {
		t.Fatalf("5s leeway: %v, want token expired", err)
	}
}

func TestUnknownKidRefetchThrottled(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	clock := newClock()
	v := newVerifier(t, is, clock, func(c *Config) { c.RefreshInterval = time.Minute })
	forged := func(kid string) string {
		return mint(t, &testKey{kid: kid, alg: "ES256", priv: es.priv}, claimsAt(is, clock.Now()))
	}
	verify := func(token string, wantHits int32, wantErr string) {
		t.Helper()
		_, err := v.Verify(verifyCtx(t), token)
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("Verify: %v", err)
		case wantErr != "" && (err == nil || err.Error() != wantErr || !errors.Is(err, ErrInvalidToken)):
			t.Fatalf("Verify error = %v, want %q", err, wantErr)
		}
		if n := is.jwksHits.Load(); n != wantHits {
			t.Fatalf("JWKS fetched %d times, want %d", n, wantHits)
		}
	}

	verify(mint(t, es, claimsAt(is, clock.Now())), 1, "") // initial fetch
	clock.Advance(59 * time.Second)
	verify(forged("random-1"), 1, "invalid token: unknown key id") // within RefreshInterval of the last fetch
	clock.Advance(time.Second)
	verify(forged("random-2"), 2, "invalid token: unknown key id") // one refetch
	verify(forged("random-3"), 2, "invalid token: unknown key id") // throttled
	clock.Advance(59 * time.Second)
	verify(forged("random-4"), 2, "invalid token: unknown key id") // still throttled
	clock.Advance(time.Second)
	verify(forged("random-5"), 3, "invalid token: unknown key id") // allowed again
	verify(mint(t, es, claimsAt(is, clock.Now())), 3, "")          // known keys unaffected
}

func TestRotationPickedUpByUnknownKid(t *testing.T) {
	oldKey, newK := newKey("key-1", "ES256"), newKey("key-2", "EdDSA")
	is := newIssuer(t, oldKey)
	clock := newClock()
	v := newVerifier(t, is, clock)
	if _, err := v.Verify(verifyCtx(t), mint(t, oldKey, claimsAt(is, clock.Now()))); err != nil {
		t.Fatal(err)
	}
	is.setKeys(oldKey, newK) // the issuer publishes and starts using a new key
	clock.Advance(DefaultRefreshInterval)
	if _, err := v.Verify(verifyCtx(t), mint(t, newK, claimsAt(is, clock.Now()))); err != nil {
		t.Fatalf("token signed with the new key: %v", err)
	}
	if _, err := v.Verify(verifyCtx(t), mint(t, oldKey, claimsAt(is, clock.Now()))); err != nil {
		t.Fatalf("token signed with the old key: %v", err)
	}
	if n := is.jwksHits.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2", n)
	}
}

func TestCacheControlMaxAge(t *testing.T) {
	tests := []struct {
		name         string
		cacheControl string
		fresh        time.Duration // the JWKS is not refetched before this age…
	}{
		{"max-age", "public, max-age=120", 120 * time.Second},
		{"max-age below RefreshInterval is raised", "max-age=1", DefaultRefreshInterval},
		{"no-cache is RefreshInterval", "no-cache", DefaultRefreshInterval},
		{"no max-age means five minutes", "public", 5 * time.Minute},
		{"max-age above a day is capped", "max-age=864000", 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, rotated := newKey("es-1", "ES256"), newKey("ed-1", "EdDSA")
			is := newIssuer(t, es)
			is.set(func(is *testIssuer) { is.cacheControl = tt.cacheControl })
			clock := newClock()
			v := newVerifier(t, is, clock)
			verify := func(k *testKey) error {
				_, err := v.Verify(verifyCtx(t), mint(t, k, claimsAt(is, clock.Now())))
				waitFetch(t, v)
				return err
			}
			if err := verify(es); err != nil {
				t.Fatal(err)
			}
			is.setKeys(es, rotated)

			clock.Advance(tt.fresh - time.Second)
			if err := verify(es); err != nil || is.jwksHits.Load() != 1 {
				t.Fatalf("before max-age: err %v, %d fetches, want 1", err, is.jwksHits.Load())
			}
			clock.Advance(time.Second)
			// Stale: served from cache while refreshed in the background.
			if err := verify(es); err != nil || is.jwksHits.Load() != 2 {
				t.Fatalf("at max-age: err %v, %d fetches, want 2", err, is.jwksHits.Load())
			}
			// The refreshed set is in use without an unknown-kid refetch.
			if err := verify(rotated); err != nil || is.jwksHits.Load() != 2 {
				t.Fatalf("after refresh: err %v, %d fetches, want 2", err, is.jwksHits.Load())
			}
		})
	}
}

func TestMaxAge(t *testing.T) {
	tests := []struct {
		header []string
		want   time.Duration
	}{
		{nil, 5 * time.Minute},
		{[]string{"public, max-age=60"}, time.Minute},
		{[]string{"Max-Age=\"90\""}, 90 * time.Second},
		{[]string{"public", "max-age=30"}, 30 * time.Second},
		{[]string{"max-age=60, no-store"}, 0},
		{[]string{"max-age=abc"}, 5 * time.Minute},
		{[]string{"max-age=-5"}, 5 * time.Minute},
		{[]string{"max-age=99999999999999999"}, 24 * time.Hour},
	}
	for _, tt := range tests {
		if got := maxAge(tt.header); got != tt.want {
			t.Errorf("maxAge(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestJWKSDownKeepsCachedKeys(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	clock := newClock()
	v := newVerifier(t, is, clock)
	verify := func(k *testKey) error {
		_, err := v.Verify(verifyCtx(t), mint(t, k, claimsAt(is, clock.Now())))
		waitFetch(t, v)
		return err
	}
	if err := verify(es); err != nil {
		t.Fatal(err)
	}
	is.down.Store(true)
	for range 3 { // well past max-age: refreshes fail, cached key still used
		clock.Advance(10 * time.Minute)
		if err := verify(es); err != nil {
			t.Fatalf("cached key after failed refresh: %v", err)
		}
	}
	if n := is.jwksHits.Load(); n != 4 {
		t.Errorf("JWKS fetched %d times, want 4", n)
	}
	// A kid the failing issuer cannot confirm is a server problem, not a verdict.
	clock.Advance(time.Minute)
	err := verify(newKey("ed-1", "EdDSA"))
	if !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("unknown kid while JWKS down: %v, want ErrKeysUnavailable", err)
	}
	is.down.Store(false)
	clock.Advance(time.Minute)
	if err := verify(es); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestNoKeysIsUnavailable(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	is.down.Store(true)
	clock := newClock()
	v := newVerifier(t, is, clock)
	token := mint(t, es, claimsAt(is, clock.Now()))

	_, err := v.Verify(verifyCtx(t), token)
	if !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Verify with issuer down = %v, want ErrKeysUnavailable", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Error("error contains the token")
	}
	is.down.Store(false)
	clock.Advance(4 * time.Second) // no retry yet
	if _, err := v.Verify(verifyCtx(t), token); !errors.Is(err, ErrKeysUnavailable) || is.jwksHits.Load() != 1 {
		t.Fatalf("within retry delay: %v, %d fetches", err, is.jwksHits.Load())
	}
	clock.Advance(time.Second) // without keys, retried every 5s
	if _, err := v.Verify(verifyCtx(t), token); err != nil {
		t.Fatalf("after the issuer came up: %v", err)
	}
}

func TestEmptyJWKSIsUnavailable(t *testing.T) {
	is := newIssuer(t)
	clock := newClock()
	v := newVerifier(t, is, clock)
	_, err := v.Verify(verifyCtx(t), mint(t, newKey("es-1", "ES256"), claimsAt(is, clock.Now())))
	if !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("Verify = %v, want ErrKeysUnavailable", err)
	}
}

func TestDiscovery(t *testing.T) {
	es := newKey("es-1", "ES256")

	t.Run("jwks_uri from metadata", func(t *testing.T) {
		is := newIssuer(t, es)
		clock := newClock()
		v := newVerifier(t, is, clock)
		for range 2 {
			clock.Advance(time.Hour) // each Verify refetches the JWKS
			if _, err := v.Verify(verifyCtx(t), mint(t, es, claimsAt(is, clock.Now()))); err != nil {
				t.Fatal(err)
			}
			waitFetch(t, v)
		}
		if m, j := is.metaHits.Load(), is.jwksHits.Load(); m != 1 || j != 2 {
			t.Errorf("metadata fetched %d times (want 1), JWKS %d (want 2)", m, j)
		}
	})

	t.Run("explicit JWKSURL skips discovery", func(t *testing.T) {
		is := newIssuer(t, es)
		clock := newClock()
		v := newVerifier(t, is, clock, func(c *Config) { c.JWKSURL = is.URL() + "/.well-known/jwks.json" })
		if _, err := v.Verify(verifyCtx(t), mint(t, es, claimsAt(is, clock.Now()))); err != nil {
			t.Fatal(err)
		}
		if n := is.metaHits.Load(); n != 0 {
			t.Errorf("metadata fetched %d times, want 0", n)
		}
	})

	t.Run("issuer mismatch rejected", func(t *testing.T) {
		is := newIssuer(t, es)
		is.set(func(is *testIssuer) { is.metaIssuer = "https://evil.example.com" })
		clock := newClock()
		v := newVerifier(t, is, clock)
		_, err := v.Verify(verifyCtx(t), mint(t, es, claimsAt(is, clock.Now())))
		if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("Verify = %v, want ErrKeysUnavailable for an issuer mismatch", err)
		}
		if n := is.jwksHits.Load(); n != 0 {
			t.Errorf("JWKS of a mismatched issuer fetched %d times", n)
		}
	})
}

func TestConcurrentVerifySingleFlight(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	gate := make(chan struct{})
	is.set(func(is *testIssuer) { is.gate = gate })
	clock := newClock()
	v := newVerifier(t, is, clock)
	token := mint(t, es, claimsAt(is, clock.Now()))

	const n = 20
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := v.Verify(verifyCtx(t), token)
			errs <- err
		}()
	}
	// Wait for the first JWKS request to arrive, give the others time to
	// pile up behind it, then release it.
	deadline := time.Now().Add(5 * time.Second)
	for is.jwksHits.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(gate)
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := is.jwksHits.Load(); got != 1 {
		t.Errorf("JWKS fetched %d times by %d concurrent calls, want 1", got, n)
	}
}

func TestVerifyContextCanceledWhileFetching(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	gate := make(chan struct{})
	is.set(func(is *testIssuer) { is.gate = gate })
	clock := newClock()
	v := newVerifier(t, is, clock)
	token := mint(t, es, claimsAt(is, clock.Now()))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := v.Verify(ctx, token)
	if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Verify = %v, want ErrKeysUnavailable and DeadlineExceeded", err)
	}
	close(gate) // the shared fetch was not cancelled with the caller and completes
	waitFetch(t, v)
	if _, err := v.Verify(verifyCtx(t), token); err != nil || is.jwksHits.Load() != 1 {
		t.Fatalf("Verify after fetch = %v, %d fetches", err, is.jwksHits.Load())
	}
}

func TestParseJWKS(t *testing.T) {
	es, rs, ed := newKey("es-1", "ES256"), newKey("rs-1", "RS256"), newKey("ed-1", "EdDSA")
	weak := &testKey{kid: "rs-weak", alg: "RS256", priv: must(rsa.GenerateKey(rand.Reader, 1024)), jwkAlg: "RS256"}
	p384 := &testKey{kid: "es-384", alg: "ES384", priv: must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)), jwkAlg: "ES384"}
	encKey := json.RawMessage(strings.Replace(string(freshECKey("es-enc").jwk()), `"use":"sig"`, `"use":"enc"`, 1))
	noUse := json.RawMessage(strings.Replace(string(freshECKey("es-nouse").jwk()), `"use":"sig",`, "", 1))
	dup := freshECKey("es-1").jwk()
	doc := must(json.Marshal(map[string]any{"keys": []json.RawMessage{
		es.jwk(), rs.jwk(), ed.jwk(), weak.jwk(), p384.jwk(), encKey, noUse, dup,
		json.RawMessage(`{"kty":"oct","kid":"hmac","k":"c2VjcmV0"}`),
		json.RawMessage(`{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","kid":"bad-point"}`),
		json.RawMessage(`{"kty":"OKP","crv":"X25519","x":"AAAA","kid":"x25519"}`),
		json.RawMessage(`{"kty":"RSA","n":"AQAB","e":"AQAB"}`),
		json.RawMessage(`{"kty":"RSA","kid":7}`),
		json.RawMessage(`"not an object"`),
	}}))
	keys, err := parseJWKS(doc)
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(maps.Keys(keys))
	if want := []string{"ed-1", "es-1", "es-nouse", "rs-1"}; !slices.Equal(got, want) {
		t.Errorf("usable kids = %v, want %v", got, want)
	}
	if k := keys["es-1"]; k == nil || !k.key.(*ecdsa.PublicKey).Equal(es.priv.Public()) {
		t.Error("duplicate kid: want the first key")
	}
	for _, bad := range []string{`[]`, `{}`, `{"keys":{}}`, `nope`} {
		if _, err := parseJWKS([]byte(bad)); err == nil {
			t.Errorf("parseJWKS(%s) succeeded", bad)
		}
	}
}
