package client_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/oauth-client-operator/oauth-client-operator/pkg/client"
)

func secretVolume(ts *tokenServer, secret string) map[string]string {
	return map[string]string{"client_id": "shop.erp-sync", "token_url": ts.tokenURL(), "issuer": ts.URL, "client_secret": secret}
}

// TestClientSecretRequest: the request is the one the token server accepts, and the
// token's expiry comes from expires_in by the source's clock.
func TestClientSecretRequest(t *testing.T) {
	srv := newTokenServer(t, nil)
	vol := newVolume(t, secretVolume(srv, "s3cret"))
	clk := newClock()
	ts, err := client.New(context.Background(), vol.dir, client.WithAudience("back-office"),
		client.WithScopes("users:read", "users:write"), client.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "access-token-1" || tok.Type() != "Bearer" {
		t.Errorf("token %q of type %q", tok.AccessToken, tok.Type())
	}
	if want := clk.Now().Add(time.Hour); !tok.Expiry.Equal(want) {
		t.Errorf("expiry %s, want %s (clock + expires_in)", tok.Expiry, want)
	}
	want := url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"shop.erp-sync"}, "client_secret": {"s3cret"},
		"audience": {"back-office"}, "scope": {"users:read users:write"},
	}
	if got := srv.request(0); got.Encode() != want.Encode() {
		t.Errorf("form %v, want %v", got, want)
	}
	if h := srv.headers[0]; h.Get("Authorization") != "" || !strings.HasPrefix(h.Get("Content-Type"), "application/x-www-form-urlencoded") {
		t.Errorf("headers: Authorization %q, Content-Type %q", h.Get("Authorization"), h.Get("Content-Type"))
	}
}

// assertionChecker verifies private_key_jwt assertions as the token server does, with
// golang-jwt: the pinned algorithm, the signature with the public key its kid names,
// iss = sub = client_id, aud = the token URL, iat and exp (exp - iat ≤ 5 min), and a
// jti of 128 bits never seen before.
type assertionChecker struct {
	t        testing.TB
	tokenURL string
	now      func() time.Time
	mu       sync.Mutex
	keys     map[string]crypto.PublicKey // by kid; "" accepts assertions without kid
	alg      string
	seen     map[string]bool
	kids     []string
}

func (c *assertionChecker) setKeys(alg string, keys map[string]crypto.PublicKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.alg, c.keys = alg, keys
}

func (c *assertionChecker) check(_ int, form url.Values) (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fail := func(format string, args ...any) (int, string) {
		c.t.Errorf("assertion refused: "+format, args...)
		return http.StatusUnauthorized, "invalid_client"
	}
	if form.Get("client_assertion_type") != client.AssertionType {
		return fail("client_assertion_type %q", form.Get("client_assertion_type"))
	}
	if form.Has("client_secret") {
		return fail("a client_secret was sent along")
	}
	clientID := form.Get("client_id")
	claims := &jwt.RegisteredClaims{}
	var kid string
	_, err := jwt.NewParser(
		jwt.WithValidMethods([]string{c.alg}), jwt.WithIssuer(clientID), jwt.WithSubject(clientID),
		jwt.WithAudience(c.tokenURL), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithTimeFunc(c.now),
	).ParseWithClaims(form.Get("client_assertion"), claims, func(tok *jwt.Token) (any, error) {
		kid, _ = tok.Header["kid"].(string)
		if k, ok := c.keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("unknown kid %q", kid)
	})
	if err != nil {
		return fail("%v", err)
	}
	if lifetime := claims.ExpiresAt.Sub(claims.IssuedAt.Time); lifetime <= 0 || lifetime > 5*time.Minute {
		return fail("lifetime %s", lifetime)
	}
	if jti, err := base64.RawURLEncoding.DecodeString(claims.ID); err != nil || len(jti) != 16 {
		return fail("jti %q is not 128 bits of base64url", claims.ID)
	}
	if c.seen[claims.ID] {
		return fail("jti %q replayed", claims.ID)
	}
	c.seen[claims.ID] = true
	c.kids = append(c.kids, kid)
	return http.StatusOK, ""
}

