//go:build integration

package operator_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/controllers"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
	"github.com/oauth-client-operator/oauth-client-operator/pkg/verifier"
)

var keySecret = types.NamespacedName{Namespace: operatorNamespace, Name: "oauth-client-operator-signing-keys"}

// servedKids returns the key ids of the served JWKS.
func servedKids(t *testing.T) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	getJSON(t, issuer+"/.well-known/jwks.json", &set)
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

func tokenKid(t *testing.T, tok string) string {
	t.Helper()
	parsed, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	return parsed.Signatures[0].Header.KeyID
}

func storedKeys(g Gomega) *signing.KeySet {
	s := &corev1.Secret{}
	g.Expect(k8s.Get(context.Background(), keySecret, s)).To(Succeed())
	ks, err := signing.Decode(s.Data)
	g.Expect(err).NotTo(HaveOccurred())
	return ks
}

// TestRevokeSigningKey is the "If a signing key leaks" procedure of the README: the
// revoke-key annotation on the key Secret removes the key from the JWKS at once, new
// tokens carry a new kid (no propagation delay), and pkg/verifier refuses a token of
// the revoked key once it fetches the JWKS again (Refresh, or a verifier created after
// the revocation). The revoked key is never loaded again: not when the Secret is deleted
// (it is restored from memory without it), not when a copy taken before the revocation
// is written back.
func TestRevokeSigningKey(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t, nil)
	api := "revoke-" + rand.String(5)
	create(t, &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: api}, Spec: oauthv1alpha1.OAuthAPISpec{
		Scopes:            []oauthv1alpha1.Scope{"users:read"},
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll},
	}})
	create(t, &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "leaky"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}}})
	id, secret, tokenURL := credentials(t, ns, "leaky")
	body := fmt.Sprintf(`{"grant_type": "client_credentials", "client_id": %q, "client_secret": %q}`, id, secret)
	var oldToken string
	g.Eventually(func() int {
		a := requestToken(t, tokenURL, "application/json", body)
		oldToken = a.Token
		return a.status
	}, 10*time.Second, 20*time.Millisecond).Should(Equal(http.StatusOK))
	leaked := tokenKid(t, oldToken)
	g.Expect(servedKids(t)).To(ContainElement(leaked))

	ctx := context.Background()
	before := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, keySecret, before)).To(Succeed())
	backup := before.Data[signing.SecretKey]

	newVerifier := func() *verifier.Verifier {
		v, err := verifier.New(verifier.Config{Issuer: issuer, Audience: api})
		g.Expect(err).NotTo(HaveOccurred())
		return v
	}
	// A resource server's verifier, running since before the revocation.
	running := newVerifier()
	_, err := running.Verify(ctx, oldToken)
	g.Expect(err).NotTo(HaveOccurred(), "the token verifies before the revocation")

	// The documented action.
	patch := client.MergeFrom(before.DeepCopy())
	if before.Annotations == nil {
		before.Annotations = map[string]string{}
	}
	before.Annotations[controllers.RevokeKeyAnnotation] = leaked
	g.Expect(k8s.Patch(ctx, before, patch)).To(Succeed())
	revoked := time.Now()

	g.Eventually(func() []string { return servedKids(t) }, 10*time.Second, 20*time.Millisecond).
		ShouldNot(ContainElement(leaked), "the JWKS drops the revoked key")
	t.Logf("revoked key gone from the JWKS %s after the annotation", time.Since(revoked).Round(time.Millisecond))
	kids := servedKids(t)
	g.Expect(kids).NotTo(BeEmpty())
	current := kids[0]
	a := requestToken(t, tokenURL, "application/json", body)
	g.Expect(a.status).To(Equal(http.StatusOK))
	g.Expect(tokenKid(t, a.Token)).To(Equal(current), "new tokens carry the new kid at once")
	g.Expect(current).NotTo(Equal(leaked))

	// Its cached JWKS (max-age 5m) still holds the revoked key; a refresh drops it.
	_, err = running.Verify(ctx, oldToken)
	g.Expect(err).NotTo(HaveOccurred(), "the cached JWKS still holds the key before a refresh")
	g.Expect(running.Refresh(ctx)).To(Succeed())
	_, err = running.Verify(ctx, oldToken)
	g.Expect(err).To(MatchError(verifier.ErrInvalidToken), "pkg/verifier refuses a token of the revoked key after a refresh")
	claims, err := running.Verify(ctx, a.Token)
	g.Expect(err).NotTo(HaveOccurred(), "and accepts one of the new key")
	g.Expect(claims.ClientID).To(Equal(id))
	// So does a verifier created after the revocation.
	_, err = newVerifier().Verify(ctx, oldToken)
	g.Expect(err).To(MatchError(verifier.ErrInvalidToken))

	ks := storedKeys(g)
	g.Expect(ks.Find(leaked)).To(BeNil())
	g.Expect(ks.IsRevoked(leaked)).To(BeTrue(), "the Secret records the revocation")
	g.Expect(eventsAbout(g, keySecret)).To(ContainElement("SigningKeyRevoked"))

	// Deleting the Secret restores it from memory, without the revoked key.
	g.Expect(k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: keySecret.Namespace, Name: keySecret.Name}})).To(Succeed())
	g.Eventually(func() error {
		s := &corev1.Secret{}
		if err := k8s.Get(ctx, keySecret, s); err != nil {
			return err
		}
		if strings.Contains(string(s.Data[signing.SecretKey]), `"privateKey"`) && storedKeys(g).Find(leaked) == nil {
			return nil
		}
		return fmt.Errorf("restored Secret holds the revoked key")
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	g.Expect(storedKeys(g).IsRevoked(leaked)).To(BeTrue(), "the restored Secret records the revocation")
	g.Expect(servedKids(t)).NotTo(ContainElement(leaked))

	// A copy taken before the revocation written back: the token server does not load
	// it, and the leader revokes the key again (a new key signs).
	s := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, keySecret, s)).To(Succeed())
	s.Data = map[string][]byte{signing.SecretKey: backup}
	g.Expect(k8s.Update(ctx, s)).To(Succeed())
	g.Eventually(func(g Gomega) {
		ks := storedKeys(g)
		g.Expect(ks.Find(leaked)).To(BeNil())
		g.Expect(ks.IsRevoked(leaked)).To(BeTrue())
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed(), "the leader revokes the key again")
	for range 10 {
		g.Expect(servedKids(t)).NotTo(ContainElement(leaked), "the revoked key is never served again")
		a := requestToken(t, tokenURL, "application/json", body)
		g.Expect(a.status).To(Equal(http.StatusOK))
		g.Expect(tokenKid(t, a.Token)).NotTo(Equal(leaked))
		time.Sleep(50 * time.Millisecond)
	}
	_, err = newVerifier().Verify(ctx, oldToken)
	g.Expect(err).To(MatchError(verifier.ErrInvalidToken))
}

// eventsAbout lists the reasons of the events.k8s.io Events regarding an object.
func eventsAbout(g Gomega, key types.NamespacedName) []string {
	list := &eventsv1.EventList{}
	g.Expect(k8s.List(context.Background(), list, client.InNamespace(key.Namespace))).To(Succeed())
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Name == key.Name {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}
