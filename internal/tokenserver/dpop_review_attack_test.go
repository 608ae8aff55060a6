package tokenserver

// Reproductions of the attack review of DPoP (issue 20): each asserts the secure
// behaviour and failed before its fix. No API server needed; run one at a time:
//
//	go test -count=1 -run '^TestAttackDPoPReplayCacheSeventeenNamespaces$' -v ./internal/tokenserver/

import (
	cryptorand "crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
	"net/http"
	"slices"
	"testing"
	"time"

	jwtv5 "github.com/golang-jwt/jwt/v5"
	"k8s.io/apimachinery/pkg/util/rand"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// TestAttackDPoPRSAPrivateMembersAtTheTokenEndpoint: issue 20 asks the token endpoint
// to refuse "a private key in jwk". An RSA jwk with the key's factors p and q (and
// the CRT members) but no "d" passes CheckDPoPProof's check (go-jose's IsPublic looks
// at d only): the client gets a token bound to a key whose private half it has just
// published in the proof.
func TestAttackDPoPRSAPrivateMembersAtTheTokenEndpoint(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("dpop-rsa", nil)
	api := w.api("dpop-rsa", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	id := w.client(ns, "c", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}, RequireDPoP: true})
	srv, _ := w.server("", signing.ES256, nil)
	k, err := rsa.GenerateKey(cryptorand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b := func(i *big.Int) string { return base64.RawURLEncoding.EncodeToString(i.Bytes()) }
	jwk := map[string]any{"kty": "RSA", "n": b(k.N), "e": "AQAB", "p": b(k.Primes[0]), "q": b(k.Primes[1]),
		"dp": b(k.Precomputed.Dp), "dq": b(k.Precomputed.Dq), "qi": b(k.Precomputed.Qinv)}
	proof := signJWS(t, map[string]any{"typ": "dpop+jwt", "alg": "PS256", "jwk": jwk},
		map[string]any{"jti": rand.String(22), "htm": http.MethodPost, "htu": testTokenURL, "iat": time.Now().Unix()},
		jwtv5.SigningMethodPS256, k)
	body := jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]})
	rec := withDPoP(srv.Handler(), body, proof)
	t.Logf("proof whose jwk holds p, q, dp, dq, qi: %d", rec.Code)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("a proof whose jwk holds the RSA private key (no d) got %d, want 400 invalid_dpop_proof", rec.Code)
	}
}

// TestAttackDPoPJunkRSAProofsAtTheTokenEndpoint: any client that authenticates (a
// tenant's own, a leaked secret) can send one junk-signed proof of a random RSA-4096
// modulus with e = 2^31-1 again and again: each is verified before it is found
// invalid (or replayed), the 400 that follows is not a failed authentication, and only
// the optional per-client rate limit bounds it. The test logs the handler's median
// time for 100 requests each way, and asserts the exponent rule of client keys
// (65537 only, signing.ValidateClientKey) for proof keys too.
func TestAttackDPoPJunkRSAProofsAtTheTokenEndpoint(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("dpop-cost", nil)
	api := w.api("dpop-cost", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	id := w.client(ns, "c", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	srv, _ := w.server("rateLimit: {failedAuthPerMinute: 0}\n", signing.ES256, nil)
	h := srv.Handler()
	body := jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]})
	junk := func(e int64) string {
		n := make([]byte, 512)
		_, _ = cryptorand.Read(n)
		n[0] |= 0x80
		n[511] |= 1
		sig := make([]byte, 512)
		_, _ = cryptorand.Read(sig)
		sig[0] = n[0] >> 1
		enc := base64.RawURLEncoding.EncodeToString
		jwk := map[string]any{"kty": "RSA", "n": enc(n), "e": enc(big.NewInt(e).Bytes())}
		unsigned := signJWS(t, map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk},
			map[string]any{"jti": rand.String(22), "htm": http.MethodPost, "htu": testTokenURL, "iat": time.Now().Unix()}, nil, nil)
		return unsigned + enc(sig)
	}
	key := newDPoPKey(t)
	median := func(proof func() string) (time.Duration, map[int]int) {
		var took []time.Duration
		codes := map[int]int{}
		for range 100 {
			var header []string
			if p := proof(); p != "" {
				header = []string{"DPoP", p}
			}
			start := time.Now()
			codes[post(h, "application/json", body, header...).Code]++
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		return took[len(took)/2], codes
	}
	none, c0 := median(func() string { return "" })
	es, c1 := median(func() string { return key.proof(t, testTokenURL, time.Now(), nil) })
	j1 := junk(65537)
	small, c2 := median(func() string { return j1 })
	j2 := junk(1<<31 - 1)
	large, c3 := median(func() string { return j2 })
	t.Logf("token endpoint, median of 100: no proof %v %v; ES256 proofs %v %v; one junk RSA-4096 e=65537 proof resent %v %v; one junk RSA-4096 e=2^31-1 proof resent %v %v",
		none, c0, es, c1, small, c2, large, c3)

	k := rsaKeyWithExponent(t, 2048, 1<<31-1)
	b := func(i *big.Int) string { return base64.RawURLEncoding.EncodeToString(i.Bytes()) }
	proof := signJWS(t, map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": map[string]any{"kty": "RSA", "n": b(k.N), "e": b(big.NewInt(int64(k.E)))}},
		map[string]any{"jti": rand.String(22), "htm": http.MethodPost, "htu": testTokenURL, "iat": time.Now().Unix()}, jwtv5.SigningMethodRS256, k)
	if rec := withDPoP(h, body, proof); rec.Code != http.StatusBadRequest {
		t.Errorf("a proof of an RSA key with e = 2^31-1: %d, want 400 invalid_dpop_proof (client keys must use 65537)", rec.Code)
	}
}

// rsaKeyWithExponent is an RSA key of bits with public exponent e (crypto/rsa makes
// only 65537).
func rsaKeyWithExponent(t testing.TB, bits, e int) *rsa.PrivateKey {
	t.Helper()
	E, one := big.NewInt(int64(e)), big.NewInt(1)
	for {
		p, err := cryptorand.Prime(cryptorand.Reader, bits/2)
		if err != nil {
			t.Fatal(err)
		}
		q, err := cryptorand.Prime(cryptorand.Reader, bits/2)
		if err != nil {
			t.Fatal(err)
		}
		n := new(big.Int).Mul(p, q)
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(E, phi)
		if n.BitLen() != bits || d == nil {
			continue
		}
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: e}, D: d, Primes: []*big.Int{p, q}}
		k.Precompute()
		if err := k.Validate(); err != nil {
			t.Fatal(err)
		}
		return k
	}
}
