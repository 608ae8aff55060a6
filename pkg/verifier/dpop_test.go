package verifier

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// The proofs of these tests are made by go-jose (a JOSE implementation independent
// of this package: EmbedJWK puts the public key in the header, as RFC 9449 asks), or
// crafted by hand where a test needs a header no library would write.

// clientKey is a client's DPoP key.
type clientKey struct {
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
	jkt  string
}

func newClientKey(t testing.TB) *clientKey {
	t.Helper()
	priv := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tp := must((&jose.JSONWebKey{Key: priv.Public()}).Thumbprint(crypto.SHA256))
	return &clientKey{priv: priv, alg: jose.ES256, jkt: enc.EncodeToString(tp)}
}

// jwk is the public JWK of k, as a header member.
func (k *clientKey) jwk() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(must(json.Marshal(jose.JSONWebKey{Key: k.priv.Public()})), &m)
	return m
}

// proof is a go-jose proof of k with claims (jti, htm, htu, iat, ath, …).
func (k *clientKey) proof(t testing.TB, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	return must(must(signer.Sign(must(json.Marshal(claims)))).CompactSerialize())
}

// jtis numbers the proofs made.
var jtis atomic.Int64

// proofClaims are valid claims of a proof for method to url at now with token.
func proofClaims(method, url string, now time.Time, token string) map[string]any {
	c := map[string]any{"jti": fmt.Sprintf("jti-%d", jtis.Add(1)), "htm": method, "htu": url, "iat": now.Unix()}
	if token != "" {
		c["ath"] = AccessTokenHash(token)
	}
	return c
}

