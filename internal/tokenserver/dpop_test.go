package tokenserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	jwtv5 "github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	clocktesting "k8s.io/utils/clock/testing"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// The DPoP proofs of these tests are assembled by hand (header and claims as JSON,
// signed by golang-jwt's signing methods), so a test can send any header a client
// could, and their expected thumbprints are computed from RFC 7638 by hand, not by
// the go-jose code the server uses.

const testTokenURL = "https://issuer.test" + TokenPath

// dpopKey is a client's DPoP key pair: ES256 on P-256.
type dpopKey struct {
	priv *ecdsa.PrivateKey
	// jwk is the public JWK (RFC 7518 §6.2), jkt its RFC 7638 thumbprint.
	jwk map[string]any
	jkt string
}

func newDPoPKey(tb testing.TB) *dpopKey {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), cryptorand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := priv.PublicKey.Bytes() // 0x04 || x || y
	if err != nil {
		tb.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	x, y := b64(raw[1:33]), b64(raw[33:])
	// RFC 7638 §3.2: the required members, in lexicographic order, no white space.
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	return &dpopKey{priv: priv, jwk: map[string]any{"kty": "EC", "crv": "P-256", "x": x, "y": y}, jkt: b64(sum[:])}
}

// proof is a proof of k for POST htu at now, edited by edit (header, claims).
func (k *dpopKey) proof(tb testing.TB, htu string, now time.Time, edit func(h, c map[string]any)) string {
	tb.Helper()
	h := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": k.jwk}
	c := map[string]any{"jti": rand.String(22), "htm": http.MethodPost, "htu": htu, "iat": now.Unix()}
	if edit != nil {
		edit(h, c)
	}
	return signJWS(tb, h, c, jwtv5.SigningMethodES256, k.priv)
}

// signJWS is the compact JWS of header and claims signed by method with key; no
// signature when method is nil.
func signJWS(tb testing.TB, header, claims map[string]any, method jwtv5.SigningMethod, key any) string {
	tb.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(header) + "." + enc(claims)
	if method == nil {
		return input + "."
	}
	sig, err := method.Sign(input, key)
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// withDPoP posts body to h with each proof as a DPoP header.
func withDPoP(h http.Handler, body string, proofs ...string) *httptest.ResponseRecorder {
	var header []string
	for _, p := range proofs {
		header = append(header, "DPoP", p)
	}
	return post(h, "application/json", body, header...)
}

// boundTo checks that tok is a DPoP-bound token answer for the key of thumbprint jkt,
// signed by the server's key, and returns its claims.
func boundTo(t *testing.T, rec *httptest.ResponseRecorder, keys *signing.Keyring, jkt string) map[string]any {
	t.Helper()
	tok := decodeOK(t, rec)
	if tok.TokenType != "DPoP" {
		t.Errorf("token_type = %q, want DPoP", tok.TokenType)
	}
	_, c := verify(t, tok.AccessToken, keys.Load().Set.Current().Private.Public())
	cnf, _ := c["cnf"].(map[string]any)
	if cnf["jkt"] != jkt {
		t.Errorf("cnf = %v, want jkt %s", c["cnf"], jkt)
	}
	return c
}

// TestDPoPBoundToken: a token request with a valid proof gets a DPoP token whose
// cnf.jkt is the proof key's thumbprint, whatever the client's authentication method;
// one without a proof gets a bearer token as before.
func TestDPoPBoundToken(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ns := w.namespace("dpop", nil)
	api := w.api("dpop", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	id := w.client(ns, "secret", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	pk := w.keyPairClient(t, ns, "signer", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}}, signing.ES256)
	w.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "robot"}})
	w.create(&oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "robot"}, Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{api},
		Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthServiceAccountToken, ServiceAccountName: "robot"}}})
	srv, keys := w.server("", signing.ES256, nil)
	h := srv.Handler()
	key := newDPoPKey(t)
	now := time.Now()

	bodies := map[string]string{
		"client_secret":    jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]}),
		"private_key_jwt":  assertion(pk.id, pk.assert(t, testTokenURL, now, nil)),
		"service_account":  assertion(ns+".robot", saToken(t, w, ns, "robot", []string{"https://issuer.test"}, time.Hour)),
		"form and Basic":   "grant_type=client_credentials",
		"upper-case htu":   jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]}),
		"htu with a query": jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]}),
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			htu := testTokenURL
			switch name {
			case "upper-case htu":
				htu = "HTTPS://ISSUER.test:443" + TokenPath
			case "htu with a query":
				htu = testTokenURL + "?x=1#frag"
			}
			r := httptest.NewRequest(http.MethodPost, TokenPath, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			if name == "form and Basic" {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.Header.Set("Authorization", basic(id, w.secrets[id]))
			}
			r.Header.Set("DPoP", key.proof(t, htu, now, nil))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			boundTo(t, rec, keys, key.jkt)
		})
	}

	// No proof: a bearer token, without cnf, as before DPoP existed.
	tok := decodeOK(t, post(h, "application/json", bodies["client_secret"]))
	if tok.TokenType != "Bearer" {
		t.Errorf("token_type = %q without a proof", tok.TokenType)
	}
	if _, c := verify(t, tok.AccessToken, keys.Load().Set.Current().Private.Public()); c["cnf"] != nil {
		t.Errorf("a bearer token with cnf %v", c["cnf"])
	}
}

