package tokenserver

import (
	"net/http"
	"testing"
	"time"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// Attacks on the token endpoint's DPoP handling.

// TestDPoPProofReplayedByAnotherClient: a proof is single-use on a replica whoever
// presents it: another client that captured it gets no token with it.
func TestDPoPProofReplayedByAnotherClient(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ns := w.namespace("dpop-steal", nil)
	api := w.api("dpop-steal", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	victim := w.client(ns, "victim", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	thief := w.client(ns, "thief", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	srv, _ := w.server("", signing.ES256, nil)
	body := func(id string) string {
		return jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]})
	}
	proof := newDPoPKey(t).proof(t, testTokenURL, time.Now(), nil)
	if rec := withDPoP(srv.Handler(), body(victim), proof); rec.Code != http.StatusOK {
		t.Fatalf("victim: %d %s", rec.Code, rec.Body)
	}
	if rec := withDPoP(srv.Handler(), body(thief), proof); rec.Code != http.StatusBadRequest {
		t.Fatalf("the victim's proof presented by another client: %d %s, want 400", rec.Code, rec.Body)
	}
}

// TestDPoPProofFloodOfOneClient: a client sending proofs at speed fills its share of
// the DPoP replay cache and its reserve, then gets 503; a client of the same namespace
// still gets bound tokens, and the cache holds no more than the first client's share.
func TestDPoPProofFloodOfOneClient(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ns := w.namespace("dpop-flood", nil)
	api := w.api("dpop-flood", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	greedy := w.client(ns, "greedy", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	modest := w.client(ns, "modest", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	srv, keys := w.server("dpop: {replayCacheSize: 1000}\n", signing.ES256, nil)
	key := newDPoPKey(t)
	body := func(id string) string {
		return jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]})
	}
	refused := 0
	for range 1000/32 + reservePerClient + 50 {
		switch rec := withDPoP(srv.Handler(), body(greedy), key.proof(t, testTokenURL, time.Now(), nil)); rec.Code {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			refused++
			if rec.Header().Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
		default:
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	if refused != 50 {
		t.Errorf("%d proofs refused, want the 50 beyond the client's share and reserve", refused)
	}
	boundTo(t, withDPoP(srv.Handler(), body(modest), key.proof(t, testTokenURL, time.Now(), nil)), keys, key.jkt)
	if n := srv.dpopReplay.size(); n != 1000/32+reservePerClient+1 {
		t.Errorf("%d proof ids remembered", n)
	}
}
