package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/oauth-client-operator/oauth-client-operator/pkg/client"
)

// A workload calls an API with tokens of the client whose Secret is mounted at dir.
func Example() {
	dir, apiURL, cleanup := exampleCluster()
	defer cleanup()

	ctx := context.Background()
	ts, err := client.New(ctx, dir, client.WithAudience("back-office"), client.WithScopes("users:read"))
	if err != nil {
		log.Fatal(err)
	}
	hc := client.NewHTTPClient(ctx, ts) // adds "Authorization: Bearer …" to each request
	resp, err := hc.Get(apiURL + "/api/users")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body))
	// Output: 200 OK users for shop.erp-sync
}

// exampleCluster stands in for the cluster: a token server, an API that accepts its
// tokens, and the client's Secret as the kubelet mounts it (in dir).
func exampleCluster() (dir, apiURL string, cleanup func()) {
	const secret, token = "example-secret", "example-access-token"
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.PostFormValue("client_id") != "shop.erp-sync" || r.PostFormValue("client_secret") != secret ||
			r.PostFormValue("audience") != "back-office" {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": "users:read"})
	}))
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_, _ = fmt.Fprint(w, "users for shop.erp-sync")
	}))
	dir, err := os.MkdirTemp("", "oauth-client-example-")
	if err != nil {
		log.Fatal(err)
	}
	for name, value := range map[string]string{
		"client_id": "shop.erp-sync", "client_secret": secret, "token_url": tokens.URL + "/oauth2-token", "issuer": tokens.URL,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	return dir, api.URL, func() { tokens.Close(); api.Close(); _ = os.RemoveAll(dir) }
}