// TestPrivateKeyJWT: for each key type, every token request carries a fresh assertion
// that verifies with the public key (algorithm by key type, kid = key_id), and a
// rotated key in the volume is used by the next request.
func TestPrivateKeyJWT(t *testing.T) {
	newEC := func() crypto.Signer { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k }
	newRSA := func() crypto.Signer { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k }
	newEd := func() crypto.Signer { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }
	for _, tc := range []struct {
		alg string
		gen func() crypto.Signer
	}{{"ES256", newEC}, {"RS256", newRSA}, {"EdDSA", newEd}} {
		t.Run(tc.alg, func(t *testing.T) {
			clk := newClock()
			checker := &assertionChecker{t: t, now: clk.Now, seen: map[string]bool{}}
			srv := newTokenServer(t, checker.check)
			checker.tokenURL = srv.tokenURL()
			key1, key2 := tc.gen(), tc.gen()
			checker.setKeys(tc.alg, map[string]crypto.PublicKey{"kid-1": key1.Public()})
			data := map[string]string{"client_id": "shop.erp-sync", "token_url": srv.tokenURL(), "issuer": srv.URL,
				"private_key": pkcs8PEM(t, key1), "key_id": "kid-1"}
			vol := newVolume(t, data)
			ts, err := client.New(context.Background(), vol.dir, client.WithAudience("back-office"), client.WithClock(clk.Now))
			if err != nil {
				t.Fatal(err)
			}
			const fetches = 5
			for range fetches {
				if _, err := ts.Token(); err != nil {
					t.Fatal(err)
				}
				clk.Add(2 * time.Hour) // the token expired: the next call requests one
			}
			// The key rotates: the server knows only the new one.
			data["private_key"], data["key_id"] = pkcs8PEM(t, key2), "kid-2"
			vol.update(data)
			checker.setKeys(tc.alg, map[string]crypto.PublicKey{"kid-2": key2.Public()})
			if _, err := ts.Token(); err != nil {
				t.Fatalf("after the key rotated: %v", err)
			}
			if n := srv.count(); n != fetches+1 {
				t.Errorf("server saw %d requests, want %d (no retry needed)", n, fetches+1)
			}
			if got := strings.Join(checker.kids, ","); got != "kid-1,kid-1,kid-1,kid-1,kid-1,kid-2" {
				t.Errorf("kids %s", got)
			}
			if len(checker.seen) != fetches+1 {
				t.Errorf("%d distinct jti for %d requests", len(checker.seen), fetches+1)
			}
		})
	}
}

