//go:build integration

package controllers_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

func jwksOfNewKey(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	return b
}

func newTrustedIssuer(t *testing.T, spec oauthv1alpha1.OAuthTrustedIssuerSpec) *oauthv1alpha1.OAuthTrustedIssuer {
	t.Helper()
	requireEnv(t)
	o := &oauthv1alpha1.OAuthTrustedIssuer{ObjectMeta: metav1.ObjectMeta{Name: "issuer-" + utilrand.String(6)}, Spec: spec}
	if err := k8s.Create(context.Background(), o); err != nil {
		t.Fatalf("create OAuthTrustedIssuer: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), o) })
	return o
}

// issuerReady waits until the issuer's Ready condition has the status and reason for
// its current generation, and returns the issuer.
func issuerReady(t *testing.T, name string, status metav1.ConditionStatus, reason string) *oauthv1alpha1.OAuthTrustedIssuer {
	t.Helper()
	o := &oauthv1alpha1.OAuthTrustedIssuer{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), types.NamespacedName{Name: name}, o)).To(Succeed())
		c := meta.FindStatusCondition(o.Status.Conditions, oauthv1alpha1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(o.Status.ObservedGeneration).To(Equal(o.Generation))
		g.Expect(c.Status).To(Equal(status), c.Message)
		g.Expect(c.Reason).To(Equal(reason), c.Message)
	}, timeout, interval).Should(Succeed())
	return o
}

func readyMessage(o *oauthv1alpha1.OAuthTrustedIssuer) string {
	return meta.FindStatusCondition(o.Status.Conditions, oauthv1alpha1.ConditionReady).Message
}