func TestCheckDPoPProof(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	const url = "https://api.example/orders"
	key, other := newClientKey(t), newClientKey(t)
	valid := proofClaims("GET", url, now, "the-token")
	private := func() map[string]any {
		var m map[string]any
		_ = json.Unmarshal(must(json.Marshal(jose.JSONWebKey{Key: key.priv})), &m)
		return m
	}()
	header := func(changes map[string]any) map[string]any {
		return edit(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk()}, changes)
	}
	es256 := signWith(t, jwt.SigningMethodES256, key.priv)
	tests := []struct {
		name  string
		proof string
		check DPoPCheck // "" means accepted
	}{
		{"valid", key.proof(t, valid), ""},
		{"valid, typ in upper case", craft(t, header(map[string]any{"typ": "DPOP+JWT"}), valid, es256), ""},
		{"no typ", craft(t, header(map[string]any{"typ": nil}), valid, es256), DPoPCheckType},
		{"typ JWT", craft(t, header(map[string]any{"typ": "JWT"}), valid, es256), DPoPCheckType},
		{"alg none", craft(t, header(map[string]any{"alg": "none"}), valid, nil), DPoPCheckAlgorithm},
		{"HS256", craft(t, header(map[string]any{"alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": "c2VjcmV0"}}), valid,
			signWith(t, jwt.SigningMethodHS256, []byte("secret"))), DPoPCheckAlgorithm},
		{"ES384", craft(t, header(map[string]any{"alg": "ES384"}), valid, nil), DPoPCheckAlgorithm},
		{"private key in jwk", craft(t, header(map[string]any{"jwk": private}), valid, es256), DPoPCheckKey},
		{"no jwk", craft(t, header(map[string]any{"jwk": nil}), valid, es256), DPoPCheckKey},
		{"jwk a string", craft(t, header(map[string]any{"jwk": "key"}), valid, es256), DPoPCheckKey},
		{"EC jwk with RS256", craft(t, header(map[string]any{"alg": "RS256"}), valid, signWith(t, jwt.SigningMethodRS256, rsaKey())), DPoPCheckKey},
		{"RSA key of 1024 bits", rsaProof(t, 1024, valid), DPoPCheckKey},
		{"RSA key of 8192 bits", rsaProof(t, 8192, valid), DPoPCheckKey},
		{"RSA key of 2048 bits", rsaProof(t, 2048, valid), ""},
		{"crit", craft(t, header(map[string]any{"crit": []string{"exp"}}), valid, es256), DPoPCheckMalformed},
		{"signed by another key", craft(t, header(nil), valid, signWith(t, jwt.SigningMethodES256, other.priv)), DPoPCheckSignature},
		{"htm POST", key.proof(t, edit(valid, map[string]any{"htm": "POST"})), DPoPCheckMethod},
		{"htm get", key.proof(t, edit(valid, map[string]any{"htm": "get"})), DPoPCheckMethod},
		{"htu of another path", key.proof(t, edit(valid, map[string]any{"htu": "https://api.example/orders/1"})), DPoPCheckURL},
		{"htu of another host", key.proof(t, edit(valid, map[string]any{"htu": "https://evil.example/orders"})), DPoPCheckURL},
		{"htu with a query", key.proof(t, edit(valid, map[string]any{"htu": url + "?id=1"})), ""},
		{"iat 61s old", key.proof(t, edit(valid, map[string]any{"iat": now.Add(-61 * time.Second).Unix()})), DPoPCheckTime},
		{"iat 60s old", key.proof(t, edit(valid, map[string]any{"iat": now.Add(-60 * time.Second).Unix()})), ""},
		{"iat 31s ahead", key.proof(t, edit(valid, map[string]any{"iat": now.Add(31 * time.Second).Unix()})), DPoPCheckTime},
		{"no iat", key.proof(t, edit(valid, map[string]any{"iat": nil})), DPoPCheckMalformed},
		{"no jti", key.proof(t, edit(valid, map[string]any{"jti": nil})), DPoPCheckMalformed},
		{"long jti", key.proof(t, edit(valid, map[string]any{"jti": strings.Repeat("j", 257)})), DPoPCheckMalformed},
		{"htm a number", key.proof(t, edit(valid, map[string]any{"htm": 1})), DPoPCheckMalformed},
		{"ath of another token", key.proof(t, edit(valid, map[string]any{"ath": AccessTokenHash("another")})), DPoPCheckAccessTokenHash},
		{"no ath", key.proof(t, edit(valid, map[string]any{"ath": nil})), DPoPCheckAccessTokenHash},
		{"not a JWS", "not-a-proof", DPoPCheckMalformed},
		{"too large", key.proof(t, edit(valid, map[string]any{"pad": strings.Repeat("p", 9000)})), DPoPCheckMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CheckDPoPProof(tt.proof, DPoPProofOptions{Method: "GET", URL: url, AccessToken: "the-token", Now: now})
			if tt.check == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if strings.HasPrefix(tt.name, "RSA") == (p.Thumbprint == key.jkt) {
					t.Errorf("thumbprint %s, want %s", p.Thumbprint, key.jkt)
				}
				return
			}
			perr, ok := errors.AsType[*DPoPProofError](err)
			if !ok || perr.Check != tt.check || !errors.Is(err, ErrInvalidDPoPProof) {
				t.Fatalf("error %v, want a %s refusal", err, tt.check)
			}
		})
	}
}

// rsaProof is a PS256 proof: signed by the test RSA key for 2048 bits; for other
// sizes a jwk with a random modulus of that size and a junk signature, which the key
// check refuses before any signature is verified.
func rsaProof(t *testing.T, bits int, claims map[string]any) string {
	t.Helper()
	if bits == 2048 {
		return (&clientKey{priv: rsaKey(), alg: jose.PS256}).proof(t, claims)
	}
	n := make([]byte, bits/8)
	_, _ = rand.Read(n)
	n[0] |= 0x80
	n[len(n)-1] |= 1
	jwk := map[string]any{"kty": "RSA", "n": enc.EncodeToString(n), "e": "AQAB"}
	return craft(t, map[string]any{"typ": "dpop+jwt", "alg": "PS256", "jwk": jwk}, claims, func(string) []byte { return n })
}

