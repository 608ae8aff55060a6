package verifier

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

const testAudience = "api://orders"

// fakeClock is a settable clock safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testKey is a signing key of the test issuer.
type testKey struct {
	kid    string
	alg    string
	priv   crypto.Signer
	jwkAlg string // "alg" published in the JWK; alg unless overridden
}

// Keys are generated once per test binary (RSA generation is slow).
var (
	ecKey  = sync.OnceValue(func() crypto.Signer { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	rsaKey = sync.OnceValue(func() crypto.Signer { return must(rsa.GenerateKey(rand.Reader, 2048)) })
	edKey  = sync.OnceValue(func() crypto.Signer {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func newKey(kid, alg string) *testKey {
	var priv crypto.Signer
	switch alg {
	case "ES256":
		priv = ecKey()
	case "RS256":
		priv = rsaKey()
	case "EdDSA":
		priv = edKey()
	default:
		panic("unsupported alg " + alg)
	}
	return &testKey{kid: kid, alg: alg, priv: priv, jwkAlg: alg}
}

// freshECKey returns an ES256 key distinct from every other one.
func freshECKey(kid string) *testKey {
	return &testKey{kid: kid, alg: "ES256", priv: must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)), jwkAlg: "ES256"}
}

// jwk returns the public JWK of k as go-jose (an independent implementation) encodes it.
func (k *testKey) jwk() json.RawMessage {
	return must(json.Marshal(jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: k.jwkAlg, Use: "sig"}))
}

// testIssuer is an httptest token server publishing metadata and a JWKS.
type testIssuer struct {
	srv *httptest.Server

	mu           sync.Mutex
	keys         []json.RawMessage
	cacheControl string
	metaIssuer   string        // issuer in the metadata; srv.URL if empty
	gate         chan struct{} // if not nil, JWKS requests wait for it to close

	jwksHits atomic.Int32
	metaHits atomic.Int32
	down     atomic.Bool // JWKS answers 503
}

func newIssuer(t testing.TB, keys ...*testKey) *testIssuer {
	t.Helper()
	is := &testIssuer{cacheControl: "public, max-age=300"}
	is.setKeys(keys...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		is.metaHits.Add(1)
		is.mu.Lock()
		iss := is.metaIssuer
		is.mu.Unlock()
		if iss == "" {
			iss = is.srv.URL
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":         iss,
			"token_endpoint": is.srv.URL + "/token",
			"jwks_uri":       is.srv.URL + "/.well-known/jwks.json",
		})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		is.jwksHits.Add(1)
		is.mu.Lock()
		gate, keys, cc := is.gate, is.keys, is.cacheControl
		is.mu.Unlock()
		if gate != nil {
			<-gate
		}
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

func (is *testIssuer) setKeys(keys ...*testKey) {
	raw := make([]json.RawMessage, len(keys))
	for i, k := range keys {
		raw[i] = k.jwk()
	}
	is.setRawKeys(raw...)
}

func (is *testIssuer) setRawKeys(raw ...json.RawMessage) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = raw
}

func (is *testIssuer) set(f func(is *testIssuer)) {
	is.mu.Lock()
	defer is.mu.Unlock()
	f(is)
}

func (is *testIssuer) URL() string { return is.srv.URL }

// newVerifier returns a Verifier for is (using discovery) on clock, after
// applying edit to its config.
func newVerifier(t testing.TB, is *testIssuer, clock *fakeClock, edit ...func(*Config)) *Verifier {
	t.Helper()
	cfg := Config{Issuer: is.URL(), Audience: testAudience, Now: clock.Now}
	for _, f := range edit {
		f(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// waitFetch waits for the Verifier's in-flight fetch, if any, to finish.
func waitFetch(t *testing.T, v *Verifier) {
	t.Helper()
	v.keys.mu.Lock()
	done := v.keys.inflight
	v.keys.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("fetch did not finish")
	}
}

// claimsAt returns valid claims for is issued at now.
func claimsAt(is *testIssuer, now time.Time) map[string]any {
	return map[string]any{
		"iss":       is.URL(),
		"sub":       "client-1",
		"aud":       testAudience,
		"exp":       now.Add(5 * time.Minute).Unix(),
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"jti":       "8d7a1c52-0d2e-4e0c-9a55-6c0f2b6f1d11",
		"client_id": "client-1",
		"scope":     "orders:read orders:write",
	}
}

// edit returns a copy of m with the changes applied; a nil value deletes.
func edit(m map[string]any, changes map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// mint signs claims with k through go-jose, as a well-behaved issuer would.
func mint(t testing.TB, k *testKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.alg), Key: k.priv},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", k.kid))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(must(json.Marshal(claims)))
	if err != nil {
		t.Fatal(err)
	}
	return must(jws.CompactSerialize())
}

var enc = base64.RawURLEncoding

// craft builds a token with an arbitrary header, signed by sign over the
// signing input (nil sign: empty signature).
func craft(t *testing.T, header, claims map[string]any, sign func(input string) []byte) string {
	t.Helper()
	input := enc.EncodeToString(must(json.Marshal(header))) + "." + enc.EncodeToString(must(json.Marshal(claims)))
	var sig []byte
	if sign != nil {
		sig = sign(input)
	}
	return input + "." + enc.EncodeToString(sig)
}

// signWith signs with a golang-jwt method and key.
func signWith(t *testing.T, method jwt.SigningMethod, key any) func(string) []byte {
	return func(input string) []byte {
		sig, err := method.Sign(input, key)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
}

// verifyCtx returns a bounded context for Verify.
func verifyCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