// TestTrustedIssuerStatus: the status says how many keys are cached and when they were
// fetched; a rule that does not compile or costs too much makes the issuer not Ready,
// naming the rule; keys that cannot be fetched, or no longer, say so.
func TestTrustedIssuerStatus(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	static := newTrustedIssuer(t, oauthv1alpha1.OAuthTrustedIssuerSpec{
		Issuer:            "https://private.example",
		Keys:              &oauthv1alpha1.IssuerKeys{JWKS: string(jwksOfNewKey(t))},
		AllowedNamespaces: allNamespaces(),
	})
	o := issuerReady(t, static.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonIssuerReady)
	g.Expect(o.Status.Keys).To(BeEquivalentTo(1))
	g.Expect(o.Status.LastKeyFetch).NotTo(BeNil())
	g.Eventually(func(g Gomega) []string { return reasons(eventsFor(g, "default", static.Name)) }, timeout, interval).
		Should(ContainElement("IssuerReady"))

	// A rule that does not compile: Ready=False naming it, and an event; fixed: Ready.
	patch := client.MergeFrom(o.DeepCopy())
	o.Spec.ClaimValidationRules = []oauthv1alpha1.ClaimValidationRule{
		{Claim: "repository_id", RequiredValue: "1"},
		{Expression: `claims.sub.startsWith("system:serviceaccount:" + namespace + ":")`},
	}
	g.Expect(k8s.Patch(ctx, o, patch)).To(Succeed())
	o = issuerReady(t, static.Name, metav1.ConditionFalse, oauthv1alpha1.ReasonInvalidRule)
	g.Expect(readyMessage(o)).To(HavePrefix("claimValidationRules[1]: does not compile"))
	g.Expect(readyMessage(o)).To(ContainSubstring("reserved identifier: namespace"))
	g.Eventually(func(g Gomega) []string { return reasons(eventsFor(g, "default", static.Name)) }, timeout, interval).
		Should(ContainElement("IssuerNotReady"))

	// A deliberately expensive one: refused when reconciled.
	patch = client.MergeFrom(o.DeepCopy())
	o.Spec.ClaimValidationRules[1].Expression = `claims.all(a, claims.all(b, claims.all(c, a + b + c != "")))`
	g.Expect(k8s.Patch(ctx, o, patch)).To(Succeed())
	g.Eventually(func(g Gomega) string {
		o = issuerReady(t, static.Name, metav1.ConditionFalse, oauthv1alpha1.ReasonInvalidRule)
		return readyMessage(o)
	}, timeout, interval).Should(HavePrefix("claimValidationRules[1]: costs too much"))

	patch = client.MergeFrom(o.DeepCopy())
	o.Spec.ClaimValidationRules[1].Expression = `claims.sub.startsWith("system:serviceaccount:" + client.namespace + ":")`
	g.Expect(k8s.Patch(ctx, o, patch)).To(Succeed())
	issuerReady(t, static.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonIssuerReady)

	// Keys fetched from an issuer on loopback; it stops answering: stale, the cached
	// keys in use. (The suite's registry keeps keys fresh for 2 s.)
	jwks := jwksOfNewKey(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(jwks) }))
	defer srv.Close()
	fetched := newTrustedIssuer(t, oauthv1alpha1.OAuthTrustedIssuerSpec{
		Issuer: srv.URL, Keys: &oauthv1alpha1.IssuerKeys{JWKSURI: srv.URL + "/jwks"}, AllowedNamespaces: allNamespaces(),
	})
	issuerReady(t, fetched.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonIssuerReady)
	srv.Close()
	o = issuerReady(t, fetched.Name, metav1.ConditionFalse, oauthv1alpha1.ReasonKeysStale)
	g.Expect(o.Status.Keys).To(BeEquivalentTo(1))
	g.Expect(readyMessage(o)).To(ContainSubstring("the 1 cached keys stay in use"))

	// An issuer that never answers.
	unreachable := newTrustedIssuer(t, oauthv1alpha1.OAuthTrustedIssuerSpec{Issuer: srv.URL, AllowedNamespaces: allNamespaces()})
	o = issuerReady(t, unreachable.Name, metav1.ConditionFalse, oauthv1alpha1.ReasonKeysUnavailable)
	g.Eventually(func() string {
		return readyMessage(issuerReady(t, unreachable.Name, metav1.ConditionFalse, oauthv1alpha1.ReasonKeysUnavailable))
	}, timeout, interval).Should(ContainSubstring("no key obtained yet"))
	g.Expect(o.Status.Keys).To(BeZero())

	// A static JWKS without a usable key.
	hmac := newTrustedIssuer(t, oauthv1alpha1.OAuthTrustedIssuerSpec{
		Issuer: "https://hmac.example", Keys: &oauthv1alpha1.IssuerKeys{JWKS: `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`},
		AllowedNamespaces: allNamespaces(),
	})
	issuerReady(t, hmac.Name, metav1.ConditionFalse, oauthv1alpha1.ReasonInvalidKeySource)
}

