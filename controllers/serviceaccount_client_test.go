//go:build integration

package controllers_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// TestServiceAccountTokenClientSecret: a ServiceAccountToken client's Secret says where
// to ask and holds no credential; its status says whether the ServiceAccount exists;
// switching methods adds or removes the client secret at once.
func TestServiceAccountTokenClientSecret(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	saAuth := &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthServiceAccountToken, ServiceAccountName: "erp"}
	oc := newClient(t, ns, "erp", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}, Authentication: saAuth})

	// Ready without its ServiceAccount, saying so.
	cond := waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	g.Expect(cond.Message).To(ContainSubstring(`ServiceAccount "erp" does not exist yet`))
	s := getSecret(g, ns, "erp")
	g.Expect(s.Data).To(HaveKeyWithValue("client_id", []byte(ns+".erp")))
	g.Expect(s.Data).To(HaveKeyWithValue("token_url", []byte(testIssuer+"/oauth2-token")))
	g.Expect(s.Data).To(HaveKeyWithValue("issuer", []byte(testIssuer)))
	g.Expect(s.Data).NotTo(HaveKey("client_secret"))
	g.Expect(s.Annotations).NotTo(HaveKey(oauthv1alpha1.SecretRotatedAtAnnotation))

	// The ServiceAccount appears: the message drops the warning.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erp"}}
	g.Expect(k8s.Create(ctx, sa)).To(Succeed())
	g.Eventually(func() string {
		return waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady).Message
	}, timeout, interval).ShouldNot(ContainSubstring("does not exist"))

	// To ClientSecret: a secret is generated at once, with its rotation state.
	patch := client.MergeFrom(oc.DeepCopy())
	oc.Spec.Authentication = nil
	g.Expect(k8s.Patch(ctx, oc, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getSecret(g, ns, "erp")
		g.Expect(len(s.Data["client_secret"])).To(BeNumerically(">=", 43))
		g.Expect(s.Annotations).To(HaveKey(oauthv1alpha1.SecretRotatedAtAnnotation))
	}, timeout, interval).Should(Succeed())
	waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)

	// And back: the secret, the previous one and their rotation state are removed.
	s = getSecret(g, ns, "erp")
	sp := client.MergeFrom(s.DeepCopy())
	s.Data["previous_client_secret"] = s.Data["client_secret"]
	s.Annotations[oauthv1alpha1.PreviousSecretExpiresAnnotation] = "2099-01-01T00:00:00Z"
	g.Expect(k8s.Patch(ctx, s, sp)).To(Succeed())
	patch = client.MergeFrom(oc.DeepCopy())
	oc.Spec.Authentication = saAuth
	g.Expect(k8s.Patch(ctx, oc, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getSecret(g, ns, "erp")
		g.Expect(s.Data).NotTo(HaveKey("client_secret"))
		g.Expect(s.Data).NotTo(HaveKey("previous_client_secret"))
		g.Expect(s.Annotations).NotTo(HaveKey(oauthv1alpha1.SecretRotatedAtAnnotation))
		g.Expect(s.Annotations).NotTo(HaveKey(oauthv1alpha1.PreviousSecretExpiresAnnotation))
		g.Expect(s.Data).To(HaveKeyWithValue("client_id", []byte(ns+".erp")))
	}, timeout, interval).Should(Succeed())
	g.Eventually(func(g Gomega) []string { return reasons(eventsFor(g, ns, "erp")) }, timeout, interval).
		Should(ContainElement("SecretRemoved"))

	// A client_secret written by hand into a ServiceAccountToken client's Secret is removed.
	s = getSecret(g, ns, "erp")
	sp = client.MergeFrom(s.DeepCopy())
	s.Data["client_secret"] = []byte("planted-planted-planted-planted-planted-planted")
	g.Expect(k8s.Patch(ctx, s, sp)).To(Succeed())
	g.Eventually(func(g Gomega) map[string][]byte { return getSecret(g, ns, "erp").Data }, timeout, interval).
		ShouldNot(HaveKey("client_secret"))
}
