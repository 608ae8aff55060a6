package verifier

// Reproductions of the attack review of DPoP (issue 20): each asserts the secure
// behaviour and failed before its fix. No API server, no network but httptest; run one at a time:
//
//	go test -count=1 -run '^TestAttackDPoPReplayCacheEightClients$' -v ./pkg/verifier/

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestAttackDPoPReplayCacheEightClients: the resource server's proof cache gives one
// client (client_id) an eighth of the pool and nothing limits a namespace or a tenant,
// so eight clients of one tenant, each with a DPoP-bound token for the API and its own
// proofs (nothing stolen), fill the whole pool. Every other client of the API is then
// down to its reserve of 64 proofs per DPoPProofMaxAge (about one request a second),
// per replica: beyond it, 503 until its proofs age out, for as long as the tenant keeps
// the pool full (with the default 100000 proofs: 8 × 12500 proofs a minute, about 1640
// requests a second, each a request the API admits). The test uses a pool of 800 (100
// per client) and a victim that makes 100 requests within the minute (under 2 a
// second): it should get 100.
func TestAttackDPoPReplayCacheEightClients(t *testing.T) {
	const size = 800
	a := newDPoPAPI(t, func(c *Config) { c.DPoPReplayCacheSize = size })
	key := newClientKey(t) // the tenant's own key, used by its eight clients
	const target = "http://api.example/orders"
	tokenOf := func(client string) string {
		return mint(t, a.es, edit(claimsAt(a.is, a.clock.Now()), map[string]any{
			"sub": client, "client_id": client, "cnf": map[string]any{"jkt": key.jkt}}))
	}
	send := func(tok string) int {
		return a.call(t, target, "DPoP "+tok, key.proof(t, proofClaims(http.MethodGet, target, a.clock.Now(), tok))).Code
	}
	attack := map[int]int{}
	for i := range 8 {
		tok := tokenOf(fmt.Sprintf("tenant-b.flood-%d", i))
		for range size / 8 {
			attack[send(tok)]++
		}
	}
	t.Logf("8 clients of one tenant, %d proofs each: answers %v; cache holds %d of %d", size/8, attack, a.v.proofs.size(), size)
	// The victim sends as many proofs as one client may have in flight in an empty
	// cache (its share and its reserve), one every half second.
	victim := tokenOf("tenant-a.orders-worker")
	n := a.v.proofs.perClient + a.v.proofs.reservePerClient
	answers := map[int]int{}
	for range n {
		answers[send(victim)]++
		a.clock.Advance(500 * time.Millisecond)
	}
	t.Logf("another tenant's client, %d requests: answers %v", n, answers)
	if answers[http.StatusOK] != n {
		t.Errorf("the victim got %d of %d requests admitted (%v): eight clients of another tenant filled the DPoP replay cache", answers[http.StatusOK], n, answers)
	}
}

// TestAttackDPoPJWKWithRSAPrivateMembers: RFC 9449 §4.3 (and issue 20) refuse a proof
// whose jwk holds a private key. go-jose's IsPublic looks at "d" only, so an RSA jwk
// with the private key as its CRT members (p, q, dp, dq, qi) and no "d" is taken for a
// public key: the proof is accepted, at the resource server and (the same
// CheckDPoPProof) at the token endpoint. A client whose library serialises its key this
// way sends its private key in every proof (to every API, proxy and log) and is never
// told; anyone who reads one proof can then make proofs of that key, and the binding
// is gone.
func TestAttackDPoPJWKWithRSAPrivateMembers(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	k := rsaKey().(*rsa.PrivateKey)
	b := func(i *big.Int) string { return enc.EncodeToString(i.Bytes()) }
	const url = "https://api.example/orders"
	claims := proofClaims(http.MethodGet, url, now, "the-token")
	for name, members := range map[string]map[string]any{
		"p and q":                  {"p": b(k.Primes[0]), "q": b(k.Primes[1])},
		"p, q, dp, dq, qi":         {"p": b(k.Primes[0]), "q": b(k.Primes[1]), "dp": b(k.Precomputed.Dp), "dq": b(k.Precomputed.Dq), "qi": b(k.Precomputed.Qinv)},
		"d (refused: the control)": {"d": b(k.D)},
	} {
		t.Run(name, func(t *testing.T) {
			jwk := map[string]any{"kty": "RSA", "n": b(k.N), "e": "AQAB"}
			for m, v := range members {
				jwk[m] = v
			}
			proof := craft(t, map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}, claims, signWith(t, jwt.SigningMethodRS256, k))
			_, err := CheckDPoPProof(proof, DPoPProofOptions{Method: http.MethodGet, URL: url, AccessToken: "the-token", Now: now})
			if err == nil {
				t.Errorf("a proof whose jwk holds the RSA private key as %s was accepted", name)
			}
		})
	}
}

