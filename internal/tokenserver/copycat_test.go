package tokenserver

import (
	"fmt"
	"net/http"
	"testing"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// TestCopycatClientsCannotLockOutAClientlessExchange is the attack review's finding:
// a tenant copies another namespace's rule into many OAuthClients of its own. The
// issuer's claim rule keeps tokens to clients of their subject's namespace, so none of
// the copies can use the token; before, eight copies made the victim's exchange without
// client_id a 400 client_id_required. Copies are no candidates now, however many.
func TestCopycatClientsCannotLockOutAClientlessExchange(t *testing.T) {
	w := newWorld(t)
	shop := w.namespace("shop", nil)
	evil := w.namespace("evil", nil)
	api := w.api("copy-api", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	sub := "system:serviceaccount:" + shop + ":erp"
	b := w.trusted("cluster-b", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
		s.ClaimValidationRules = []oauthv1alpha1.ClaimValidationRule{
			{Expression: `claims.sub.startsWith("system:serviceaccount:" + client.namespace + ":")`, Message: "own namespace only"},
		}
	})
	w.federatedClient(shop, "erp", []string{api}, rule(b, sub, nil))
	srv, _ := w.server("rateLimit: {failedAuthPerMinute: 0}\n", signing.ES256, nil)
	tok := b.token(t, sub, nil)
	for copies := 1; copies <= 2*maxAmbiguousClients; copies++ {
		w.federatedClient(evil, fmt.Sprintf("copycat-%d", copies), []string{api}, rule(b, sub, nil))
		if rec := post(srv.Handler(), "application/json", shapeExchange("", tok)); rec.Code != http.StatusOK {
			t.Fatalf("with %d copycat clients of another namespace, the exchange without client_id: %d %s", copies, rec.Code, rec.Body)
		}
	}
}
