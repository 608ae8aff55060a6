package verifier

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// newKeySet returns a KeySet of is's JWKS (no discovery) on clock.
func newKeySet(t *testing.T, is *testIssuer, clock *fakeClock, edit ...func(*KeySetOptions)) *KeySet {
	t.Helper()
	opts := KeySetOptions{JWKSURL: is.URL() + "/.well-known/jwks.json", Clock: clock}
	for _, f := range edit {
		f(&opts)
	}
	ks, err := NewKeySet(opts)
	if err != nil {
		t.Fatalf("NewKeySet: %v", err)
	}
	return ks
}

func TestNewKeySetValidates(t *testing.T) {
	tests := []struct {
		name string
		opts KeySetOptions
		want string // substring of the error; "" means success
	}{
		{"JWKS URL", KeySetOptions{JWKSURL: "https://keys.example.com/jwks"}, ""},
		{"discovery", KeySetOptions{DiscoveryURL: "https://id.example.com/.well-known/openid-configuration", Issuer: "https://id.example.com"}, ""},
		{"static JWKS", KeySetOptions{JWKS: []byte(`{"keys":[` + string(newKey("es-1", "ES256").jwk()) + `]}`)}, ""},
		{"neither", KeySetOptions{}, "exactly one of JWKSURL, DiscoveryURL and JWKS"},
		{"URL and static JWKS", KeySetOptions{JWKSURL: "https://a/jwks", JWKS: []byte(`{"keys":[]}`)}, "exactly one"},
		{"static JWKS not a JWK Set", KeySetOptions{JWKS: []byte(`[]`)}, "JWKS is not a JSON object"},
		{"static JWKS without usable key", KeySetOptions{JWKS: []byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`)}, "no usable key"},
		{"both", KeySetOptions{JWKSURL: "https://a/jwks", DiscoveryURL: "https://a/.well-known/openid-configuration", Issuer: "https://a"}, "exactly one"},
		{"JWKS URL not http(s)", KeySetOptions{JWKSURL: "ftp://keys.example.com/jwks"}, "JWKSURL"},
		{"discovery without issuer", KeySetOptions{DiscoveryURL: "https://id.example.com/.well-known/openid-configuration"}, "Issuer is required"},
		{"negative refresh interval", KeySetOptions{JWKSURL: "https://a/jwks", RefreshInterval: -time.Second}, "RefreshInterval"},
		{"negative max age", KeySetOptions{JWKSURL: "https://a/jwks", MaxAge: -time.Second}, "MaxAge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := NewKeySet(tt.opts)
			if tt.want == "" {
				if err != nil || ks == nil {
					t.Fatalf("NewKeySet: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewKeySet error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestKeySetKeyfunc: the KeySet as golang-jwt's Keyfunc: by kid, without
// kid (every key of the algorithm), RSA keys for PS256 too, and no key for
// an algorithm it does not serve.
func TestKeySetKeyfunc(t *testing.T) {
	es, rs, ed := newKey("es-1", "ES256"), newKey("rs-1", "RS256"), newKey("ed-1", "EdDSA")
	rsNoAlg := &testKey{kid: "rs-noalg", alg: "PS256", priv: rs.priv}
	is := newIssuer(t, es, rs, ed, rsNoAlg)
	clock := newClock()
	ks := newKeySet(t, is, clock)
	parse := func(method jwt.SigningMethod, key any, header map[string]any) error {
		tok := jwt.NewWithClaims(method, jwt.MapClaims{"sub": "x"})
		for k, v := range header {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		_, err = jwt.NewParser(jwt.WithTimeFunc(clock.Now)).Parse(s, ks.Keyfunc)
		return err
	}
	tests := []struct {
		name    string
		method  jwt.SigningMethod
		key     any
		header  map[string]any
		wantErr string // "" means verified
	}{
		{"ES256 by kid", jwt.SigningMethodES256, es.priv, map[string]any{"kid": "es-1"}, ""},
		{"RS256 by kid", jwt.SigningMethodRS256, rs.priv, map[string]any{"kid": "rs-1"}, ""},
		{"EdDSA by kid", jwt.SigningMethodEdDSA, ed.priv, map[string]any{"kid": "ed-1"}, ""},
		{"PS256 with an RSA key without alg", jwt.SigningMethodPS256, rs.priv, map[string]any{"kid": "rs-noalg"}, ""},
		{"PS256 with an RSA key published for RS256", jwt.SigningMethodPS256, rs.priv, map[string]any{"kid": "rs-1"}, "algorithm does not match key"},
		{"RS256 naming an EC key", jwt.SigningMethodRS256, rs.priv, map[string]any{"kid": "es-1"}, "algorithm does not match key"},
		{"no kid, ES256", jwt.SigningMethodES256, es.priv, nil, ""},
		{"no kid, RS256: every RSA key is tried", jwt.SigningMethodRS256, rs.priv, nil, ""},
		{"no kid, an algorithm no key serves", jwt.SigningMethodES384, mustP384(), nil, "no key for the algorithm"},
		{"kid not a string", jwt.SigningMethodES256, es.priv, map[string]any{"kid": 7}, "malformed key id"},
		{"unknown kid", jwt.SigningMethodES256, es.priv, map[string]any{"kid": "nope"}, "unknown key id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := parse(tt.method, tt.key, tt.header)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("parse: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("parse error = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if n := is.jwksHits.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1 (the unknown kid within RefreshInterval of the first fetch)", n)
	}
}

// TestKeySetStatic: keys given as a document verify by kid, never cause a
// request (there is no URL), and an unknown kid is refused at once.
func TestKeySetStatic(t *testing.T) {
	es, ed := newKey("es-1", "ES256"), newKey("ed-1", "EdDSA")
	clock := newClock()
	doc := must(json.Marshal(map[string]any{"keys": []json.RawMessage{es.jwk(), ed.jwk()}}))
	ks, err := NewKeySet(KeySetOptions{JWKS: doc, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if k, err := ks.Key(verifyCtx(t), "ed-1", "EdDSA"); err != nil || k == nil {
		t.Fatalf("Key(ed-1) = %v, %v", k, err)
	}
	clock.Advance(1000 * time.Hour)
	if _, err := ks.Key(verifyCtx(t), "es-1", "ES256"); err != nil {
		t.Fatalf("static keys never go stale: %v", err)
	}
	if _, err := ks.Key(verifyCtx(t), "nope", "ES256"); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "unknown key id") {
		t.Fatalf("unknown kid: %v", err)
	}
	if err := ks.Refresh(verifyCtx(t)); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if s := ks.Status(); s.Keys != 2 || s.LastError != nil || !s.StaleSince.IsZero() {
		t.Fatalf("status %+v", s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ks.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestKeySetUnknownKeyIDsNeverWait: 50 made-up key ids cost the issuer one
// request per RefreshInterval, and a caller that may not fetch is answered
// at once: with the issuer's JWKS endpoint hanging, it still gets "unknown
// key id" instead of waiting for a fetch.
func TestKeySetUnknownKeyIDsNeverWait(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	clock := newClock()
	ks := newKeySet(t, is, clock, func(o *KeySetOptions) { o.RefreshInterval = time.Minute })
	if _, err := ks.Key(verifyCtx(t), "es-1", "ES256"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	for i := range 50 {
		_, err := ks.Key(verifyCtx(t), "made-up-"+string(rune('a'+i%26))+string(rune('a'+i/26)), "ES256")
		if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "unknown key id") {
			t.Fatalf("made-up kid %d: %v, want unknown key id", i, err)
		}
	}
	if n := is.jwksHits.Load(); n != 2 {
		t.Fatalf("50 made-up kids: JWKS fetched %d times in all, want 2 (the first fetch and one refetch)", n)
	}
	hang := make(chan struct{})
	defer close(hang)
	is.set(func(is *testIssuer) { is.gate = hang }) // a fetch now would never end
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := ks.Key(ctx, "made-up-again", "ES256"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a throttled unknown kid: %v, want an immediate unknown key id", err)
	}
	if _, err := ks.Key(ctx, "es-1", "ES256"); err != nil {
		t.Fatalf("known kid: %v", err)
	}
}

// TestKeySetStatus: Status says how many keys are held, when they were
// fetched, and since when they are stale while the issuer does not answer.
func TestKeySetStatus(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	is.set(func(is *testIssuer) { is.cacheControl = "max-age=300" })
	clock := newClock()
	var fetchErrs []error
	ks := newKeySet(t, is, clock, func(o *KeySetOptions) { o.OnFetch = func(err error) { fetchErrs = append(fetchErrs, err) } })
	if s := ks.Status(); s.Keys != 0 || !s.FetchedAt.IsZero() || !s.StaleSince.IsZero() || s.LastError != nil {
		t.Fatalf("before any fetch: %+v", s)
	}
	t0 := clock.Now()
	if err := ks.Refresh(verifyCtx(t)); err != nil {
		t.Fatal(err)
	}
	if s := ks.Status(); s.Keys != 1 || !s.FetchedAt.Equal(t0) || !s.FreshUntil.Equal(t0.Add(300*time.Second)) || !s.StaleSince.IsZero() {
		t.Fatalf("after a fetch: %+v", s)
	}

	is.down.Store(true)
	clock.Advance(time.Minute)
	if err := ks.Refresh(verifyCtx(t)); err == nil {
		t.Fatal("Refresh with the issuer down succeeded")
	}
	if s := ks.Status(); s.Keys != 1 || s.LastError == nil || !s.StaleSince.IsZero() {
		t.Fatalf("failed fetch while the keys are fresh: %+v, want not stale", s)
	}
	clock.Advance(5 * time.Minute)
	if s := ks.Status(); !s.StaleSince.Equal(t0.Add(300 * time.Second)) {
		t.Fatalf("past freshness with the last fetch failed: StaleSince %s, want the end of freshness %s", s.StaleSince, t0.Add(300*time.Second))
	}
	is.down.Store(false)
	if err := ks.Refresh(verifyCtx(t)); err != nil {
		t.Fatal(err)
	}
	if s := ks.Status(); !s.StaleSince.IsZero() || s.LastError != nil || !s.FetchedAt.Equal(clock.Now()) {
		t.Fatalf("after recovery: %+v", s)
	}
	if len(fetchErrs) != 3 || fetchErrs[0] != nil || fetchErrs[1] == nil || fetchErrs[2] != nil {
		t.Errorf("OnFetch saw %v, want nil, an error, nil", fetchErrs)
	}

	t.Run("never fetched", func(t *testing.T) {
		down := newIssuer(t, es)
		down.down.Store(true)
		ks := newKeySet(t, down, clock)
		at := clock.Now()
		if err := ks.Refresh(verifyCtx(t)); err == nil {
			t.Fatal("Refresh succeeded")
		}
		if s := ks.Status(); s.Keys != 0 || !s.StaleSince.Equal(at) {
			t.Fatalf("%+v, want stale since the failed fetch %s", s, at)
		}
	})
}

// TestKeySetRun: Run fetches the JWKS again each time it goes stale,
// without any token asking, so a key the issuer removed is dropped; it
// returns when its context ends.
func TestKeySetRun(t *testing.T) {
	removed, kept := freshECKey("key-1"), newKey("key-2", "EdDSA")
	is := newIssuer(t, removed, kept)
	is.set(func(is *testIssuer) { is.cacheControl = "no-cache" })
	ks, err := NewKeySet(KeySetOptions{JWKSURL: is.URL() + "/.well-known/jwks.json", RefreshInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- ks.Run(ctx) }()

	waitFor(t, "the first fetch", func() bool { return ks.Status().Keys == 2 })
	is.setKeys(kept)
	waitFor(t, "the removed key to be dropped", func() bool { return ks.Status().Keys == 1 })
	if _, err := ks.Key(verifyCtx(t), "key-1", "ES256"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("removed key: %v, want refused", err)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	hits := is.jwksHits.Load()
	if hits < 2 {
		t.Fatalf("JWKS fetched %d times, want at least 2", hits)
	}
	t.Logf("Run fetched the JWKS %d times", hits)
}

// waitFor polls cond until it holds or 10 s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestKeySetDocumentTooLarge: a JWKS over 1 MiB fails the fetch.
func TestKeySetDocumentTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("a", maxDocumentSize) + `"}`))
	}))
	defer srv.Close()
	ks, err := NewKeySet(KeySetOptions{JWKSURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Refresh(verifyCtx(t)); !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Refresh = %v, want the document refused as too large", err)
	}
}

// TestKeySetHTTPClient: the injected client's Transport makes the requests
// (here, adding credentials as a Kubernetes client does).
func TestKeySetHTTPClient(t *testing.T) {
	es := newKey("es-1", "ES256")
	var auth atomic.Value
	is := newIssuer(t, es)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		is.srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ks, err := NewKeySet(KeySetOptions{JWKSURL: srv.URL + "/.well-known/jwks.json", HTTPClient: &http.Client{Transport: withAuthorization("Bearer operator-credential")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Key(verifyCtx(t), "es-1", "ES256"); err != nil {
		t.Fatal(err)
	}
	if got, _ := auth.Load().(string); got != "Bearer operator-credential" {
		t.Errorf("Authorization = %q, want the transport's", got)
	}
}

// withAuthorization is a Transport that adds an Authorization header to
// every request, as client-go's bearer-token round tripper does: net/http's
// redirect handling cannot strip it.
type withAuthorization string

func (a withAuthorization) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", string(a))
	return http.DefaultTransport.RoundTrip(r)
}

// TestKeySetRedirects: a redirect within the origin is followed; one to
// another origin (another port, another loopback host, https to http) fails
// the fetch before the other origin receives anything, so neither the
// credentials the Transport adds nor the keys of another host are used.
// The discovery document is fetched by the same rule.
func TestKeySetRedirects(t *testing.T) {
	es := newKey("es-1", "ES256")
	target := newIssuer(t, es) // serves valid keys: its handler runs on two other origins
	var targetAuth atomic.Value
	targetAuth.Store("")
	otherPort := serveOn(t, "127.0.0.1:0", recordAuth(target.srv.Config.Handler, &targetAuth))
	otherHost := serveOn(t, "127.0.0.2:0", recordAuth(target.srv.Config.Handler, &targetAuth))

	home := newIssuer(t, es)
	mux := home.srv.Config.Handler.(*http.ServeMux)
	redirect := func(path, to string, status int) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, status) })
	}
	redirect("/same-origin", "/.well-known/jwks.json", http.StatusFound)
	redirect("/other-port-302", otherPort+"/.well-known/jwks.json", http.StatusFound)
	redirect("/other-port-307", otherPort+"/.well-known/jwks.json", http.StatusTemporaryRedirect)
	redirect("/other-host", otherHost+"/.well-known/jwks.json", http.StatusMovedPermanently)
	redirect("/hop", "/other-port-302", http.StatusFound)
	redirect("/discovery-elsewhere", otherPort+"/.well-known/oauth-authorization-server", http.StatusFound)

	tests := []struct {
		name    string
		opts    KeySetOptions
		refused bool
	}{
		{"same origin", KeySetOptions{JWKSURL: home.URL() + "/same-origin"}, false},
		{"another port (302)", KeySetOptions{JWKSURL: home.URL() + "/other-port-302"}, true},
		{"another port (307)", KeySetOptions{JWKSURL: home.URL() + "/other-port-307"}, true},
		{"another host", KeySetOptions{JWKSURL: home.URL() + "/other-host"}, true},
		{"same origin, then another", KeySetOptions{JWKSURL: home.URL() + "/hop"}, true},
		{"discovery redirected elsewhere", KeySetOptions{DiscoveryURL: home.URL() + "/discovery-elsewhere", Issuer: target.URL()}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := target.jwksHits.Load() + target.metaHits.Load()
			tt.opts.HTTPClient = &http.Client{Transport: withAuthorization("Bearer operator-credential")}
			ks, err := NewKeySet(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ks.Key(verifyCtx(t), "es-1", "ES256")
			if !tt.refused {
				if err != nil {
					t.Fatalf("Key: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "refused a redirect") {
				t.Fatalf("Key = %v, want ErrKeysUnavailable for a refused redirect", err)
			}
			if n := target.jwksHits.Load() + target.metaHits.Load() - before; n != 0 {
				t.Errorf("the other origin received %d requests", n)
			}
		})
	}
	if got := targetAuth.Load().(string); got != "" {
		t.Errorf("the other origin received the credential %q", got)
	}

	t.Run("the client's own policy still applies", func(t *testing.T) {
		ks, err := NewKeySet(KeySetOptions{JWKSURL: home.URL() + "/same-origin", HTTPClient: &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("no redirects here") },
		}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ks.Key(verifyCtx(t), "es-1", "ES256"); err == nil || !strings.Contains(err.Error(), "no redirects here") {
			t.Fatalf("Key = %v, want the client's CheckRedirect error", err)
		}
	})
}

// TestVerifierRefusesRedirectToAnotherOrigin: the Verifier's JWKS fetch
// follows the KeySet's redirect rule.
func TestVerifierRefusesRedirectToAnotherOrigin(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	attacker := newIssuer(t, es)
	moved := httptest.NewServer(http.RedirectHandler(attacker.URL()+"/.well-known/jwks.json", http.StatusFound))
	defer moved.Close()
	clock := newClock()
	v := newVerifier(t, is, clock, func(c *Config) { c.JWKSURL = moved.URL })
	_, err := v.Verify(verifyCtx(t), mint(t, es, claimsAt(is, clock.Now())))
	if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "another origin") {
		t.Fatalf("Verify = %v, want ErrKeysUnavailable for a redirect to another origin", err)
	}
	if n := attacker.jwksHits.Load(); n != 0 {
		t.Errorf("the other origin's JWKS was fetched %d times", n)
	}
}

func TestOrigin(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"https://a.example/x", "https://A.example:443/y", true},
		{"http://a.example/x", "http://a.example:80/y", true},
		{"https://a.example/x", "http://a.example/x", false},
		{"https://a.example/x", "https://a.example:8443/x", false},
		{"https://a.example/x", "https://b.a.example/x", false},
		{"http://127.0.0.1:8080/", "http://127.0.0.2:8080/", false},
		{"http://[::1]:8080/", "http://[::1]:8080/jwks", true},
	}
	for _, tt := range tests {
		if got := sameOrigin(mustURL(tt.a), mustURL(tt.b)); got != tt.same {
			t.Errorf("sameOrigin(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
}

func recordAuth(next http.Handler, into *atomic.Value) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			into.Store(a)
		}
		next.ServeHTTP(w, r)
	})
}

// serveOn serves h on addr (another loopback host) and returns its URL.
func serveOn(t *testing.T, addr string, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

func mustP384() any { return must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) }

func mustURL(s string) *url.URL { return must(url.Parse(s)) }
