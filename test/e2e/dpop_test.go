//go:build integration

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
	"github.com/oauth-client-operator/oauth-client-operator/pkg/client"
)

// TestDPoP: the sample client shop.ledger (requireDPoP) gets a DPoP-bound token with
// pkg/client and calls the example API with it (200); the same token is refused with a
// proof of another key, as a bearer token, and the token server refuses the client a
// token without a proof.
func TestDPoP(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	s := &corev1.Secret{}
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Namespace: "shop", Name: "ledger"}, s)).To(Succeed())
		g.Expect(s.Data).To(HaveKey("client_secret"))
	}, 20*time.Second, 100*time.Millisecond).Should(Succeed())
	data := map[string]string{}
	for _, k := range []string{"client_id", "client_secret", "token_url"} {
		data[k] = string(s.Data[k])
	}
	vol := testenv.NewVolume(t, data)

	// Without a proof: refused.
	_, a := token("shop.ledger", data["client_secret"])
	g.Expect(a.status).To(Equal(http.StatusBadRequest), string(a.body))
	g.Expect(string(a.body)).To(ContainSubstring(`"invalid_dpop_proof"`))

	// pkg/client with DPoP: a bound token, and the API answers 200.
	ts, err := client.New(ctx, vol.Dir, client.WithAudience("back-office"), client.WithDPoP())
	g.Expect(err).NotTo(HaveOccurred())
	req, _ := http.NewRequest(http.MethodGet, env.APIURL, nil)
	req.Header.Set("Accept", "application/vnd.api+json")
	resp, err := client.NewHTTPClient(ctx, ts).Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	tok, err := ts.Token()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tok.TokenType).To(Equal("DPoP"))

	// The token, stolen, with a valid proof of the thief's own key: 401.
	thief, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	r := callWith(t, "DPoP "+tok.AccessToken, proofOf(t, thief, http.MethodGet, env.APIURL, tok.AccessToken))
	g.Expect(r.status).To(Equal(http.StatusUnauthorized))
	g.Expect(r.header.Values("WWW-Authenticate")).To(ContainElement(ContainSubstring(`error="invalid_token"`)))
	// As a bearer token: 401.
	r = callAPI(tok.AccessToken)
	g.Expect(r.status).To(Equal(http.StatusUnauthorized))
	g.Expect(r.header.Get("WWW-Authenticate")).To(ContainSubstring("DPoP-bound"))
}

// callWith calls the example API with an Authorization header and a DPoP proof.
func callWith(t *testing.T, authorization, proof string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.APIURL, nil)
	req.Header.Set("Accept", "application/vnd.api+json")
	req.Header.Set("Authorization", authorization)
	req.Header.Set("DPoP", proof)
	return do(req)
}

// proofOf is a DPoP proof of key for a request with accessToken, made with golang-jwt.
func proofOf(t *testing.T, key *ecdsa.PrivateKey, method, url, accessToken string) string {
	t.Helper()
	raw, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	h := sha256.Sum256([]byte(accessToken))
	p := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"jti": b64([]byte(time.Now().String())), "htm": method, "htu": url, "iat": time.Now().Unix(), "ath": b64(h[:]),
	})
	p.Header["typ"] = "dpop+jwt"
	p.Header["jwk"] = json.RawMessage(`{"kty":"EC","crv":"P-256","x":"` + b64(raw[1:33]) + `","y":"` + b64(raw[33:]) + `"}`)
	s, err := p.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
