package tokenserver

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// shop is the scenario of the handler tests.
type shop struct {
	*world
	backOffice, storefront string // OAuthAPI names
	storefrontAud          string // the storefront API's audience (a URI)
	erp, multi, tenant     string // client ids
	disabled, noSecret     string
}

func newShop(t *testing.T) *shop {
	w := newWorld(t)
	s := &shop{world: w}
	label := "oauth.operator.dev/back-office-" + w.suffix
	ns := w.namespace("shop", map[string]string{label: "allowed"})
	other := w.namespace("other", nil)
	s.backOffice = w.api("back-office", oauthv1alpha1.OAuthAPISpec{
		Scopes: []oauthv1alpha1.Scope{"users:read", "users:write"},
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{
			From:     oauthv1alpha1.NamespacesFromSelector,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "allowed"}},
		},
	})
	s.storefrontAud = "https://storefront-" + w.suffix + ".example/api"
	s.storefront = w.api("storefront", oauthv1alpha1.OAuthAPISpec{
		Audience: s.storefrontAud, Scopes: []oauthv1alpha1.Scope{"catalog:read"},
		AccessTokenTTL: dur("2h"), AllowedNamespaces: allNS(),
	})
	s.erp = w.client(ns, "erp-sync", oauthv1alpha1.OAuthClientSpec{Audiences: []string{s.backOffice}, Scopes: []oauthv1alpha1.Scope{"users:read"}})
	s.multi = w.client(ns, "multi", oauthv1alpha1.OAuthClientSpec{
		Audiences: []string{s.backOffice, s.storefront},
		Scopes:    []oauthv1alpha1.Scope{"users:read", "catalog:read"}, AccessTokenTTL: dur("30m"),
	})
	s.tenant = w.client(other, "tenant", oauthv1alpha1.OAuthClientSpec{Audiences: []string{s.backOffice}})
	s.disabled = w.client(ns, "off", oauthv1alpha1.OAuthClientSpec{Audiences: []string{s.storefront}, Disabled: true})
	// A client whose Secret carries the label but no controller reference: not its own.
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orphan"}, Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{s.storefront}}}
	w.create(oc)
	w.create(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orphan", Labels: map[string]string{oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue}},
		StringData: map[string]string{"client_secret": "orphan-secret-orphan-secret-orphan-secret-0"},
	})
	s.noSecret = oc.ClientID()
	w.secrets[s.noSecret] = "orphan-secret-orphan-secret-orphan-secret-0"
	return s
}

func jsonBody(params map[string]string) string {
	b, _ := json.Marshal(params)
	return string(b)
}

func post(h http.Handler, contentType, body string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, TokenPath, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

type tokenJSON struct {
	AccessToken string  `json:"access_token"`
	TokenType   string  `json:"token_type"`
	ExpiresIn   int64   `json:"expires_in"`
	Scope       *string `json:"scope"`
}

func decodeOK(t *testing.T, rec *httptest.ResponseRecorder) tokenJSON {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, body %s", rec.Code, rec.Body)
	}
	assertNoStore(t, rec)
	var tok tokenJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &tok); err != nil {
		t.Fatalf("decode %s: %v", rec.Body, err)
	}
	return tok
}