// TestPrivateKeyJWTWithOwnKey: WithPrivateKey signs with the program's key, the Secret
// volume holding no key material.
func TestPrivateKeyJWTWithOwnKey(t *testing.T) {
	clk := newClock()
	checker := &assertionChecker{t: t, now: clk.Now, seen: map[string]bool{}}
	srv := newTokenServer(t, checker.check)
	checker.tokenURL = srv.tokenURL()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	checker.setKeys("ES256", map[string]crypto.PublicKey{"": key.Public()})
	vol := newVolume(t, map[string]string{"client_id": "shop.erp-sync", "token_url": srv.tokenURL(), "issuer": srv.URL})
	ts, err := client.New(context.Background(), vol.dir, client.WithPrivateKey(key, ""), client.WithClock(clk.Now),
		client.WithServiceAccountTokenFile(filepath.Join(t.TempDir(), "absent")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Token(); err != nil {
		t.Fatal(err)
	}
	if checker.kids[0] != "" {
		t.Errorf("kid %q, want none", checker.kids[0])
	}
}

// TestServiceAccountToken: the projected token is the assertion, read again at each
// request, so a token the kubelet refreshed is sent by the next one.
func TestServiceAccountToken(t *testing.T) {
	var current atomic.Value
	current.Store("sa-token-1")
	srv := newTokenServer(t, func(_ int, form url.Values) (int, string) {
		if form.Get("client_assertion_type") != client.AssertionType || form.Get("client_assertion") != current.Load().(string) || form.Has("client_secret") {
			return http.StatusUnauthorized, "invalid_client"
		}
		return http.StatusOK, ""
	})
	secret := newVolume(t, map[string]string{"client_id": "shop.erp-sync", "token_url": srv.tokenURL(), "issuer": srv.URL})
	projected := newVolume(t, map[string]string{"token": "sa-token-1\n"})
	clk := newClock()
	ts, err := client.New(context.Background(), secret.dir, client.WithClock(clk.Now),
		client.WithServiceAccountTokenFile(filepath.Join(projected.dir, "token")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Token(); err != nil {
		t.Fatal(err)
	}
	projected.update(map[string]string{"token": "sa-token-2"})
	current.Store("sa-token-2")
	clk.Add(2 * time.Hour)
	if _, err := ts.Token(); err != nil {
		t.Fatal(err)
	}
	if n := srv.count(); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
}

// TestTokenReuse counts the requests the server sees: a token is reused until the
// expiry delta before its expiry (10 % of the lifetime, at most 30 s, or the delta
// of WithExpiryDelta), by the injected clock, also by concurrent callers.
func TestTokenReuse(t *testing.T) {
	for _, tc := range []struct {
		name      string
		expiresIn int
		opts      []client.Option
		// refresh is when (after the request) the token is replaced.
		refresh time.Duration
	}{
		{"1h: 30 s before", 3600, nil, 3570 * time.Second},
		{"100 s: 10 % before", 100, nil, 90 * time.Second},
		{"WithExpiryDelta(5m)", 3600, []client.Option{client.WithExpiryDelta(5 * time.Minute)}, 3300 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTokenServer(t, nil)
			srv.expiresIn = tc.expiresIn
			vol := newVolume(t, secretVolume(srv, "s3cret"))
			clk := newClock()
			ts, err := client.New(context.Background(), vol.dir, append(tc.opts, client.WithClock(clk.Now))...)
			if err != nil {
				t.Fatal(err)
			}
			get := func() string {
				t.Helper()
				tok, err := ts.Token()
				if err != nil {
					t.Fatal(err)
				}
				return tok.AccessToken
			}
			// Concurrent first callers: one request.
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() { _, _ = ts.Token() })
			}
			wg.Wait()
			if n := srv.count(); n != 1 {
				t.Fatalf("16 concurrent callers caused %d requests, want 1", n)
			}
			first := get()
			clk.Add(tc.refresh - time.Second)
			if got := get(); got != first || srv.count() != 1 {
				t.Fatalf("1 s before the refresh point: token %s, %d requests; want the first token, 1 request", got, srv.count())
			}
			clk.Add(time.Second)
			second := get()
			if second == first || srv.count() != 2 {
				t.Fatalf("at the refresh point: token %s, %d requests; want a new token, 2 requests", second, srv.count())
			}
			if got := get(); got != second || srv.count() != 2 {
				t.Fatalf("the new token is reused: got %s, %d requests", got, srv.count())
			}
		})
	}
}

// TestInvalidClientRereadsAndRetries: a request refused with invalid_client is retried
// once with the files read again; the secret rotated meanwhile is sent.
func TestInvalidClientRereadsAndRetries(t *testing.T) {
	var vol *volume
	var srv *tokenServer
	srv = newTokenServer(t, func(n int, form url.Values) (int, string) {
		if form.Get("client_secret") != "new" {
			if n == 1 {
				vol.update(secretVolume(srv, "new")) // the kubelet catches up
			}
			return http.StatusUnauthorized, "invalid_client"
		}
		return http.StatusOK, ""
	})
	vol = newVolume(t, secretVolume(srv, "old"))
	ts, err := client.New(context.Background(), vol.dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Token(); err != nil {
		t.Fatalf("after the retry: %v", err)
	}
	if n := srv.count(); n != 2 {
		t.Fatalf("server saw %d requests, want 2", n)
	}
	if a, b := srv.request(0).Get("client_secret"), srv.request(1).Get("client_secret"); a != "old" || b != "new" {
		t.Errorf("secrets sent: %q then %q", a, b)
	}
}

// TestErrors: invalid_client is retried exactly once; other refusals are not
// retried; every refusal is an *oauth2.RetrieveError with the RFC 6749 code.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		status   int
		code     string
		requests int
	}{
		{http.StatusUnauthorized, "invalid_client", 2},
		{http.StatusBadRequest, "invalid_scope", 1},
		{http.StatusBadRequest, "invalid_target", 1},
		{http.StatusTooManyRequests, "slow_down", 1},
	} {
		t.Run(tc.code, func(t *testing.T) {
			srv := newTokenServer(t, func(int, url.Values) (int, string) { return tc.status, tc.code })
			vol := newVolume(t, secretVolume(srv, "s3cret"))
			ts, err := client.New(context.Background(), vol.dir)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := ts.Token()
			var rerr *oauth2.RetrieveError
			if tok != nil || !errors.As(err, &rerr) {
				t.Fatalf("token %v, error %v; want an *oauth2.RetrieveError", tok, err)
			}
			if rerr.ErrorCode != tc.code || rerr.Response.StatusCode != tc.status {
				t.Errorf("error code %q, status %d", rerr.ErrorCode, rerr.Response.StatusCode)
			}
			if tc.status == http.StatusTooManyRequests && rerr.Response.Header.Get("Retry-After") != "7" {
				t.Errorf("Retry-After %q", rerr.Response.Header.Get("Retry-After"))
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the secret: %v", err)
			}
			if n := srv.count(); n != tc.requests {
				t.Errorf("server saw %d requests, want %d", n, tc.requests)
			}
		})
	}
}

