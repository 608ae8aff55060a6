package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/oauth-client-operator/oauth-client-operator/pkg/verifier"
)

// The verifier's rejections are tested in pkg/verifier and end to end in test/e2e;
// this pins the JSON:API document the handler writes.
func TestListUsersIsJSONAPI(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/api/users", nil)
	r = r.WithContext(verifier.ContextWithClaims(r.Context(), &verifier.Claims{ClientID: "shop.erp-sync"}))
	rec := httptest.NewRecorder()
	listUsers(rec, r)
	if ct := rec.Header().Get("Content-Type"); ct != "application/vnd.api+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var doc struct {
		Data []struct {
			Type       string            `json:"type"`
			ID         string            `json:"id"`
			Attributes map[string]string `json:"attributes"`
		} `json:"data"`
		Meta map[string]string `json:"meta"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Data) == 0 || doc.Data[0].Type != "users" || doc.Data[0].ID == "" || doc.Data[0].Attributes["email"] == "" {
		t.Errorf("not a JSON:API collection of users: %s", rec.Body)
	}
	if doc.Meta["client_id"] != "shop.erp-sync" {
		t.Errorf("meta.client_id = %q", doc.Meta["client_id"])
	}
}

func TestNoTokenIsUnauthorized(t *testing.T) {
	v, err := verifier.New(verifier.Config{Issuer: "http://127.0.0.1:1", Audience: "back-office"})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	newHandler(v).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/users", nil))
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}