// TestTrustedIssuerValidation: what the API server refuses of an OAuthTrustedIssuer
// and of a FederatedToken client.
func TestTrustedIssuerValidation(t *testing.T) {
	t.Parallel()
	requireEnv(t)
	ctx := context.Background()
	jwks := string(jwksOfNewKey(t))
	for name, spec := range map[string]oauthv1alpha1.OAuthTrustedIssuerSpec{
		"http issuer":          {Issuer: "http://oidc.example.com", AllowedNamespaces: allNamespaces()},
		"not a URL":            {Issuer: "cluster-b", AllowedNamespaces: allNamespaces()},
		"http jwksURI":         {Issuer: "https://a.example", Keys: &oauthv1alpha1.IssuerKeys{JWKSURI: "http://10.0.0.1/jwks"}, AllowedNamespaces: allNamespaces()},
		"two key sources":      {Issuer: "https://a.example", Keys: &oauthv1alpha1.IssuerKeys{JWKSURI: "https://a.example/jwks", JWKS: jwks}, AllowedNamespaces: allNamespaces()},
		"no key source":        {Issuer: "https://a.example", Keys: &oauthv1alpha1.IssuerKeys{}, AllowedNamespaces: allNamespaces()},
		"claim and expression": {Issuer: "https://a.example", AllowedNamespaces: allNamespaces(), ClaimValidationRules: []oauthv1alpha1.ClaimValidationRule{{Claim: "a", RequiredValue: "b", Expression: "true"}}},
		"claim without value":  {Issuer: "https://a.example", AllowedNamespaces: allNamespaces(), ClaimValidationRules: []oauthv1alpha1.ClaimValidationRule{{Claim: "a"}}},
		"lifetime of a day+":   {Issuer: "https://a.example", AllowedNamespaces: allNamespaces(), MaxTokenLifetime: &metav1.Duration{Duration: 25 * 3600e9}},
	} {
		o := &oauthv1alpha1.OAuthTrustedIssuer{ObjectMeta: metav1.ObjectMeta{Name: "invalid-" + utilrand.String(6)}, Spec: spec}
		if err := k8s.Create(ctx, o); err == nil {
			_ = k8s.Delete(ctx, o)
			t.Errorf("%s: accepted", name)
		}
	}
	for name, spec := range map[string]oauthv1alpha1.OAuthTrustedIssuerSpec{
		"loopback http": {Issuer: "http://127.0.0.1:9000", AllowedNamespaces: allNamespaces()},
		"localhost":     {Issuer: "http://localhost:9000", AllowedNamespaces: allNamespaces()},
		"IPv6 loopback": {Issuer: "http://[::1]:9000", AllowedNamespaces: allNamespaces()},
	} {
		o := &oauthv1alpha1.OAuthTrustedIssuer{ObjectMeta: metav1.ObjectMeta{Name: "valid-" + utilrand.String(6)}, Spec: spec}
		if err := k8s.Create(ctx, o); err != nil {
			t.Errorf("%s: %v", name, err)
		} else {
			_ = k8s.Delete(ctx, o)
		}
	}

	ns := newNamespace(t, nil)
	rules := func(n int) []oauthv1alpha1.FederatedRule {
		r := make([]oauthv1alpha1.FederatedRule, n)
		for i := range r {
			r[i] = oauthv1alpha1.FederatedRule{Issuer: "b", Subject: "s"}
		}
		return r
	}
	for name, auth := range map[string]*oauthv1alpha1.ClientAuthentication{
		"FederatedToken without rules":       {Method: oauthv1alpha1.AuthFederatedToken},
		"rules for another method":           {Method: oauthv1alpha1.AuthClientSecret, Federated: rules(1)},
		"nine rules":                         {Method: oauthv1alpha1.AuthFederatedToken, Federated: rules(9)},
		"empty subject":                      {Method: oauthv1alpha1.AuthFederatedToken, Federated: []oauthv1alpha1.FederatedRule{{Issuer: "b"}}},
		"issuer that cannot name an object":  {Method: oauthv1alpha1.AuthFederatedToken, Federated: []oauthv1alpha1.FederatedRule{{Issuer: "B_", Subject: "s"}}},
		"seventeen claims":                   {Method: oauthv1alpha1.AuthFederatedToken, Federated: []oauthv1alpha1.FederatedRule{{Issuer: "b", Subject: "s", Claims: manyClaims(17)}}},
		"a claim value over 1024 characters": {Method: oauthv1alpha1.AuthFederatedToken, Federated: []oauthv1alpha1.FederatedRule{{Issuer: "b", Subject: "s", Claims: map[string]string{"a": strings.Repeat("x", 1025)}}}},
	} {
		oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "c-" + utilrand.String(6)},
			Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{"a"}, Authentication: auth}}
		if err := k8s.Create(ctx, oc); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "eight"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{"a"}, Authentication: &oauthv1alpha1.ClientAuthentication{
			Method: oauthv1alpha1.AuthFederatedToken, Federated: rules(8)}}}
	if err := k8s.Create(ctx, ok); err != nil {
		t.Errorf("eight rules: %v", err)
	}
}

func manyClaims(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[utilrand.String(8)] = "v" + string(rune('a'+i%26))
	}
	return m
}