func TestDPoPURLsEqual(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		htu, url string
		equal    bool
	}{
		{"https://api.example/orders", "https://api.example/orders", true},
		{"HTTPS://API.Example/orders", "https://api.example/orders", true},
		{"https://api.example:443/orders", "https://api.example/orders", true},
		{"http://api.example:80/orders", "http://api.example/orders", true},
		{"https://api.example", "https://api.example/", true},
		{"https://api.example/orders?x=1#f", "https://api.example/orders?y=2", true},
		{"https://api.example/%7Eme", "https://api.example/~me", true},
		{"https://api.example/a%2fb", "https://api.example/a%2Fb", true},
		{"https://[::1]:8443/t", "https://[::1]:8443/t", true},
		{"https://api.example/Orders", "https://api.example/orders", false},
		{"https://api.example/a%2Fb", "https://api.example/a/b", false},
		{"https://api.example/a/../orders", "https://api.example/orders", false},
		{"http://api.example/orders", "https://api.example/orders", false},
		{"https://api.example:8443/orders", "https://api.example/orders", false},
		{"https://api.example.evil/orders", "https://api.example/orders", false},
		{"https://user@api.example/orders", "https://api.example/orders", false},
		{"/orders", "https://api.example/orders", false},
		{"ftp://api.example/orders", "ftp://api.example/orders", false},
		{"", "", false},
	} {
		if got := DPoPURLsEqual(tt.htu, tt.url); got != tt.equal {
			t.Errorf("DPoPURLsEqual(%q, %q) = %v", tt.htu, tt.url, got)
		}
	}
}

// dpopAPI is a resource server protected by a Verifier's Middleware, and what it
// needs to mint tokens for it.
type dpopAPI struct {
	is    *testIssuer
	es    *testKey
	clock *fakeClock
	v     *Verifier
	h     http.Handler
}

func newDPoPAPI(t testing.TB, edit ...func(*Config)) *dpopAPI {
	t.Helper()
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	clock := newClock()
	v := newVerifier(t, is, clock, edit...)
	h := v.Middleware("orders:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := ClaimsFromContext(r.Context())
		_, _ = w.Write([]byte(c.DPoPThumbprint))
	}))
	return &dpopAPI{is: is, es: es, clock: clock, v: v, h: h}
}

// token mints a token bound to jkt ("" for a bearer token).
func (a *dpopAPI) token(t testing.TB, jkt string) string {
	c := claimsAt(a.is, a.clock.Now())
	if jkt != "" {
		c["cnf"] = map[string]any{"jkt": jkt}
	}
	return mint(t, a.es, c)
}

// call sends GET target with Authorization and DPoP headers.
func (a *dpopAPI) call(t *testing.T, target, authorization string, proofs ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(verifyCtx(t), http.MethodGet, target, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	return rec
}

// refused checks a 401 whose challenge of scheme carries error code.
func refused(t *testing.T, rec *httptest.ResponseRecorder, scheme, code string) {
	t.Helper()
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401 (%s)", rec.Code, rec.Body)
	}
	found := false
	for _, c := range rec.Header().Values("WWW-Authenticate") {
		if strings.HasPrefix(c, scheme+" ") && strings.Contains(c, `error="`+code+`"`) {
			found = true
		}
		if strings.HasPrefix(c, "DPoP ") && !strings.Contains(c, `algs="ES256 RS256 PS256 EdDSA"`) {
			t.Errorf("DPoP challenge %q without algs", c)
		}
	}
	if !found {
		t.Errorf("WWW-Authenticate %q, want a %s challenge with error %s", rec.Header().Values("WWW-Authenticate"), scheme, code)
	}
}