func assertNoStore(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if got := rec.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if got := rec.Header().Get("Pragma"); got != "no-cache" {
		t.Errorf("Pragma = %q, want no-cache", got)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
}

// verify checks a token's signature with go-jose (independent of the project's code)
// against the public key, and returns header and claims.
func verify(t *testing.T, token string, pub crypto.PublicKey) (jose.Header, map[string]any) {
	t.Helper()
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	var c map[string]any
	if err := parsed.Claims(pub, &c); err != nil {
		t.Fatalf("verify token: %v", err)
	}
	return parsed.Headers[0], c
}

func TestTokenJSONBody(t *testing.T) {
	s := newShop(t)
	now := time.Unix(1_800_000_000, 0)
	srv, keys := s.server("", signing.ES256, clocktesting.NewFakePassiveClock(now))
	rec := post(srv.Handler(), "application/json", jsonBody(map[string]string{
		"grant_type": "client_credentials", "client_id": s.erp, "client_secret": s.secrets[s.erp],
	}))
	tok := decodeOK(t, rec)
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 3600 {
		t.Errorf("token_type %q expires_in %d, want Bearer 3600", tok.TokenType, tok.ExpiresIn)
	}
	if tok.Scope == nil || *tok.Scope != "users:read" {
		t.Errorf("scope = %v, want users:read (granted without being requested)", tok.Scope)
	}
	hdr, c := verify(t, tok.AccessToken, keys.Load().Set.Current().Private.Public())
	if hdr.ExtraHeaders["typ"] != "at+jwt" || hdr.Algorithm != "ES256" || hdr.KeyID != keys.Load().Signer.KeyID() {
		t.Errorf("header = %+v", hdr)
	}
	want := map[string]any{
		"iss": "https://issuer.test", "sub": s.erp, "client_id": s.erp, "aud": s.backOffice,
		"scope": "users:read", "iat": float64(now.Unix()), "nbf": float64(now.Unix()), "exp": float64(now.Unix() + 3600),
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("claim %s = %v, want %v", k, c[k], v)
		}
	}
	if jti, _ := c["jti"].(string); len(jti) < 22 {
		t.Errorf("jti %q is shorter than 128 bits", jti)
	}
	// A second token has a new jti.
	tok2 := decodeOK(t, post(srv.Handler(), "application/json", jsonBody(map[string]string{
		"grant_type": "client_credentials", "client_id": s.erp, "client_secret": s.secrets[s.erp],
	})))
	_, c2 := verify(t, tok2.AccessToken, keys.Load().Set.Current().Private.Public())
	if c2["jti"] == c["jti"] {
		t.Error("two tokens share a jti")
	}
}

func TestTokenFormAndBasic(t *testing.T) {
	s := newShop(t)
	srv, keys := s.server("", signing.EdDSA, nil)
	pub := keys.Load().Set.Current().Private.Public()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {s.erp}, "client_secret": {s.secrets[s.erp]}, "scope": {"users:read"}}
	tok := decodeOK(t, post(srv.Handler(), "application/x-www-form-urlencoded", form.Encode()))
	if tok.Scope != nil {
		t.Errorf("scope %q returned although it equals the request", *tok.Scope)
	}
	_, c := verify(t, tok.AccessToken, pub)
	if c["sub"] != s.erp {
		t.Errorf("sub = %v", c["sub"])
	}

	tok = decodeOK(t, post(srv.Handler(), "application/x-www-form-urlencoded; charset=utf-8", "grant_type=client_credentials",
		"Authorization", basic(s.erp, s.secrets[s.erp])))
	verify(t, tok.AccessToken, pub)
	// JSON body with Basic, and client_id repeated in the body (same value) is fine.
	tok = decodeOK(t, post(srv.Handler(), "application/json", jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": s.erp}),
		"Authorization", basic(s.erp, s.secrets[s.erp])))
	verify(t, tok.AccessToken, pub)
	// Empty client_id and client_secret parameters next to Basic count as absent (RFC
	// 6749 §2.3.1, §3.1), in either body format.
	for _, r := range []struct{ contentType, body string }{
		{"application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=&client_secret="},
		{"application/json", `{"grant_type":"client_credentials","client_id":"","client_secret":""}`},
	} {
		tok = decodeOK(t, post(srv.Handler(), r.contentType, r.body, "Authorization", basic(s.erp, s.secrets[s.erp])))
		verify(t, tok.AccessToken, pub)
	}
}

func TestTokenAudienceScopeAndLifetime(t *testing.T) {
	s := newShop(t)
	srv, keys := s.server("tokens: {maxTTL: 90m}", signing.RS256, nil)
	pub := keys.Load().Set.Current().Private.Public()
	tests := []struct {
		name            string
		params          map[string]string
		wantAud         string
		wantTTL         int64
		wantScope       string
		wantScopeAnswer bool
	}{
		// The multi client shortens to 30m whatever the API says.
		{"audience by value", map[string]string{"audience": s.backOffice}, s.backOffice, 1800, "users:read", true},
		{"resource URI", map[string]string{"resource": s.storefrontAud}, s.storefrontAud, 1800, "catalog:read", true},
		{"requested scope", map[string]string{"audience": s.storefrontAud, "scope": "catalog:read"}, s.storefrontAud, 1800, "catalog:read", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := map[string]string{"grant_type": "client_credentials", "client_id": s.multi, "client_secret": s.secrets[s.multi]}
			for k, v := range tt.params {
				p[k] = v
			}
			tok := decodeOK(t, post(srv.Handler(), "application/json", jsonBody(p)))
			_, c := verify(t, tok.AccessToken, pub)
			if c["aud"] != tt.wantAud || c["scope"] != tt.wantScope {
				t.Errorf("aud %v scope %v, want %v %v", c["aud"], c["scope"], tt.wantAud, tt.wantScope)
			}
			if tok.ExpiresIn != tt.wantTTL || int64(c["exp"].(float64)-c["iat"].(float64)) != tt.wantTTL {
				t.Errorf("expires_in %d exp-iat %v, want %d", tok.ExpiresIn, c["exp"].(float64)-c["iat"].(float64), tt.wantTTL)
			}
			if (tok.Scope != nil) != tt.wantScopeAnswer {
				t.Errorf("scope in answer = %v, want present=%v", tok.Scope, tt.wantScopeAnswer)
			}
		})
	}
}

