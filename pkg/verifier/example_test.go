package verifier_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/oauth-client-operator/oauth-client-operator/pkg/verifier"
)

// Example runs a stand-in token server (RFC 8414 metadata and JWKS), mints an
// access token with its key, and calls an API protected by Middleware.
func Example() {
	// The token server's signing key and published documents.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mux := http.NewServeMux()
	issuer := httptest.NewServer(mux)
	defer issuer.Close()
	mux.HandleFunc("/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":   issuer.URL,
			"jwks_uri": issuer.URL + "/.well-known/jwks.json",
		})
	})
	mux.HandleFunc("/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &key.PublicKey, KeyID: "key-1", Algorithm: "ES256", Use: "sig"},
		}})
	})

	// An access token, as the token server would issue it.
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": issuer.URL, "sub": "billing-job", "client_id": "billing-job", "aud": "api://orders",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"jti": "2b1f0c9e", "scope": "orders:read",
	})
	tok.Header["typ"], tok.Header["kid"] = "at+jwt", "key-1"
	token, _ := tok.SignedString(key)

	// The resource server.
	v, err := verifier.New(verifier.Config{Issuer: issuer.URL, Audience: "api://orders"})
	if err != nil {
		panic(err)
	}
	api := v.Middleware("orders:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := verifier.ClaimsFromContext(r.Context())
		_, _ = fmt.Fprintf(w, "orders for %s (scopes %s)", claims.ClientID, strings.Join(claims.Scopes, " "))
	}))

	for _, authorization := range []string{"Bearer " + token, "", "Bearer forged.token.value"} {
		req := httptest.NewRequest(http.MethodGet, "/orders", nil)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
		if challenge := rec.Header().Get("WWW-Authenticate"); challenge != "" {
			fmt.Println("  WWW-Authenticate:", challenge)
		}
	}
	// Output:
	// 200 orders for billing-job (scopes orders:read)
	// 401 {"error":"unauthorized","error_description":"bearer token required"}
	//   WWW-Authenticate: Bearer realm="api://orders"
	// 401 {"error":"invalid_token","error_description":"malformed token header"}
	//   WWW-Authenticate: Bearer realm="api://orders", error="invalid_token", error_description="malformed token header"
}

// ExampleKeySet verifies a JWT of some other issuer with golang-jwt, the
// issuer's keys fetched through OpenID Connect discovery and cached.
func ExampleKeySet() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mux := http.NewServeMux()
	idp := httptest.NewServer(mux)
	defer idp.Close()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": idp.URL, "jwks_uri": idp.URL + "/keys"})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Use: "sig"}}})
	})
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": idp.URL, "sub": "ci-job-42"})
	tok.Header["kid"] = "k1"
	signed, _ := tok.SignedString(key)

	keys, err := verifier.NewKeySet(verifier.KeySetOptions{
		DiscoveryURL: idp.URL + "/.well-known/openid-configuration",
		Issuer:       idp.URL,
		HTTPClient:   &http.Client{Timeout: 5 * time.Second}, // its Transport may carry a CA of its own
	})
	if err != nil {
		panic(err)
	}
	parsed, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(idp.URL)).Parse(signed, keys.Keyfunc)
	if err != nil {
		panic(err)
	}
	sub, _ := parsed.Claims.GetSubject()
	fmt.Println(sub, keys.Status().Keys)
	// Output: ci-job-42 1
}
