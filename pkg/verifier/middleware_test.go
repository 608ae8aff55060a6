package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMiddleware(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	clock := newClock()
	v := newVerifier(t, is, clock)
	now := clock.Now()
	valid := mint(t, es, claimsAt(is, now))
	expired := mint(t, es, edit(claimsAt(is, now), map[string]any{"exp": now.Add(-time.Hour).Unix()}))
	readOnly := mint(t, es, edit(claimsAt(is, now), map[string]any{"scope": "orders:read"}))
	const realm = `Bearer realm="api://orders"`

	tests := []struct {
		name          string
		authorization []string
		status        int
		challenge     string // exact WWW-Authenticate; "" means absent
		errorCode     string // "error" of the JSON body
		description   string // "error_description" of the JSON body
	}{
		{"no Authorization header", nil, 401, realm, "unauthorized", "bearer token required"},
		{"another scheme", []string{"Basic Y2xpZW50OnNlY3JldA=="}, 401, realm, "unauthorized", "bearer token required"},
		{"bearer without token", []string{"Bearer"}, 401,
			realm + `, error="invalid_token", error_description="malformed Authorization header"`, "invalid_token", "malformed Authorization header"},
		{"bearer with two tokens", []string{"Bearer " + valid + " " + valid}, 401,
			realm + `, error="invalid_token", error_description="malformed Authorization header"`, "invalid_token", "malformed Authorization header"},
		{"two Authorization headers", []string{"Bearer " + valid, "Bearer " + valid}, 401,
			realm + `, error="invalid_token", error_description="malformed Authorization header"`, "invalid_token", "malformed Authorization header"},
		{"garbage token", []string{"Bearer not-a-jwt"}, 401,
			realm + `, error="invalid_token", error_description="malformed token: not a JWS in compact form"`, "invalid_token", "malformed token: not a JWS in compact form"},
		{"expired token", []string{"Bearer " + expired}, 401,
			realm + `, error="invalid_token", error_description="token expired"`, "invalid_token", "token expired"},
		{"missing scope", []string{"Bearer " + readOnly}, 403,
			realm + `, error="insufficient_scope", scope="orders:read orders:write"`, "insufficient_scope", "token lacks a required scope: orders:read orders:write"},
		{"valid", []string{"Bearer " + valid}, 200, "", "", ""},
		{"valid, lower-case scheme and extra spaces", []string{"bearer   " + valid + " "}, 200, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen *Claims
			h := v.Middleware("orders:read", "orders:write")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen, _ = ClaimsFromContext(r.Context())
				w.WriteHeader(http.StatusOK)
			}))
			req := httptest.NewRequestWithContext(verifyCtx(t), http.MethodGet, "/orders", nil)
			for _, a := range tt.authorization {
				req.Header.Add("Authorization", a)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.status, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
			}
			if tt.status == http.StatusOK {
				if seen == nil || seen.ClientID != "client-1" || !seen.HasScope("orders:write") {
					t.Errorf("handler saw claims %+v", seen)
				}
				return
			}
			if seen != nil {
				t.Error("handler called for a rejected request")
			}
			checkErrorResponse(t, rec, tt.errorCode, tt.description)
			if strings.Contains(rec.Body.String(), valid) || strings.Contains(rec.Header().Get("WWW-Authenticate"), valid) {
				t.Error("response echoes the token")
			}
		})
	}
}

func TestMiddlewareKeysUnavailable(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	is.down.Store(true)
	clock := newClock()
	v := newVerifier(t, is, clock)
	h := v.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("handler called")
	}))
	req := httptest.NewRequestWithContext(verifyCtx(t), http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+mint(t, es, claimsAt(is, clock.Now())))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "5" {
		t.Fatalf("status %d, Retry-After %q; want 503 and 5", rec.Code, rec.Header().Get("Retry-After"))
	}
	if got := rec.Header().Get("WWW-Authenticate"); got != "" {
		t.Errorf("WWW-Authenticate = %q on a server error", got)
	}
	checkErrorResponse(t, rec, "temporarily_unavailable", "token signing keys unavailable, retry later")
}

func TestMiddlewareWithoutRequiredScopes(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	clock := newClock()
	v := newVerifier(t, is, clock)
	called := false
	h := v.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }))
	req := httptest.NewRequestWithContext(verifyCtx(t), http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+mint(t, es, edit(claimsAt(is, clock.Now()), map[string]any{"scope": nil})))
	h.ServeHTTP(httptest.NewRecorder(), req)
	if !called {
		t.Error("a valid token without scopes was refused by Middleware()")
	}
}

func TestMiddlewarePanicsOnInvalidScope(t *testing.T) {
	v, err := New(Config{Issuer: "https://auth.example.com", Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	for _, scope := range []string{"", "a b", `a"b`, `a\b`} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Middleware(%q) did not panic", scope)
				}
			}()
			v.Middleware(scope)
		}()
	}
}

func TestRequireScopes(t *testing.T) {
	c := &Claims{Scopes: []string{"a", "b"}}
	if err := c.RequireScopes("a", "b"); err != nil {
		t.Errorf("RequireScopes(a, b) = %v", err)
	}
	err := c.RequireScopes("a", "c")
	if !errors.Is(err, ErrInsufficientScope) || errors.Is(err, ErrInvalidToken) || err.Error() != "insufficient scope: missing scope c" {
		t.Errorf("RequireScopes(a, c) = %v", err)
	}
}

func TestClaimsContext(t *testing.T) {
	if c, ok := ClaimsFromContext(context.Background()); ok || c != nil {
		t.Error("claims in an empty context")
	}
	want := &Claims{Subject: "s"}
	if c, ok := ClaimsFromContext(ContextWithClaims(context.Background(), want)); !ok || c != want {
		t.Error("claims not round-tripped")
	}
}

func checkErrorResponse(t *testing.T, rec *httptest.ResponseRecorder, code, description string) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if want := map[string]string{"error": code, "error_description": description}; !maps.Equal(body, want) {
		t.Errorf("body = %v, want %v", body, want)
	}
}