func TestTokenLifetimeRules(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("ttl", nil)
	api2h := w.api("two-hours", oauthv1alpha1.OAuthAPISpec{AccessTokenTTL: dur("2h"), AllowedNamespaces: allNS()})
	apiDefault := w.api("default", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	api10h := w.api("ten-hours", oauthv1alpha1.OAuthAPISpec{AccessTokenTTL: dur("10h"), AllowedNamespaces: allNS()})
	tests := []struct {
		name      string
		api       string
		clientTTL *metav1.Duration
		want      int64
	}{
		{"server default", apiDefault, nil, 3600},
		{"API overrides the default", api2h, nil, 7200},
		{"client shortens", api2h, dur("15m"), 900},
		{"client never lengthens", api2h, dur("5h"), 7200},
		{"client shortens the default", apiDefault, dur("90s"), 90},
		{"capped by the server maximum", api10h, nil, 4 * 3600},
		{"fractions truncated", apiDefault, dur("61500ms"), 61},
	}
	srv, _ := w.server("tokens: {maxTTL: 4h}", signing.ES256, nil)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := w.client(ns, "c"+string(rune('a'+i)), oauthv1alpha1.OAuthClientSpec{Audiences: []string{tt.api}, AccessTokenTTL: tt.clientTTL})
			tok := decodeOK(t, post(srv.Handler(), "application/json", jsonBody(map[string]string{
				"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]})))
			if tok.ExpiresIn != tt.want {
				t.Errorf("expires_in = %d, want %d", tok.ExpiresIn, tt.want)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	s := newShop(t)
	srv, _ := s.server("tokenServer: {maxBodyBytes: 1024}", signing.ES256, nil)
	ok := func(extra map[string]string) string {
		p := map[string]string{"grant_type": "client_credentials", "client_id": s.erp, "client_secret": s.secrets[s.erp]}
		for k, v := range extra {
			if v == "" {
				delete(p, k)
			} else {
				p[k] = v
			}
		}
		return jsonBody(p)
	}
	const js, form = "application/json", "application/x-www-form-urlencoded"
	tests := []struct {
		name        string
		contentType string
		body        string
		header      []string
		status      int
		code        string
	}{
		{"no content type", "", ok(nil), nil, 400, "invalid_request"},
		{"text body", "text/plain", ok(nil), nil, 400, "invalid_request"},
		{"malformed JSON", js, `{"grant_type": "client_credentials",`, nil, 400, "invalid_request"},
		{"JSON array", js, `[{"grant_type": "client_credentials"}]`, nil, 400, "invalid_request"},
		{"trailing data", js, ok(nil) + `{}`, nil, 400, "invalid_request"},
		{"number value", js, `{"grant_type": "client_credentials", "client_id": 5, "client_secret": "x"}`, nil, 400, "invalid_request"},
		{"repeated JSON parameter", js, `{"grant_type": "client_credentials", "client_id": "a.b", "client_id": "c.d", "client_secret": "x"}`, nil, 400, "invalid_request"},
		{"repeated form parameter", form, "grant_type=client_credentials&client_id=a.b&client_id=c.d&client_secret=x", nil, 400, "invalid_request"},
		{"missing grant_type", js, ok(map[string]string{"grant_type": ""}), nil, 400, "invalid_request"},
		{"password grant", js, ok(map[string]string{"grant_type": "password"}), nil, 400, "unsupported_grant_type"},
		{"authorization_code grant", form, "grant_type=authorization_code&code=x", nil, 400, "unsupported_grant_type"},
		{"no credentials", js, `{"grant_type": "client_credentials"}`, nil, 401, "invalid_client"},
		{"wrong secret", js, ok(map[string]string{"client_secret": "wrong"}), nil, 401, "invalid_client"},
		{"unknown client", js, ok(map[string]string{"client_id": "nowhere.nobody"}), nil, 401, "invalid_client"},
		{"client id without namespace", js, ok(map[string]string{"client_id": "erp-sync"}), nil, 401, "invalid_client"},
		{"disabled client", js, jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": s.disabled, "client_secret": s.secrets[s.disabled]}), nil, 401, "invalid_client"},
		{"Secret not controlled by the client", js, jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": s.noSecret, "client_secret": s.secrets[s.noSecret]}), nil, 401, "invalid_client"},
		{"Basic and body secret", js, ok(nil), []string{"Authorization", basic(s.erp, s.secrets[s.erp])}, 400, "invalid_request"},
		{"Basic with another client_id in body", form, "grant_type=client_credentials&client_id=x.y", []string{"Authorization", basic(s.erp, s.secrets[s.erp])}, 400, "invalid_request"},
		{"malformed Basic", form, "grant_type=client_credentials", []string{"Authorization", "Basic !!!"}, 401, "invalid_client"},
		{"Bearer instead of Basic", form, "grant_type=client_credentials", []string{"Authorization", "Bearer abc"}, 401, "invalid_client"},
		{"wrong Basic secret", form, "grant_type=client_credentials", []string{"Authorization", basic(s.erp, "nope")}, 401, "invalid_client"},
		{"body too large", js, `{"grant_type": "client_credentials", "pad": "` + strings.Repeat("x", 2048) + `"}`, nil, 413, "invalid_request"},
		{"audience and resource", js, ok(map[string]string{"audience": s.backOffice, "resource": "https://x.example"}), nil, 400, "invalid_request"},
		{"relative resource", js, ok(map[string]string{"resource": "back-office"}), nil, 400, "invalid_target"},
		{"audience not the client's", js, ok(map[string]string{"audience": s.storefrontAud}), nil, 400, "invalid_target"},
		{"unknown audience", js, ok(map[string]string{"audience": "payroll"}), nil, 400, "invalid_target"},
		{"several APIs, none named", js, jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": s.multi, "client_secret": s.secrets[s.multi]}), nil, 400, "invalid_request"},
		{"namespace not admitted", js, jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": s.tenant, "client_secret": s.secrets[s.tenant]}), nil, 400, "invalid_target"},
		{"scope the client lacks", js, ok(map[string]string{"scope": "users:write"}), nil, 400, "invalid_scope"},
		{"scope the API lacks", js, jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": s.multi, "client_secret": s.secrets[s.multi], "audience": s.storefrontAud, "scope": "users:read"}), nil, 400, "invalid_scope"},
	}
	var authFailure string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(srv.Handler(), tt.contentType, tt.body, tt.header...)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			assertNoStore(t, rec)
			var e struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("error body %q: %v", rec.Body, err)
			}
			if e.Error != tt.code || e.Description == "" {
				t.Errorf("error = %q (%q), want %q with a description", e.Error, e.Description, tt.code)
			}
			if tt.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			for _, secret := range s.secrets {
				if strings.Contains(rec.Body.String(), secret) {
					t.Error("error body contains a client secret")
				}
			}
			// Unknown client, wrong secret, disabled client: one indistinguishable answer.
			if tt.code == "invalid_client" && tt.header == nil {
				if authFailure == "" {
					authFailure = rec.Body.String()
				} else if rec.Body.String() != authFailure {
					t.Errorf("authentication failure answer %q differs from %q", rec.Body, authFailure)
				}
			}
		})
	}
}

func TestTokenMethodQueryAndNoKeys(t *testing.T) {
	s := newShop(t)
	srv, _ := s.server("", signing.ES256, nil)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, TokenPath, nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "POST" {
		t.Errorf("GET: status %d Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
	assertNoStore(t, rec)

	rec = httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, TokenPath+"?client_secret=x", strings.NewReader("grant_type=client_credentials"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	srv.Handler().ServeHTTP(rec, r)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "invalid_request") {
		t.Errorf("query parameters: status %d body %s", rec.Code, rec.Body)
	}

	noKeys, _ := s.server("", "", nil)
	rec = post(noKeys.Handler(), "application/json", jsonBody(map[string]string{
		"grant_type": "client_credentials", "client_id": s.erp, "client_secret": s.secrets[s.erp]}))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "temporarily_unavailable") {
		t.Errorf("without keys: status %d body %s", rec.Code, rec.Body)
	}
}

func TestJWKSAndMetadata(t *testing.T) {
	s := newShop(t)
	srv, keys := s.server("tokenServer: {jwksMaxAge: 120}", signing.ES256, nil)

	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "public, max-age=120" {
			t.Errorf("GET %s: Cache-Control %q", path, cc)
		}
		return rec
	}
	rec := get(JWKSPath)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	cur := keys.Load().Set.Current()
	if len(set.Keys) != 1 || set.Keys[0].KeyID != cur.ID || set.Keys[0].Algorithm != "ES256" || set.Keys[0].Use != "sig" || !set.Keys[0].IsPublic() {
		t.Errorf("JWKS = %s", rec.Body)
	}
	for _, private := range []string{`"d"`, `"p"`, `"q"`} {
		if strings.Contains(rec.Body.String(), private) {
			t.Errorf("JWKS contains private member %s", private)
		}
	}

	meta := get(MetadataPath).Body.String()
	var m, oidc map[string]any
	if err := json.Unmarshal([]byte(meta), &m); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(get(OIDCPath).Body.Bytes(), &oidc); err != nil {
		t.Fatal(err)
	}
	// The RFC 8414 document lists only what the server does: no authorization
	// endpoint, so no response types, and no ID tokens. The OpenID document adds what
	// OpenID Connect Discovery requires and is otherwise the same.
	for _, k := range []string{"id_token_signing_alg_values_supported", "subject_types_supported"} {
		if _, ok := m[k]; ok {
			t.Errorf("the RFC 8414 document has %s", k)
		}
	}
	if b, _ := json.Marshal(m["response_types_supported"]); string(b) != "[]" {
		t.Errorf("RFC 8414 response_types_supported = %s, want []", b)
	}
	for k, v := range map[string]string{
		"id_token_signing_alg_values_supported": `["ES256"]`, "subject_types_supported": `["public"]`,
		"response_types_supported": `["token"]`, "issuer": `"https://issuer.test"`, "jwks_uri": `"https://issuer.test/.well-known/jwks.json"`,
	} {
		if b, _ := json.Marshal(oidc[k]); string(b) != v {
			t.Errorf("openid-configuration %s = %s, want %s", k, b, v)
		}
	}
	for k := range m {
		if k != "response_types_supported" {
			if a, b := fmt.Sprint(m[k]), fmt.Sprint(oidc[k]); a != b {
				t.Errorf("openid-configuration %s = %s, RFC 8414 document %s", k, b, a)
			}
		}
	}
	for k, v := range map[string]any{
		"issuer": "https://issuer.test", "token_endpoint": "https://issuer.test/oauth2-token",
		"jwks_uri": "https://issuer.test/.well-known/jwks.json",
	} {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	for k, v := range map[string]string{
		"grant_types_supported":                            `["client_credentials","urn:ietf:params:oauth:grant-type:jwt-bearer","urn:ietf:params:oauth:grant-type:token-exchange"]`,
		"token_endpoint_auth_methods_supported":            `["client_secret_basic","client_secret_post","private_key_jwt","kubernetes_service_account_token","federated_jwt"]`,
		"token_endpoint_auth_signing_alg_values_supported": `["RS256","PS256","ES256","EdDSA"]`,
		"access_token_signing_alg_values_supported":        `["ES256"]`,
	} {
		if b, _ := json.Marshal(m[k]); string(b) != v {
			t.Errorf("%s = %s, want %s", k, b, v)
		}
	}

	rec = httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, JWKSPath, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST JWKS: %d", rec.Code)
	}

	// A new key set is published at once; the documents follow the keyring.
	next, err := signing.GenerateKey(signing.EdDSA, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Store(&signing.KeySet{CurrentID: next.ID, Keys: []*signing.Key{next, cur}}, "2", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(get(JWKSPath).Body.Bytes(), &set); err != nil || len(set.Keys) != 2 || set.Keys[0].KeyID != next.ID {
		t.Errorf("JWKS after key change: %+v (%v)", set.Keys, err)
	}
	if !strings.Contains(get(MetadataPath).Body.String(), `"access_token_signing_alg_values_supported":["EdDSA","ES256"]`) ||
		!strings.Contains(get(OIDCPath).Body.String(), `"id_token_signing_alg_values_supported":["EdDSA","ES256"]`) {
		t.Errorf("metadata algorithms not updated: %s", get(MetadataPath).Body)
	}
}
