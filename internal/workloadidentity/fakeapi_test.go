package workloadidentity_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-logr/logr"
	"github.com/golang-jwt/jwt/v5"
	"k8s.io/client-go/rest"

	"github.com/oauth-client-operator/oauth-client-operator/internal/workloadidentity"
)

// These tests stand a small HTTP server in for the API server's two ServiceAccount
// issuer endpoints: no control plane needed.

const (
	fakeIssuer    = "https://kubernetes.default.svc.cluster.local"
	operatorToken = "operator-credential"
)

// fakeAPIServer serves the discovery document and the JWKS of key, and counts reads
// and the requests that carried the operator's credential.
type fakeAPIServer struct {
	*httptest.Server
	key        *rsa.PrivateKey
	jwksReads  atomic.Int64
	credential atomic.Int64
	redirected atomic.Int64 // requests answered with a redirect
	// redirect, when set, answers the path with a 302 to it.
	redirect map[string]string
}

var rsaKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

func newFakeAPIServer(t *testing.T, redirect map[string]string) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{key: rsaKey, redirect: redirect}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPIServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "Bearer "+operatorToken {
		f.credential.Add(1)
	}
	if to, ok := f.redirect[r.URL.Path]; ok {
		f.redirected.Add(1)
		http.Redirect(w, r, to, http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case workloadidentity.DiscoveryPath:
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": fakeIssuer, "jwks_uri": "https://10.0.0.1:6443" + workloadidentity.JWKSPath})
	case workloadidentity.JWKSPath:
		f.jwksReads.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=3600") // as kube-apiserver sends
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &f.key.PublicKey, KeyID: "sa-key", Algorithm: "RS256", Use: "sig"}}})
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeAPIServer) token(t *testing.T, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer: fakeIssuer, Subject: "system:serviceaccount:shop:erp-sync",
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)), IssuedAt: jwt.NewNumericDate(time.Now()),
	})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(f.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startIssuer(t *testing.T, api *fakeAPIServer, o workloadidentity.Options) *workloadidentity.Issuer {
	t.Helper()
	o.Config = &rest.Config{Host: api.URL, BearerToken: operatorToken}
	o.Log = logr.Discard()
	iss, err := workloadidentity.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- iss.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
	return iss
}

func waitReady(t *testing.T, iss *workloadidentity.Issuer) {
	t.Helper()
	select {
	case <-iss.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("issuer not discovered")
	}
}

// TestIssuerWithoutControlPlane: the issuer and keys read with the operator's
// credentials; a ServiceAccount token verifies; 50 made-up key ids cost no read within
// the unknown-key interval; the cached keys keep verifying once the API server is gone.
func TestIssuerWithoutControlPlane(t *testing.T) {
	t.Parallel()
	api := newFakeAPIServer(t, nil)
	iss := startIssuer(t, api, workloadidentity.Options{UnknownKeyInterval: time.Hour})
	waitReady(t, iss)
	if iss.Issuer() != fakeIssuer {
		t.Fatalf("issuer %q, want %q", iss.Issuer(), fakeIssuer)
	}
	if s := iss.Keys(); s.Keys != 1 || s.FetchedAt.IsZero() || !s.StaleSince.IsZero() {
		t.Fatalf("keys status %+v", s)
	}
	// With the default intervals, the API server's max-age of an hour is capped: the
	// keys are read again every 5 minutes, as the README says.
	defaults := startIssuer(t, newFakeAPIServer(t, nil), workloadidentity.Options{})
	waitReady(t, defaults)
	if s := defaults.Keys(); s.FreshUntil.Sub(s.FetchedAt) != workloadidentity.DefaultRefreshInterval {
		t.Errorf("keys fresh for %s, want %s", s.FreshUntil.Sub(s.FetchedAt), workloadidentity.DefaultRefreshInterval)
	}
	if api.credential.Load() != 2 {
		t.Errorf("%d requests carried the operator's credential, want 2 (discovery, JWKS)", api.credential.Load())
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"RS256", "PS256", "ES256", "EdDSA"}), jwt.WithIssuer(iss.Issuer()))
	if _, err := parser.Parse(api.token(t, "sa-key"), iss.Keyfunc); err != nil {
		t.Fatalf("verify a ServiceAccount token: %v", err)
	}

	before := api.jwksReads.Load()
	for i := range 50 {
		if _, err := parser.Parse(api.token(t, fmt.Sprintf("made-up-%d", i)), iss.Keyfunc); err == nil {
			t.Fatal("a made-up key id verified")
		}
	}
	if reads := api.jwksReads.Load() - before; reads != 0 {
		t.Errorf("50 unknown key ids caused %d reads within the unknown-key interval, want 0", reads)
	}

	api.Close() // the API server is gone
	if _, err := parser.Parse(api.token(t, "sa-key"), iss.Keyfunc); err != nil {
		t.Fatalf("verify with cached keys while the API server is unreachable: %v", err)
	}
}

// TestIssuerRefusesRedirects: an API server endpoint answering with a redirect to
// another host gets neither the operator's credential nor a say over the keys: the
// issuer stays undiscovered, and the other host receives nothing.
func TestIssuerRefusesRedirects(t *testing.T) {
	t.Parallel()
	for _, path := range []string{workloadidentity.DiscoveryPath, workloadidentity.JWKSPath} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			elsewhere := newFakeAPIServer(t, nil) // serves keys that would verify
			api := newFakeAPIServer(t, map[string]string{path: elsewhere.URL + path})
			iss := startIssuer(t, api, workloadidentity.Options{})
			// The second redirect comes with the retry after the first attempt, which
			// has then ended, the redirect followed or not.
			deadline := time.Now().Add(30 * time.Second)
			for api.redirected.Load() < 2 {
				select {
				case <-iss.Ready():
					t.Fatalf("discovered through a redirect to another host, which received the operator's credential %d times", elsewhere.credential.Load())
				case <-time.After(10 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatal("the issuer did not try twice")
				}
			}
			select {
			case <-iss.Ready():
				t.Fatal("discovered through a redirect to another host")
			default:
			}
			if n := elsewhere.credential.Load(); n != 0 {
				t.Errorf("the other host received the operator's credential %d times", n)
			}
			if _, err := iss.Keyfunc(&jwt.Token{Method: jwt.SigningMethodRS256, Header: map[string]any{"alg": "RS256", "kid": "sa-key"}}); !errors.Is(err, workloadidentity.ErrNotReady) {
				t.Errorf("Keyfunc = %v, want ErrNotReady", err)
			}
		})
	}
}