// TestFederatedClientReadiness: a FederatedToken client is Ready only when each rule's
// issuer exists, admits its namespace and the rule pins the issuer's required claims;
// otherwise the condition names the rule. Its Secret says where to ask and holds no
// credential. Deleting the issuer makes it not Ready.
func TestFederatedClientReadiness(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	label := "fed-" + utilrand.String(5)
	ns := newNamespace(t, nil)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	issuerName := "cluster-b-" + utilrand.String(5)
	oc := newClient(t, ns, "erp", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}, Authentication: &oauthv1alpha1.ClientAuthentication{
		Method: oauthv1alpha1.AuthFederatedToken,
		Federated: []oauthv1alpha1.FederatedRule{
			{Issuer: issuerName, Subject: "system:serviceaccount:shop:erp-sync", Claims: map[string]string{"kubernetes.io/namespace": "shop"}},
			{Issuer: issuerName, Subject: "repo:example/app:ref:refs/heads/main"},
		}}})

	cond := waitReady(t, ns, oc.Name, metav1.ConditionFalse, oauthv1alpha1.ReasonFederatedRuleNotAllowed)
	g.Expect(cond.Message).To(ContainSubstring(`federated[0]: OAuthTrustedIssuer "` + issuerName + `" does not exist`))
	g.Expect(cond.Message).To(ContainSubstring(`federated[1]: OAuthTrustedIssuer "` + issuerName + `" does not exist`))
	s := getSecret(g, ns, "erp")
	g.Expect(s.Data).To(HaveKeyWithValue("client_id", []byte(ns+".erp")))
	g.Expect(s.Data).To(HaveKeyWithValue("token_url", []byte(testIssuer+"/oauth2-token")))
	g.Expect(s.Data).To(HaveKeyWithValue("issuer", []byte(testIssuer)))
	g.Expect(s.Data).To(HaveLen(3))

	issuer := &oauthv1alpha1.OAuthTrustedIssuer{ObjectMeta: metav1.ObjectMeta{Name: issuerName}, Spec: oauthv1alpha1.OAuthTrustedIssuerSpec{
		Issuer: "https://cluster-b.example", Keys: &oauthv1alpha1.IssuerKeys{JWKS: string(jwksOfNewKey(t))},
		RequiredClientClaims: []string{"kubernetes.io/namespace"},
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "yes"}}},
	}}
	g.Expect(k8s.Create(ctx, issuer)).To(Succeed())
	g.Eventually(func() string {
		return waitReady(t, ns, oc.Name, metav1.ConditionFalse, oauthv1alpha1.ReasonFederatedRuleNotAllowed).Message
	}, timeout, interval).Should(And(
		ContainSubstring(`federated[0]: OAuthTrustedIssuer "`+issuerName+`" does not admit namespace "`+ns+`"`),
		ContainSubstring(`federated[1]: the rule must pin the claims "kubernetes.io/namespace", which OAuthTrustedIssuer "`+issuerName+`" requires`),
	))

	// The namespace labelled, the second rule fixed: Ready.
	nsObj := &corev1.Namespace{}
	g.Expect(k8s.Get(ctx, types.NamespacedName{Name: ns}, nsObj)).To(Succeed())
	np := client.MergeFrom(nsObj.DeepCopy())
	nsObj.Labels = map[string]string{label: "yes"}
	g.Expect(k8s.Patch(ctx, nsObj, np)).To(Succeed())
	patch := client.MergeFrom(oc.DeepCopy())
	oc.Spec.Authentication.Federated[1].Claims = map[string]string{"kubernetes.io/namespace": "ci"}
	g.Expect(k8s.Patch(ctx, oc, patch)).To(Succeed())
	cond = waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	g.Expect(cond.Message).To(ContainSubstring("tokens of OAuthTrustedIssuer " + issuerName))

	// The issuer deleted: not Ready at once.
	g.Expect(k8s.Delete(ctx, issuer)).To(Succeed())
	cond = waitReady(t, ns, oc.Name, metav1.ConditionFalse, oauthv1alpha1.ReasonFederatedRuleNotAllowed)
	g.Expect(cond.Message).To(ContainSubstring("does not exist"))
}
