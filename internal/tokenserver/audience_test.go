package tokenserver

import (
	"net/http"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// TestNoTokensForACollidingAudience is the hardening of issue 22 item 7: a second
// OAuthAPI given an existing API's audience (an administrator's mistake) must not let
// the namespaces it admits get tokens the first API's resource servers accept. While two
// APIs share an audience, neither gets tokens; once resolved, both do again.
func TestNoTokensForACollidingAudience(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	trusted := w.namespace("trusted", map[string]string{"tier": "trusted"})
	other := w.namespace("other", nil)
	payroll := w.api("payroll", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{
		From: oauthv1alpha1.NamespacesFromSelector, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "trusted"}}}})
	insider := w.client(trusted, "insider", oauthv1alpha1.OAuthClientSpec{Audiences: []string{payroll}})
	srv, keys := w.server("rateLimit: {failedAuthPerMinute: 0}", signing.ES256, nil)
	request := func(id string) int {
		return post(srv.Handler(), "application/json", jsonBody(map[string]string{
			"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]})).Code
	}
	if code := request(insider); code != http.StatusOK {
		t.Fatalf("before the mistake: %d", code)
	}
	// The mistake: an API admitting every namespace with payroll's audience.
	mistake := &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: "reports-" + w.suffix},
		Spec: oauthv1alpha1.OAuthAPISpec{Audience: payroll, AllowedNamespaces: allNS()}}
	w.create(mistake)
	outsider := w.client(other, "outsider", oauthv1alpha1.OAuthClientSpec{Audiences: []string{mistake.Name}})
	for name, id := range map[string]string{"outsider through the new API": outsider, "insider": insider} {
		if code := request(id); code != http.StatusBadRequest {
			t.Errorf("%s while two APIs share the audience: %d, want 400 invalid_target", name, code)
		}
	}
	// Resolved: the new API gets an audience of its own.
	mistake.Spec.Audience = "reports"
	w.update(mistake)
	if code := request(insider); code != http.StatusOK {
		t.Errorf("insider after the fix: %d", code)
	}
	rec := post(srv.Handler(), "application/json", jsonBody(map[string]string{
		"grant_type": "client_credentials", "client_id": outsider, "client_secret": w.secrets[outsider]}))
	tok := decodeOK(t, rec)
	if _, claims := verify(t, tok.AccessToken, keys.Load().Set.Current().Private.Public()); claims["aud"] != "reports" {
		t.Errorf("outsider's token after the fix is for %v, want reports", claims["aud"])
	}
	// Deleting the other API resolves it too.
	mistake.Spec.Audience = payroll
	w.update(mistake)
	if code := request(insider); code != http.StatusBadRequest {
		t.Fatalf("collision again: %d", code)
	}
	w.remove(mistake)
	if code := request(insider); code != http.StatusOK {
		t.Errorf("insider after the colliding API was deleted: %d", code)
	}
}
