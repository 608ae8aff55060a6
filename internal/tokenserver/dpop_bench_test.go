package tokenserver

import (
	"crypto"
	"crypto/ed25519"
	cryptorand "crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	jwtv5 "github.com/golang-jwt/jwt/v5"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// BenchmarkTokenDPoP measures the whole token handler (ES256 access tokens, audit
// records off) for a client-secret request without a proof, and with a DPoP proof of
// each algorithm a client may use: the proof's cost is with-proof/op minus bearer/op.
// Proofs are made before the timer starts (each is single-use):
//
//	go test -run '^$' -bench BenchmarkTokenDPoP -benchmem ./internal/tokenserver/
func BenchmarkTokenDPoP(b *testing.B) {
	w := newWorld(b)
	ns := w.namespace("bench-dpop", nil)
	api := w.api("bench-dpop", oauthv1alpha1.OAuthAPISpec{Scopes: []oauthv1alpha1.Scope{"users:read"}, AllowedNamespaces: allNS()})
	id := w.client(ns, "load", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}, Scopes: []oauthv1alpha1.Scope{"users:read"}})
	body := jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]})
	// A replay cache large enough for every proof of a run.
	srv, _ := w.server("dpop: {replayCacheSize: 20000000}\n", signing.ES256, nil)
	srv.audit.enabled = false
	h := srv.Handler()

	b.Run("bearer", func(b *testing.B) { benchmarkHandler(b, h, body) })
	keys := map[string]crypto.Signer{"ES256": newDPoPKey(b).priv}
	_, ed, _ := ed25519.GenerateKey(nil)
	keys["EdDSA"] = ed
	rsaKey, err := rsa.GenerateKey(cryptorand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	keys["RS256"], keys["PS256"] = rsaKey, rsaKey
	for _, alg := range []string{"ES256", "EdDSA", "RS256", "PS256"} {
		key := keys[alg]
		header := map[string]any{"typ": "dpop+jwt", "alg": alg, "jwk": publicJWK(b, key)}
		method := jwtv5.GetSigningMethod(alg)
		b.Run("dpop-"+alg, func(b *testing.B) {
			b.ReportAllocs()
			proofs := make([]string, b.N)
			now := time.Now().Unix()
			for i := range proofs {
				proofs[i] = signJWS(b, header, map[string]any{"jti": alg + strconv.Itoa(i) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36),
					"htm": "POST", "htu": testTokenURL, "iat": now}, method, key)
			}
			b.ResetTimer()
			for i := range b.N {
				r, err := http.NewRequest(http.MethodPost, TokenPath, strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("DPoP", proofs[i])
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"token_type":"DPoP"`) {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// publicJWK is the public JWK of key as a header member.
func publicJWK(tb testing.TB, key crypto.Signer) map[string]any {
	tb.Helper()
	raw, err := json.Marshal(jose.JSONWebKey{Key: key.Public()})
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}
