package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/oauth-client-operator/oauth-client-operator/pkg/client"
)

// recorder is a server of another origin that records what reaches it and answers
// every request with 200 and a token of its own: what an attacker's host would do.
type recorder struct {
	URL string
	mu  sync.Mutex
	got []string // per request: method, path, Authorization, body
}

// newRecorder serves on addr: "127.0.0.1:0" (another port) or "127.0.0.2:0" (another
// loopback host).
func newRecorder(t *testing.T, addr string) *recorder {
	t.Helper()
	rec := &recorder{}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.got = append(rec.got, strings.Join([]string{r.Method, r.URL.Path, r.Header.Get("Authorization"), string(body)}, " | "))
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"attacker-token","token_type":"Bearer","expires_in":3600}`)
	})}}
	srv.Start()
	t.Cleanup(srv.Close)
	rec.URL = srv.URL
	return rec
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// redirecting is a token server of the home origin: /moved answers with a redirect
// (status, location), /oauth2-token issues tokens.
func redirecting(t *testing.T, status int, location string) *tokenServer {
	t.Helper()
	srv := &tokenServer{expiresIn: 3600}
	srv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			w.Header().Set("Location", location)
			w.WriteHeader(status)
			return
		}
		srv.serve(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestTokenRequestRefusesRedirectToAnotherOrigin: a token_url answering with a
// redirect to another origin gets no client_id, secret or assertion there (a 307 or
// 308 would resend the body), and no token from there is used (a 302 would): the
// request fails with ErrRedirectRefused. A redirect within the origin is followed.
func TestTokenRequestRefusesRedirectToAnotherOrigin(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	saToken := newVolume(t, map[string]string{"token": "sa-token-of-the-pod"})
	credentials := map[string]map[string]string{
		"ClientSecret":        {"client_secret": "s3cret"},
		"PrivateKeyJWT":       {"private_key": pkcs8PEM(t, key), "key_id": "k1"},
		"ServiceAccountToken": {},
	}
	for method, credential := range credentials {
		for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
			for _, addr := range []string{"127.0.0.1:0", "127.0.0.2:0"} {
				t.Run(method+"/"+http.StatusText(status)+"/"+addr, func(t *testing.T) {
					attacker := newRecorder(t, addr)
					home := redirecting(t, status, attacker.URL+"/oauth2-token")
					files := map[string]string{"client_id": "shop.erp-sync", "token_url": home.URL + "/moved", "issuer": home.URL}
					for k, v := range credential {
						files[k] = v
					}
					ts, err := client.New(context.Background(), newVolume(t, files).dir,
						client.WithServiceAccountTokenFile(filepath.Join(saToken.dir, "token")))
					if err != nil {
						t.Fatal(err)
					}
					tok, err := ts.Token()
					if got := attacker.requests(); len(got) != 0 {
						t.Errorf("the other origin received %q", got)
					}
					if !errors.Is(err, client.ErrRedirectRefused) {
						t.Fatalf("Token() = %v, %v; want ErrRedirectRefused", tok, err)
					}
					if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "sa-token") {
						t.Errorf("the error holds a credential: %v", err)
					}
				})
			}
		}
	}

	t.Run("same origin", func(t *testing.T) {
		home := redirecting(t, http.StatusTemporaryRedirect, "/oauth2-token")
		ts, err := client.New(context.Background(), newVolume(t, map[string]string{
			"client_id": "shop.erp-sync", "token_url": home.URL + "/moved", "issuer": home.URL, "client_secret": "s3cret",
		}).dir)
		if err != nil {
			t.Fatal(err)
		}
		if tok, err := ts.Token(); err != nil || tok.AccessToken != "access-token-1" {
			t.Fatalf("Token() = %v, %v; want the home origin's token", tok, err)
		}
		if got := home.request(0).Get("client_secret"); got != "s3cret" {
			t.Errorf("the token endpoint received client_secret %q", got)
		}
	})

	t.Run("the client's own redirect policy still applies", func(t *testing.T) {
		home := redirecting(t, http.StatusTemporaryRedirect, "/oauth2-token")
		policy := errors.New("no redirects for this client")
		hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return policy }}
		ts, err := client.New(context.Background(), newVolume(t, map[string]string{
			"client_id": "shop.erp-sync", "token_url": home.URL + "/moved", "issuer": home.URL, "client_secret": "s3cret",
		}).dir, client.WithHTTPClient(hc))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ts.Token(); !errors.Is(err, policy) {
			t.Fatalf("Token() error %v, want the client's own", err)
		}
	})
}

// TestNewHTTPClientKeepsTokenInOrigin: an API answering 302 to another origin does not
// pass the bearer token on: the redirect is followed without it (as net/http strips
// an Authorization header set on the request). Within the origin, and back to it
// through another origin, the token is sent.
func TestNewHTTPClientKeepsTokenInOrigin(t *testing.T) {
	srv := newTokenServer(t, nil)
	ts, err := client.New(context.Background(), newVolume(t, secretVolume(srv, "s3cret")).dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"127.0.0.1:0", "127.0.0.2:0"} {
		t.Run(addr, func(t *testing.T) {
			attacker := newRecorder(t, addr)
			var mu sync.Mutex
			var homeAuth []string
			mux := http.NewServeMux()
			api := httptest.NewServer(mux)
			defer api.Close()
			var elsewhereAuth []string // another origin that sends the client back home
			elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				elsewhereAuth = append(elsewhereAuth, r.Header.Get("Authorization"))
				mu.Unlock()
				http.Redirect(w, r, api.URL+"/new", http.StatusFound)
			}))
			defer elsewhere.Close()
			mux.HandleFunc("/export", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, attacker.URL+"/loot", http.StatusFound)
			})
			mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/new", http.StatusTemporaryRedirect)
			})
			mux.HandleFunc("/round-trip", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, elsewhere.URL+"/back", http.StatusFound)
			})
			mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				homeAuth = append(homeAuth, r.Header.Get("Authorization"))
				mu.Unlock()
			})
			hc := client.NewHTTPClient(context.Background(), ts)
			for _, path := range []string{"/export", "/old", "/round-trip"} {
				resp, err := hc.Get(api.URL + path)
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				_ = resp.Body.Close()
			}
			if got := attacker.requests(); len(got) != 1 || got[0] != "GET | /loot |  | " {
				t.Errorf("the other origin received %q, want one GET without Authorization", got)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(homeAuth) != 2 || homeAuth[0] != "Bearer access-token-1" || homeAuth[1] != "Bearer access-token-1" {
				t.Errorf("the home origin received Authorization %q after redirects within it and back to it", homeAuth)
			}
			if len(elsewhereAuth) != 1 || elsewhereAuth[0] != "" {
				t.Errorf("the origin between received Authorization %q", elsewhereAuth)
			}
		})
	}
}