// TestMiddlewareDPoP: a DPoP-bound token is accepted only with a fresh proof of its
// key for this request; every other presentation is refused with RFC 9449 §7.1
// challenges.
func TestMiddlewareDPoP(t *testing.T) {
	a := newDPoPAPI(t)
	key, other := newClientKey(t), newClientKey(t)
	tok := a.token(t, key.jkt)
	const target = "http://api.example/orders"
	now := a.clock.Now()
	proof := func(changes map[string]any) string {
		return key.proof(t, edit(proofClaims("GET", target, now, tok), changes))
	}

	accepted := a.call(t, target+"?page=2", "DPoP "+tok, proof(nil))
	if accepted.Code != http.StatusOK || accepted.Body.String() != key.jkt {
		t.Fatalf("valid proof: %d %s", accepted.Code, accepted.Body)
	}
	replayed := proof(nil)
	if rec := a.call(t, target, "dpop "+tok, replayed); rec.Code != http.StatusOK {
		t.Fatalf("first use, lower-case scheme: %d %s", rec.Code, rec.Body)
	}

	tests := []struct {
		name, authorization string
		proofs              []string
		scheme, code        string
	}{
		{"bound token as Bearer", "Bearer " + tok, nil, "Bearer", "invalid_token"},
		{"bound token as Bearer, with a proof", "Bearer " + tok, []string{proof(nil)}, "Bearer", "invalid_token"},
		{"no proof", "DPoP " + tok, nil, "DPoP", "invalid_dpop_proof"},
		{"two proofs", "DPoP " + tok, []string{proof(nil), proof(nil)}, "DPoP", "invalid_dpop_proof"},
		{"proof of another key", "DPoP " + tok, []string{other.proof(t, proofClaims("GET", target, now, tok))}, "DPoP", "invalid_token"},
		{"wrong ath", "DPoP " + tok, []string{proof(map[string]any{"ath": AccessTokenHash("x")})}, "DPoP", "invalid_dpop_proof"},
		{"replayed proof", "DPoP " + tok, []string{replayed}, "DPoP", "invalid_dpop_proof"},
		{"wrong htm", "DPoP " + tok, []string{proof(map[string]any{"htm": "DELETE"})}, "DPoP", "invalid_dpop_proof"},
		{"wrong htu", "DPoP " + tok, []string{proof(map[string]any{"htu": "http://api.example/admin"})}, "DPoP", "invalid_dpop_proof"},
		{"old iat", "DPoP " + tok, []string{proof(map[string]any{"iat": now.Add(-2 * time.Minute).Unix()})}, "DPoP", "invalid_dpop_proof"},
		{"bearer token with the DPoP scheme", "DPoP " + a.token(t, ""), []string{proof(nil)}, "DPoP", "invalid_token"},
		{"malformed DPoP credentials", "DPoP", []string{proof(nil)}, "DPoP", "invalid_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := a.call(t, target, tt.authorization, tt.proofs...)
			refused(t, rec, tt.scheme, tt.code)
			if strings.Contains(rec.Body.String(), tok) {
				t.Error("the answer echoes the token")
			}
		})
	}

	// A bearer token is still accepted by default; no credentials get both challenges.
	if rec := a.call(t, target, "Bearer "+a.token(t, "")); rec.Code != http.StatusOK {
		t.Errorf("bearer token: %d %s", rec.Code, rec.Body)
	}
	rec := a.call(t, target, "")
	if got := rec.Header().Values("WWW-Authenticate"); rec.Code != 401 || len(got) != 2 ||
		got[0] != `Bearer realm="api://orders"` || got[1] != `DPoP realm="api://orders", algs="ES256 RS256 PS256 EdDSA"` {
		t.Errorf("no credentials: %d %q", rec.Code, got)
	}
}

// TestMiddlewareRequireDPoP: with RequireDPoP a bearer token is refused however
// valid, and only the DPoP challenge is sent.
func TestMiddlewareRequireDPoP(t *testing.T) {
	a := newDPoPAPI(t, func(c *Config) { c.RequireDPoP = true })
	rec := a.call(t, "http://api.example/orders", "Bearer "+a.token(t, ""))
	refused(t, rec, "DPoP", "invalid_token")
	if got := rec.Header().Values("WWW-Authenticate"); len(got) != 1 {
		t.Errorf("challenges %q, want DPoP alone", got)
	}
	refused(t, a.call(t, "http://api.example/orders", "Bearer"), "DPoP", "invalid_token")
	key := newClientKey(t)
	tok := a.token(t, key.jkt)
	if rec := a.call(t, "http://api.example/orders", "DPoP "+tok, key.proof(t, proofClaims("GET", "http://api.example/orders", a.clock.Now(), tok))); rec.Code != http.StatusOK {
		t.Errorf("DPoP-bound token: %d %s", rec.Code, rec.Body)
	}
}

// TestMiddlewareExternalURL: behind a proxy, htu names the public URL.
func TestMiddlewareExternalURL(t *testing.T) {
	a := newDPoPAPI(t, func(c *Config) { c.ExternalURL = "https://public.example/shop/" })
	key := newClientKey(t)
	tok := a.token(t, key.jkt)
	for htu, want := range map[string]int{"https://public.example/shop/orders": 200, "http://10.0.0.7:8080/orders": 401} {
		rec := a.call(t, "http://10.0.0.7:8080/orders", "DPoP "+tok, key.proof(t, proofClaims("GET", htu, a.clock.Now(), tok)))
		if rec.Code != want {
			t.Errorf("htu %s: %d, want %d (%s)", htu, rec.Code, want, rec.Body)
		}
	}
	if _, err := New(Config{Issuer: "https://i.example", Audience: "a", ExternalURL: "/shop"}); err == nil {
		t.Error("New accepted a relative ExternalURL")
	}
}