// TestRotationUnderLoad: concurrent callers fetch tokens (each a new request) while
// the volume gets a new key and key_id 40 times; the server knows only the current
// and the previous key. No request fails: a key and its key_id are always read from
// the same version of the volume.
func TestRotationUnderLoad(t *testing.T) {
	checker := &assertionChecker{t: t, now: time.Now, seen: map[string]bool{}}
	srv := newTokenServer(t, checker.check)
	checker.tokenURL = srv.tokenURL()
	data := func(i int, k crypto.Signer) map[string]string {
		return map[string]string{"client_id": "shop.erp-sync", "token_url": srv.tokenURL(), "issuer": srv.URL,
			"private_key": pkcs8PEM(t, k), "key_id": fmt.Sprintf("kid-%d", i)}
	}
	keys := []crypto.Signer{}
	for range 41 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	checker.setKeys("ES256", map[string]crypto.PublicKey{"kid-0": keys[0].Public()})
	vol := newVolume(t, data(0, keys[0]))
	// A delta longer than the token's lifetime: no token is reused, each Token call is
	// a request.
	ts, err := client.New(context.Background(), vol.dir, client.WithExpiryDelta(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	var failures atomic.Int64
	var fetched atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := ts.Token(); err != nil {
					failures.Add(1)
					t.Error(err)
				}
				fetched.Add(1)
			}
		})
	}
	for i := 1; i < len(keys); i++ {
		checker.setKeys("ES256", map[string]crypto.PublicKey{
			fmt.Sprintf("kid-%d", i-1): keys[i-1].Public(), fmt.Sprintf("kid-%d", i): keys[i].Public()})
		vol.update(data(i, keys[i]))
		for start := fetched.Load(); fetched.Load() < start+3; {
			time.Sleep(time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d tokens fetched, %d requests, %d failures, 40 key rotations", fetched.Load(), srv.count(), failures.Load())
	if failures.Load() != 0 {
		t.Fatalf("%d failed token fetches", failures.Load())
	}
	if srv.count() < 120 {
		t.Errorf("only %d requests", srv.count())
	}
	if last := checker.kids[len(checker.kids)-1]; last != "kid-40" {
		t.Errorf("last kid %s, want kid-40", last)
	}
}

// TestNewRefusesUnusableFiles: New reports at once what would fail every request.
func TestNewRefusesUnusableFiles(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	base := func(extra map[string]string) map[string]string {
		m := map[string]string{"client_id": "shop.erp-sync", "token_url": "http://127.0.0.1:1/oauth2-token"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	noSA := client.WithServiceAccountTokenFile(filepath.Join(t.TempDir(), "absent"))
	for _, tc := range []struct {
		name string
		data map[string]string
		opts []client.Option
		want string
	}{
		{"no client_id", map[string]string{"token_url": "http://x/oauth2-token", "client_secret": "s"}, nil, "client_id"},
		{"empty client_id", base(map[string]string{"client_id": "\n", "client_secret": "s"}), nil, "client_id is empty"},
		{"token_url not a URL", base(map[string]string{"token_url": "ftp://x", "client_secret": "s"}), nil, "not an http(s) URL"},
		{"no credential", base(nil), []client.Option{noSA}, "neither client_secret nor private_key"},
		{"private_key without key_id", base(map[string]string{"private_key": pkcs8PEM(t, ec)}), nil, "no key_id"},
		{"private_key not PEM", base(map[string]string{"private_key": "garbage", "key_id": "k"}), nil, "no PEM block"},
		{"P-384 key", base(map[string]string{"private_key": pkcs8PEM(t, p384), "key_id": "k"}), nil, "P-256"},
		{"RSA 1024", base(nil), []client.Option{client.WithPrivateKey(rsa1024, "k")}, "2048"},
		{"scope with a space", base(map[string]string{"client_secret": "s"}), []client.Option{client.WithScopes("a b")}, "no spaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vol := newVolume(t, tc.data)
			_, err := client.New(context.Background(), vol.dir, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := client.New(context.Background(), filepath.Join(t.TempDir(), "missing")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing directory: %v", err)
	}
}

// TestNewHTTPClient: requests carry the bearer token of the source, fetched once.
func TestNewHTTPClient(t *testing.T) {
	srv := newTokenServer(t, nil)
	vol := newVolume(t, secretVolume(srv, "s3cret"))
	ts, err := client.New(context.Background(), vol.dir)
	if err != nil {
		t.Fatal(err)
	}
	var auths []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auths = append(auths, r.Header.Get("Authorization"))
	}))
	defer api.Close()
	hc := client.NewHTTPClient(context.Background(), ts)
	for range 3 {
		resp, err := hc.Get(api.URL)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	if strings.Join(auths, ",") != "Bearer access-token-1,Bearer access-token-1,Bearer access-token-1" {
		t.Errorf("Authorization headers %q", auths)
	}
	if n := srv.count(); n != 1 {
		t.Errorf("server saw %d token requests, want 1", n)
	}
}