// rsaKeyWithExponent is an RSA key of bits with public exponent e (crypto/rsa makes
// only 65537).
func rsaKeyWithExponent(t testing.TB, bits, e int) *rsa.PrivateKey {
	t.Helper()
	E, one := big.NewInt(int64(e)), big.NewInt(1)
	for {
		p := must(rand.Prime(rand.Reader, bits/2))
		q := must(rand.Prime(rand.Reader, bits/2))
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

// rsaJWK is the public JWK of k.
func rsaJWK(k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "n": enc.EncodeToString(k.N.Bytes()), "e": enc.EncodeToString(big.NewInt(int64(k.E)).Bytes())}
}

// junkRSAProof is a proof whose jwk is a random RSA modulus of bits with exponent e
// and whose signature is junk of the modulus' length: anyone can make one, no key
// needed, and one can be sent any number of times.
func junkRSAProof(t testing.TB, bits, e int, claims map[string]any) string {
	n := make([]byte, bits/8)
	_, _ = rand.Read(n)
	n[0] |= 0x80
	n[len(n)-1] |= 1
	jwk := map[string]any{"kty": "RSA", "n": enc.EncodeToString(n), "e": enc.EncodeToString(big.NewInt(int64(e)).Bytes())}
	h := map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}
	input := enc.EncodeToString(must(jsonMarshal(h))) + "." + enc.EncodeToString(must(jsonMarshal(claims)))
	sig := make([]byte, len(n)) // below the modulus, or it is refused unverified
	_, _ = rand.Read(sig)
	sig[0] = n[0] >> 1
	return input + "." + enc.EncodeToString(sig)
}

// TestAttackDPoPStolenTokenBuysRSA4096Verifications: a man in the middle who stole a
// DPoP-bound token (an ES256 key's, as pkg/client makes) but not its key cannot use
// it, as intended, but can make the resource server verify an RSA-4096 signature
// on every request (Go 1.26, fastest of three runs of BenchmarkAttackDPoPProofKeys on
// a loaded 2-core machine: 0.44 ms with e 65537, 1.2-2.0 ms with e 2^31-1, against
// 54 µs for RSA-2048 and 145 µs for ES256): VerifyDPoP checks the
// proof's signature before it compares the proof key's thumbprint with the token's
// cnf.jkt, and before the replay cache, so one junk-signed proof of a random
// 4096-bit modulus (no key, no signing) can be sent again and again, each refused
// only after the verification. The token's key is known from cnf.jkt: a proof of
// another key could be refused for a SHA-256 of its jwk. The test asserts that order
// (the refusal of a junk proof of another key is the binding's, not the
// signature's), and logs the handler time of bearer requests against such proofs
// over loopback.
func TestAttackDPoPStolenTokenBuysRSA4096Verifications(t *testing.T) {
	a := newDPoPAPI(t)
	victim := newClientKey(t)
	const target = "http://api.example/orders"
	stolen := a.token(t, victim.jkt)
	proof := junkRSAProof(t, 4096, 1<<31-1, proofClaims(http.MethodGet, target, a.clock.Now(), stolen))
	_, err := a.v.VerifyDPoP(verifyCtx(t), stolen, DPoPRequest{Proof: proof, Method: http.MethodGet, URL: target})
	var perr *DPoPProofError
	if !errors.As(err, &perr) {
		t.Fatalf("VerifyDPoP: %v", err)
	}
	t.Logf("a junk RSA-4096 proof with a stolen ES256-bound token: refused at check %q", perr.Check)

	// The cost, over loopback: the middleware's time per request (median of 200).
	var (
		mu   sync.Mutex
		took []time.Duration
	)
	timed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		a.h.ServeHTTP(w, r)
		mu.Lock()
		took = append(took, time.Since(start))
		mu.Unlock()
	})
	srv := httptest.NewServer(timed)
	defer srv.Close()
	bearer := a.token(t, "")
	median := func(authorization, proof string) time.Duration {
		took = nil
		for range 200 {
			req := must(http.NewRequest(http.MethodGet, srv.URL+"/orders", nil))
			req.Host = "api.example"
			req.Header.Set("Authorization", authorization)
			if proof != "" {
				req.Header.Set("DPoP", proof)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
		}
		slices.Sort(took)
		return took[len(took)/2]
	}
	t.Logf("middleware time per request over loopback (median of 200): bearer token %v; stolen token with one junk RSA-4096 (e 2^31-1) proof sent 200 times %v",
		median("Bearer "+bearer, ""), median("DPoP "+stolen, proof))
	if perr.Check != DPoPCheckBinding && perr.Check != DPoPCheckKey {
		t.Errorf("a proof of another key than the token's cnf.jkt was refused at %q: its RSA-4096 signature was verified first", perr.Check)
	}
	// A usable RSA-4096 key (e 65537) of someone else: refused for its thumbprint,
	// before its signature.
	other := junkRSAProof(t, 4096, 65537, proofClaims(http.MethodGet, target, a.clock.Now(), stolen))
	_, err = a.v.VerifyDPoP(verifyCtx(t), stolen, DPoPRequest{Proof: other, Method: http.MethodGet, URL: target})
	if !errors.As(err, &perr) || perr.Check != DPoPCheckBinding {
		t.Errorf("a junk RSA-4096 (e 65537) proof with a stolen token: %v, want refused at the binding, before its signature", err)
	}
}

// TestAttackDPoPRSAExponent: client keys of private_key_jwt must use e = 65537
// (signing.ValidateClientKey), proof keys may use any odd exponent up to 2^31-1: two
// rules for RSA keys a client chooses, and the larger exponent makes a 4096-bit
// verification 3 to 4 times dearer (BenchmarkAttackDPoPProofKeys).
func TestAttackDPoPRSAExponent(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	const url = "https://api.example/orders"
	k := rsaKeyWithExponent(t, 2048, 1<<31-1)
	claims := proofClaims(http.MethodGet, url, now, "the-token")
	proof := craft(t, map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": rsaJWK(&k.PublicKey)}, claims, signWith(t, jwt.SigningMethodRS256, k))
	if _, err := CheckDPoPProof(proof, DPoPProofOptions{Method: http.MethodGet, URL: url, AccessToken: "the-token", Now: now}); err == nil {
		t.Error("a proof of an RSA key with exponent 2^31-1 was accepted")
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
