package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestCallsTheAPIWithAToken: the command gets a token with the mounted client secret
// (for the asked audience and scope) and sends it to the API as a bearer token.
func TestCallsTheAPIWithAToken(t *testing.T) {
	var tokenRequests atomic.Int64
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenRequests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.PostFormValue("client_id") != "shop.erp-sync" || r.PostFormValue("client_secret") != "s3cret" ||
			r.PostFormValue("audience") != "back-office" || r.PostFormValue("scope") != "users:read" {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "tok", "token_type": "Bearer", "expires_in": 3600})
	}))
	defer tokens.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Accept") != "application/vnd.api+json" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"data":[]}`))
	}))
	defer api.Close()
	dir := t.TempDir()
	for k, v := range map[string]string{"client_id": "shop.erp-sync", "client_secret": "s3cret", "token_url": tokens.URL + "/oauth2-token"} {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"--secret-dir", dir, "--scope", "users:read", api.URL + "/api/users"}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got := out.String(); got != "200 OK\n{\"data\":[]}\n" {
		t.Errorf("output %q", got)
	}
	if n := tokenRequests.Load(); n != 1 {
		t.Errorf("%d token requests", n)
	}

	// A refused call is an error.
	if err := run(context.Background(), []string{"--secret-dir", dir, "--audience", "storefront", api.URL}, &out); err == nil {
		t.Error("no error with a token request refused")
	}
}

// TestDPoP: with --dpop the token request and the call carry DPoP proofs and the call
// uses the DPoP scheme; --verbose says what the token is bound to.
func TestDPoP(t *testing.T) {
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("DPoP") == "" {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_dpop_proof"})
			return
		}
		// A JWT whose claims name a key binding (unsigned: the command does not verify it).
		tok := "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(`{"cnf":{"jkt":"the-jkt"}}`)) + "."
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "DPoP", "expires_in": 3600})
	}))
	defer tokens.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "DPoP ey") || r.Header.Get("DPoP") == "" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"data":[]}`))
	}))
	defer api.Close()
	dir := t.TempDir()
	for k, v := range map[string]string{"client_id": "shop.ledger", "client_secret": "s3cret", "token_url": tokens.URL + "/oauth2-token"} {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"--dpop", "--verbose", "--secret-dir", dir, api.URL}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got := out.String(); !strings.HasPrefix(got, "token: DPoP, key binding: cnf.jkt the-jkt, expires ") || !strings.HasSuffix(got, "200 OK\n{\"data\":[]}\n") {
		t.Errorf("output %q", got)
	}
	// Without --dpop the token server refuses (it requires a proof).
	if err := run(context.Background(), []string{"--secret-dir", dir, api.URL}, &out); err == nil {
		t.Error("no error without --dpop")
	}
}