// TestDPoPProofRefused: every proof RFC 9449 §4.3 refuses is answered 400
// invalid_dpop_proof, never with a bearer token, and its audit record says why.
func TestDPoPProofRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ns := w.namespace("dpop-refused", nil)
	api := w.api("dpop-refused", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	id := w.client(ns, "c", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	start := time.Now().Truncate(time.Second)
	srv, _ := w.server("", signing.ES256, clocktesting.NewFakePassiveClock(start))
	records := audited(t, srv, allAudit())
	h := srv.Handler()
	body := jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]})
	key, other := newDPoPKey(t), newDPoPKey(t)
	proof := func(edit func(h, c map[string]any)) string { return key.proof(t, testTokenURL, start, edit) }
	replayed := proof(nil)
	if rec := withDPoP(h, body, replayed); rec.Code != http.StatusOK {
		t.Fatalf("first use of the proof: %d %s", rec.Code, rec.Body)
	}
	private, err := json.Marshal(jose.JSONWebKey{Key: key.priv})
	if err != nil {
		t.Fatal(err)
	}
	var privateJWK map[string]any
	_ = json.Unmarshal(private, &privateJWK)

	tests := []struct {
		name   string
		proofs []string
		reason Reason
	}{
		{"no typ", []string{proof(func(h, _ map[string]any) { delete(h, "typ") })}, ReasonDPoPProofMalformed},
		{"typ JWT", []string{proof(func(h, _ map[string]any) { h["typ"] = "JWT" })}, ReasonDPoPProofMalformed},
		{"alg none", []string{signJWS(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk},
			map[string]any{"jti": "n", "htm": "POST", "htu": testTokenURL, "iat": start.Unix()}, nil, nil)}, ReasonDPoPProofAlgorithm},
		{"HS256", []string{signJWS(t, map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": "c2VjcmV0"}},
			map[string]any{"jti": "h", "htm": "POST", "htu": testTokenURL, "iat": start.Unix()}, jwtv5.SigningMethodHS256, []byte("secret"))}, ReasonDPoPProofAlgorithm},
		{"a private key in jwk", []string{proof(func(h, _ map[string]any) { h["jwk"] = privateJWK })}, ReasonDPoPProofKey},
		{"no jwk", []string{proof(func(h, _ map[string]any) { delete(h, "jwk") })}, ReasonDPoPProofKey},
		{"jwk of another key type than alg", []string{proof(func(h, _ map[string]any) { h["alg"] = "RS256" })}, ReasonDPoPProofKey},
		{"signed by another key", []string{other.proof(t, testTokenURL, start, func(h, _ map[string]any) { h["jwk"] = key.jwk })}, ReasonDPoPProofSignature},
		{"htm GET", []string{proof(func(_, c map[string]any) { c["htm"] = "GET" })}, ReasonDPoPProofMismatch},
		{"htu of another server", []string{proof(func(_, c map[string]any) { c["htu"] = "https://elsewhere.test" + TokenPath })}, ReasonDPoPProofMismatch},
		{"htu of another path", []string{proof(func(_, c map[string]any) { c["htu"] = "https://issuer.test/token" })}, ReasonDPoPProofMismatch},
		{"htu over http", []string{proof(func(_, c map[string]any) { c["htu"] = "http://issuer.test" + TokenPath })}, ReasonDPoPProofMismatch},
		{"iat too old", []string{proof(func(_, c map[string]any) { c["iat"] = start.Add(-61 * time.Second).Unix() })}, ReasonDPoPProofTime},
		{"iat in the future", []string{proof(func(_, c map[string]any) { c["iat"] = start.Add(time.Minute).Unix() })}, ReasonDPoPProofTime},
		{"no jti", []string{proof(func(_, c map[string]any) { delete(c, "jti") })}, ReasonDPoPProofMalformed},
		{"no iat", []string{proof(func(_, c map[string]any) { delete(c, "iat") })}, ReasonDPoPProofMalformed},
		{"htu a number", []string{proof(func(_, c map[string]any) { c["htu"] = 5 })}, ReasonDPoPProofMalformed},
		{"not a JWT", []string{"not-a-jwt"}, ReasonDPoPProofMalformed},
		{"too large", []string{proof(func(_, c map[string]any) { c["pad"] = strings.Repeat("x", 9000) })}, ReasonDPoPProofMalformed},
		{"replayed jti", []string{replayed}, ReasonDPoPProofReplayed},
		{"two DPoP headers", []string{proof(nil), proof(nil)}, ReasonDPoPProofMalformed},
		{"an empty DPoP header", []string{""}, ReasonDPoPProofMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := withDPoP(h, body, tt.proofs...)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", rec.Code, rec.Body)
			}
			var e struct{ Error, ErrorDescription string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error != "invalid_dpop_proof" {
				t.Errorf("body %s, want error invalid_dpop_proof", rec.Body)
			}
			if strings.Contains(rec.Body.String(), "access_token") {
				t.Error("a token in a refusal")
			}
			got := records()
			if last := got[len(got)-1]; last["reason"] != string(tt.reason) {
				t.Errorf("audit reason %v, want %s", last["reason"], tt.reason)
			}
		})
	}
}