// TestDPoPReplayCacheBounds: one client fills at most its share of the proof cache
// and its reserve, then its proofs are refused (503, never accepted unremembered),
// while another client's are still accepted.
func TestDPoPReplayCacheBounds(t *testing.T) {
	a := newDPoPAPI(t, func(c *Config) { c.DPoPReplayCacheSize = 80 })
	key := newClientKey(t)
	const target = "http://api.example/orders"
	tokOf := func(client string) string {
		return mint(t, a.es, edit(claimsAt(a.is, a.clock.Now()), map[string]any{"client_id": client, "cnf": map[string]any{"jkt": key.jkt}}))
	}
	greedy, modest := tokOf("greedy"), tokOf("modest")
	send := func(tok string) int {
		return a.call(t, target, "DPoP "+tok, key.proof(t, proofClaims("GET", target, a.clock.Now(), tok))).Code
	}
	for i := range 80/32 + proofReservePerClient {
		if code := send(greedy); code != http.StatusOK {
			t.Fatalf("proof %d within the client's share: %d", i, code)
		}
	}
	rec := a.call(t, target, "DPoP "+greedy, key.proof(t, proofClaims("GET", target, a.clock.Now(), greedy)))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("beyond the share: %d %v, want 503 with Retry-After", rec.Code, rec.Header())
	}
	if code := send(modest); code != http.StatusOK {
		t.Errorf("another client: %d", code)
	}
	if n := a.v.proofs.size(); n > 80/32+proofReservePerClient+1 {
		t.Errorf("%d proofs remembered", n)
	}
	// Once the proofs are too old to be accepted, they are forgotten.
	a.clock.Advance(DefaultDPoPProofMaxAge + 2*time.Second + proofGCEvery)
	if code := send(greedy); code != http.StatusOK {
		t.Errorf("after expiry: %d", code)
	}
	if n := a.v.proofs.size(); n != 1 {
		t.Errorf("%d proofs remembered after expiry, want 1", n)
	}
}

// TestVerifyRefusesBoundTokens: Verify (the bearer path) refuses a token with cnf;
// VerifyDPoP refuses a bearer token.
func TestVerifyRefusesBoundTokens(t *testing.T) {
	a := newDPoPAPI(t)
	key := newClientKey(t)
	if _, err := a.v.Verify(verifyCtx(t), a.token(t, key.jkt)); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Verify of a bound token: %v", err)
	}
	bearer := a.token(t, "")
	_, err := a.v.VerifyDPoP(verifyCtx(t), bearer, DPoPRequest{Proof: key.proof(t, proofClaims("GET", "http://x/", a.clock.Now(), bearer)), Method: "GET", URL: "http://x/"})
	if !errors.Is(err, ErrInvalidToken) {
		t.Errorf("VerifyDPoP of a bearer token: %v", err)
	}
}

// TestDPoPInteroperability: proofs go-jose makes, with a key of each DPoP algorithm,
// admit a token bound to go-jose's thumbprint of that key.
func TestDPoPInteroperability(t *testing.T) {
	a := newDPoPAPI(t)
	const target = "http://api.example/orders"
	for alg, priv := range map[jose.SignatureAlgorithm]crypto.Signer{jose.ES256: ecKey(), jose.RS256: rsaKey(), jose.PS256: rsaKey(), jose.EdDSA: edKey()} {
		t.Run(string(alg), func(t *testing.T) {
			tp := must((&jose.JSONWebKey{Key: priv.Public()}).Thumbprint(crypto.SHA256))
			k := &clientKey{priv: priv, alg: alg, jkt: enc.EncodeToString(tp)}
			tok := a.token(t, k.jkt)
			rec := a.call(t, target, "DPoP "+tok, k.proof(t, proofClaims("GET", target, a.clock.Now(), tok)))
			if rec.Code != http.StatusOK || rec.Body.String() != k.jkt {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
		})
	}
}