// TestRequireDPoP: spec.requireDPoP of the client, or of the API, refuses a token
// request without a proof; the same request with a proof gets a bound token; other
// clients and APIs are unaffected.
func TestRequireDPoP(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ns := w.namespace("require-dpop", nil)
	plainAPI := w.api("plain", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	boundAPI := w.api("bound", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS(), RequireDPoP: true})
	strict := w.client(ns, "strict", oauthv1alpha1.OAuthClientSpec{Audiences: []string{plainAPI}, RequireDPoP: true})
	both := w.client(ns, "both", oauthv1alpha1.OAuthClientSpec{Audiences: []string{plainAPI, boundAPI}})
	srv, keys := w.server("", signing.ES256, nil)
	records := audited(t, srv, allAudit())
	h := srv.Handler()
	key := newDPoPKey(t)
	request := func(id, api string) string { // an API's audience is its name here
		return jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id], "audience": api})
	}

	for _, tc := range []struct{ name, id, api string }{
		{"client requires DPoP", strict, plainAPI},
		{"API requires DPoP", both, boundAPI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := post(h, "application/json", request(tc.id, tc.api))
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"invalid_dpop_proof"`) {
				t.Fatalf("without a proof: %d %s, want 400 invalid_dpop_proof", rec.Code, rec.Body)
			}
			if got := records(); got[len(got)-1]["reason"] != string(ReasonDPoPProofRequired) {
				t.Errorf("audit record %v", got[len(got)-1])
			}
			boundTo(t, withDPoP(h, request(tc.id, tc.api), key.proof(t, testTokenURL, time.Now(), nil)), keys, key.jkt)
		})
	}
	// The same client's tokens for an API that does not require DPoP stay bearer.
	if tok := decodeOK(t, post(h, "application/json", request(both, plainAPI))); tok.TokenType != "Bearer" {
		t.Errorf("token_type %q for an API without requireDPoP", tok.TokenType)
	}
}

// TestDPoPInteroperability: a proof made by go-jose, a JOSE implementation independent
// of the project (EmbedJWK puts the public key in the header, as RFC 9449 asks), gets a
// token bound to go-jose's own thumbprint of the key.
func TestDPoPInteroperability(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ns := w.namespace("dpop-interop", nil)
	api := w.api("dpop-interop", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	id := w.client(ns, "c", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}, RequireDPoP: true})
	srv, keys := w.server("", signing.ES256, nil)
	body := jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]})
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			priv := interopKey(t, alg)
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: priv},
				(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
			if err != nil {
				t.Fatal(err)
			}
			claims, _ := json.Marshal(map[string]any{"jti": rand.String(16), "htm": "POST", "htu": testTokenURL, "iat": time.Now().Unix()})
			jws, err := signer.Sign(claims)
			if err != nil {
				t.Fatal(err)
			}
			proof, err := jws.CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			tp, err := (&jose.JSONWebKey{Key: priv.Public()}).Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			boundTo(t, withDPoP(srv.Handler(), body, proof), keys, base64.RawURLEncoding.EncodeToString(tp))
		})
	}
}

// interopKey is a fresh private key for alg.
func interopKey(t *testing.T, alg jose.SignatureAlgorithm) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case jose.ES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), cryptorand.Reader)
	case jose.RS256, jose.PS256:
		k, err = rsa.GenerateKey(cryptorand.Reader, 2048)
	case jose.EdDSA:
		_, k, err = ed25519.GenerateKey(cryptorand.Reader)
	}
	if err != nil || k == nil {
		t.Fatalf("key for %s: %v", alg, err)
	}
	return k
}

// TestDPoPProofsOfUnauthenticatedRequestsCostNothing: a proof with a request that
// fails to authenticate is not checked and not remembered (the answer is the usual
// 401), so anonymous callers cannot fill the DPoP replay cache.
func TestDPoPProofsOfUnauthenticatedRequestsCostNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ns := w.namespace("dpop-anon", nil)
	api := w.api("dpop-anon", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	id := w.client(ns, "c", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	srv, _ := w.server("rateLimit: {failedAuthPerMinute: 0}\n", signing.ES256, nil)
	key := newDPoPKey(t)
	for i := range 200 {
		body := jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": "wrong"})
		if rec := withDPoP(srv.Handler(), body, key.proof(t, testTokenURL, time.Now(), nil)); rec.Code != http.StatusUnauthorized {
			t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	if n := srv.dpopReplay.size(); n != 0 {
		t.Errorf("%d proof ids remembered for unauthenticated requests", n)
	}
}

// TestMetadataListsDPoPAlgorithms: the metadata names the proof algorithms the
// endpoint accepts, asymmetric only.
func TestMetadataListsDPoPAlgorithms(t *testing.T) {
	t.Parallel()
	srv, _ := newWorld(t).server("", signing.ES256, nil)
	for _, path := range []string{MetadataPath, OIDCPath} {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var doc struct {
			Algs []string `json:"dpop_signing_alg_values_supported"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"ES256", "EdDSA", "RS256", "PS256"} {
			if !slices.Contains(doc.Algs, want) {
				t.Errorf("%s: dpop_signing_alg_values_supported %v lacks %s", path, doc.Algs, want)
			}
		}
		for _, alg := range doc.Algs {
			if alg == "none" || strings.HasPrefix(alg, "HS") {
				t.Errorf("%s lists %s", path, alg)
			}
		}
	}
}
