//go:build integration

package controllers_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

func newAPI(t *testing.T, spec oauthv1alpha1.OAuthAPISpec) *oauthv1alpha1.OAuthAPI {
	t.Helper()
	requireEnv(t)
	api := &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: "api-" + rand.String(6)}, Spec: spec}
	if err := k8s.Create(context.Background(), api); err != nil {
		t.Fatalf("create OAuthAPI: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), api) })
	return api
}

func allNamespaces() oauthv1alpha1.AllowedNamespaces {
	return oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll}
}

func newClient(t *testing.T, ns, name string, spec oauthv1alpha1.OAuthClientSpec) *oauthv1alpha1.OAuthClient {
	t.Helper()
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := k8s.Create(context.Background(), oc); err != nil {
		t.Fatalf("create OAuthClient: %v", err)
	}
	return oc
}

func getSecret(g Gomega, ns, name string) *corev1.Secret {
	s := &corev1.Secret{}
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s)).To(Succeed())
	return s
}

// waitReady waits until the client's Ready condition has the status and reason, for
// its current generation.
func waitReady(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var cond *metav1.Condition
	NewWithT(t).Eventually(func(g Gomega) {
		oc := &oauthv1alpha1.OAuthClient{}
		g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, oc)).To(Succeed())
		cond = meta.FindStatusCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.ObservedGeneration).To(Equal(oc.Generation))
		g.Expect(cond.Status).To(Equal(status), cond.Message)
		g.Expect(cond.Reason).To(Equal(reason), cond.Message)
	}, timeout, interval).Should(Succeed())
	return cond
}

func TestSecretCreatedWithCredentialsAndOwner(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	oc := newClient(t, ns, "erp-sync", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}})

	waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	s := getSecret(g, ns, "erp-sync")
	g.Expect(string(s.Data["client_id"])).To(Equal(ns + ".erp-sync"))
	g.Expect(string(s.Data["token_url"])).To(Equal(testIssuer + "/oauth2-token"))
	g.Expect(string(s.Data["issuer"])).To(Equal(testIssuer))
	g.Expect(len(s.Data["client_secret"])).To(BeNumerically(">=", 43), "at least 256 bits as base64url")
	g.Expect(string(s.Data["client_secret"])).To(MatchRegexp(`^[A-Za-z0-9_-]+$`))
	g.Expect(s.Labels).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "oauth-client-operator"))
	g.Expect(s.Labels).To(HaveKeyWithValue("oauth.operator.dev/client", "erp-sync"))
	owner := metav1.GetControllerOf(s)
	g.Expect(owner).NotTo(BeNil())
	g.Expect(owner.Kind).To(Equal("OAuthClient"))
	g.Expect(owner.UID).To(Equal(oc.UID))

	got := &oauthv1alpha1.OAuthClient{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(oc), got)).To(Succeed())
	g.Expect(got.Status.ClientID).To(Equal(ns + ".erp-sync"))
	g.Expect(got.Status.SecretName).To(Equal("erp-sync"))
	g.Expect(got.Status.TokenURL).To(Equal(testIssuer + "/oauth2-token"))
	g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))

	// Two clients never share a secret.
	other := newClient(t, ns, "other", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}, SecretName: "other-creds"})
	waitReady(t, ns, other.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	g.Expect(getSecret(g, ns, "other-creds").Data["client_secret"]).NotTo(Equal(s.Data["client_secret"]))
	g.Eventually(func(g Gomega) []string { return reasons(eventsFor(g, ns, "erp-sync")) }, timeout, interval).
		Should(ContainElement("SecretCreated"))
}

func TestSecretStableAcrossSpecChangeAndRestart(t *testing.T) { // restarts the manager: not parallel
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces(), Scopes: []oauthv1alpha1.Scope{"a", "b"}})
	oc := newClient(t, ns, "stable", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}})
	waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	original := getSecret(g, ns, "stable").Data["client_secret"]

	// A spec change is reconciled (new observedGeneration) without touching the secret.
	patch := client.MergeFrom(oc.DeepCopy())
	oc.Spec.Scopes = []oauthv1alpha1.Scope{"a"}
	g.Expect(k8s.Patch(context.Background(), oc, patch)).To(Succeed())
	waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	g.Expect(getSecret(g, ns, "stable").Data["client_secret"]).To(Equal(original))

	// A controller restart resyncs every client; the secret stays.
	stopManager()
	g.Expect(startManager()).To(Succeed())
	patch = client.MergeFrom(oc.DeepCopy())
	oc.Spec.Scopes = []oauthv1alpha1.Scope{"a", "b"}
	g.Expect(k8s.Patch(context.Background(), oc, patch)).To(Succeed())
	waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	g.Expect(getSecret(g, ns, "stable").Data["client_secret"]).To(Equal(original))
}

func TestDeletedSecretIsRecreated(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	oc := newClient(t, ns, "phoenix", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}})
	waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	old := getSecret(g, ns, "phoenix")

	g.Expect(k8s.Delete(context.Background(), old)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getSecret(g, ns, "phoenix")
		g.Expect(s.UID).NotTo(Equal(old.UID))
		g.Expect(s.Data["client_secret"]).NotTo(Equal(old.Data["client_secret"]))
		g.Expect(string(s.Data["client_id"])).To(Equal(ns + ".phoenix"))
	}, timeout, interval).Should(Succeed())
	g.Eventually(func(g Gomega) []string { return reasons(eventsFor(g, ns, "phoenix")) }, timeout, interval).
		Should(ContainElement("SecretRecreated"))
}

func TestTamperedSecretIsRestored(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	oc := newClient(t, ns, "tamper", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}})
	waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	s := getSecret(g, ns, "tamper")
	secret := s.Data["client_secret"]

	patch := client.MergeFrom(s.DeepCopy())
	s.Data["client_id"] = []byte("someone-else.client")
	s.Data["token_url"] = []byte("https://evil.example/oauth2-token")
	s.Data["issuer"] = []byte("https://evil.example")
	s.Data["extra"] = []byte("kept")
	g.Expect(k8s.Patch(context.Background(), s, patch)).To(Succeed())

	g.Eventually(func(g Gomega) {
		s := getSecret(g, ns, "tamper")
		g.Expect(string(s.Data["client_id"])).To(Equal(ns + ".tamper"))
		g.Expect(string(s.Data["token_url"])).To(Equal(testIssuer + "/oauth2-token"))
		g.Expect(string(s.Data["issuer"])).To(Equal(testIssuer))
		g.Expect(s.Data["client_secret"]).To(Equal(secret))
		g.Expect(string(s.Data["extra"])).To(Equal("kept"), "keys the operator does not manage are left alone")
	}, timeout, interval).Should(Succeed())

	// Removing the managed-by label takes the Secret out of the operator's cache; the
	// operator finds it anyway, sees it owns it, and puts the label back.
	s = getSecret(g, ns, "tamper")
	patch = client.MergeFrom(s.DeepCopy())
	delete(s.Labels, "app.kubernetes.io/managed-by")
	g.Expect(k8s.Patch(context.Background(), s, patch)).To(Succeed())
	g.Eventually(func(g Gomega) map[string]string { return getSecret(g, ns, "tamper").Labels }, timeout, interval).
		Should(HaveKeyWithValue("app.kubernetes.io/managed-by", "oauth-client-operator"))
	g.Expect(getSecret(g, ns, "tamper").Data["client_secret"]).To(Equal(secret))

	// A client_secret emptied by hand cannot be restored: a new one is generated.
	s = getSecret(g, ns, "tamper")
	patch = client.MergeFrom(s.DeepCopy())
	s.Data["client_secret"] = []byte("short")
	g.Expect(k8s.Patch(context.Background(), s, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		v := getSecret(g, ns, "tamper").Data["client_secret"]
		g.Expect(len(v)).To(BeNumerically(">=", 43))
		g.Expect(v).NotTo(Equal(secret))
	}, timeout, interval).Should(Succeed())
	g.Eventually(func(g Gomega) []string { return reasons(eventsFor(g, ns, "tamper")) }, timeout, interval).
		Should(ContainElements("SecretRepaired", "SecretRegenerated"))
}

func TestForeignSecretIsLeftAlone(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-password"},
		StringData: map[string]string{"password": "hunter2"},
	}
	g.Expect(k8s.Create(context.Background(), foreign)).To(Succeed())
	// Also a Secret that carries the operator's label but belongs to another client.
	first := newClient(t, ns, "first", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}, SecretName: "shared"})
	waitReady(t, ns, first.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	sharedBefore := getSecret(g, ns, "shared")

	newClient(t, ns, "grabber", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}, SecretName: "db-password"})
	newClient(t, ns, "second", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}, SecretName: "shared"})
	c := waitReady(t, ns, "grabber", metav1.ConditionFalse, oauthv1alpha1.ReasonSecretConflict)
	g.Expect(c.Message).To(ContainSubstring(`Secret "db-password"`))
	waitReady(t, ns, "second", metav1.ConditionFalse, oauthv1alpha1.ReasonSecretConflict)

	got := getSecret(g, ns, "db-password")
	g.Expect(got.Data).To(Equal(map[string][]byte{"password": []byte("hunter2")}))
	g.Expect(got.OwnerReferences).To(BeEmpty())
	g.Expect(got.Labels).To(BeEmpty())
	shared := getSecret(g, ns, "shared")
	g.Expect(shared.Data).To(Equal(sharedBefore.Data))
	g.Expect(metav1.GetControllerOf(shared).UID).To(Equal(first.UID))
	g.Eventually(func(g Gomega) []string { return reasons(eventsFor(g, ns, "grabber")) }, timeout, interval).
		Should(ContainElement("SecretConflict"))
}

func TestAudienceAdmission(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	label := "oauth.operator.dev/test-" + rand.String(5)
	ns := newNamespace(t, nil)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{
		From:     oauthv1alpha1.NamespacesFromSelector,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "allowed"}},
	}})
	oc := newClient(t, ns, "tenant", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}})

	c := waitReady(t, ns, oc.Name, metav1.ConditionFalse, oauthv1alpha1.ReasonAudienceNotAllowed)
	g.Expect(c.Message).To(ContainSubstring(`OAuthAPI %q does not admit namespace %q`, api.Name, ns))
	// The credentials exist even while no API admits the client.
	g.Expect(getSecret(g, ns, "tenant").Data).To(HaveKey("client_secret"))

	setNamespaceLabel := func(value *string) {
		nsObj := &corev1.Namespace{}
		g.Expect(k8s.Get(context.Background(), types.NamespacedName{Name: ns}, nsObj)).To(Succeed())
		patch := client.MergeFrom(nsObj.DeepCopy())
		if value == nil {
			delete(nsObj.Labels, label)
		} else {
			nsObj.Labels[label] = *value
		}
		g.Expect(k8s.Patch(context.Background(), nsObj, patch)).To(Succeed())
	}
	allowed := "allowed"
	setNamespaceLabel(&allowed)
	waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	setNamespaceLabel(nil)
	waitReady(t, ns, oc.Name, metav1.ConditionFalse, oauthv1alpha1.ReasonAudienceNotAllowed)

	// Changing the OAuthAPI re-evaluates its clients.
	patch := client.MergeFrom(api.DeepCopy())
	api.Spec.AllowedNamespaces = allNamespaces()
	g.Expect(k8s.Patch(context.Background(), api, patch)).To(Succeed())
	waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)

	// An audience that names no OAuthAPI, until one is created.
	missing := "missing-" + rand.String(5)
	oc2 := newClient(t, ns, "early", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name, missing}})
	c = waitReady(t, ns, oc2.Name, metav1.ConditionFalse, oauthv1alpha1.ReasonAudienceNotAllowed)
	g.Expect(c.Message).To(ContainSubstring(`OAuthAPI %q does not exist`, missing))
	late := &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: missing}, Spec: oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()}}
	g.Expect(k8s.Create(context.Background(), late)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), late) })
	waitReady(t, ns, oc2.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
}

func TestDisabledClientKeepsCredentials(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	oc := newClient(t, ns, "paused", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}})
	waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	secret := getSecret(g, ns, "paused").Data["client_secret"]

	patch := client.MergeFrom(oc.DeepCopy())
	oc.Spec.Disabled = true
	g.Expect(k8s.Patch(context.Background(), oc, patch)).To(Succeed())
	waitReady(t, ns, oc.Name, metav1.ConditionFalse, oauthv1alpha1.ReasonDisabled)
	g.Expect(getSecret(g, ns, "paused").Data["client_secret"]).To(Equal(secret))
}

func TestSecretValueNeverLoggedOrPublished(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	oc := newClient(t, ns, "quiet", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}})
	waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)

	// Exercise every path that logs or emits events: create, tamper, regenerate, recreate.
	var secrets [][]byte
	s := getSecret(g, ns, "quiet")
	secrets = append(secrets, s.Data["client_secret"])
	patch := client.MergeFrom(s.DeepCopy())
	s.Data["client_id"] = []byte("x.y")
	delete(s.Data, "client_secret")
	g.Expect(k8s.Patch(context.Background(), s, patch)).To(Succeed())
	g.Eventually(func(g Gomega) []byte { return getSecret(g, ns, "quiet").Data["client_secret"] }, timeout, interval).ShouldNot(BeEmpty())
	s = getSecret(g, ns, "quiet")
	secrets = append(secrets, s.Data["client_secret"])
	g.Expect(k8s.Delete(context.Background(), s)).To(Succeed())
	g.Eventually(func(g Gomega) types.UID { return getSecret(g, ns, "quiet").UID }, timeout, interval).ShouldNot(Equal(s.UID))
	secrets = append(secrets, getSecret(g, ns, "quiet").Data["client_secret"])
	g.Eventually(func(g Gomega) []string { return reasons(eventsFor(g, ns, "quiet")) }, timeout, interval).
		Should(ContainElements("SecretCreated", "SecretRepaired", "SecretRegenerated", "SecretRecreated"))

	got := &oauthv1alpha1.OAuthClient{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(oc), got)).To(Succeed())
	var published strings.Builder
	published.WriteString(logs.String())
	status, err := json.Marshal(got.Status)
	g.Expect(err).NotTo(HaveOccurred())
	published.Write(status)
	for _, e := range eventsFor(g, ns, "quiet") {
		published.WriteString(e.Note + e.Reason + e.Action)
	}
	g.Expect(logs.String()).To(ContainSubstring("quiet"), "the scan must see the operator's logs about this client")
	for _, v := range secrets {
		g.Expect(v).NotTo(BeEmpty())
		g.Expect(published.String()).NotTo(ContainSubstring(string(v)))
	}
}

func TestAPIServerRejectsInvalidObjects(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t, nil)
	ttl := func(s string) *metav1.Duration {
		d, err := time.ParseDuration(s)
		if err != nil {
			panic(err)
		}
		return &metav1.Duration{Duration: d}
	}
	clients := []struct {
		name string
		spec oauthv1alpha1.OAuthClientSpec
		want string
	}{
		{"no audience", oauthv1alpha1.OAuthClientSpec{}, "spec.audiences"},
		{"empty audiences", oauthv1alpha1.OAuthClientSpec{Audiences: []string{}}, "spec.audiences"},
		{"duplicate audience", oauthv1alpha1.OAuthClientSpec{Audiences: []string{"a", "a"}}, "Duplicate value"},
		{"bad audience name", oauthv1alpha1.OAuthClientSpec{Audiences: []string{"Not A Name"}}, "spec.audiences[0]"},
		{"scope with space", oauthv1alpha1.OAuthClientSpec{Audiences: []string{"a"}, Scopes: []oauthv1alpha1.Scope{"users read"}}, "spec.scopes[0]"},
		{"duplicate scope", oauthv1alpha1.OAuthClientSpec{Audiences: []string{"a"}, Scopes: []oauthv1alpha1.Scope{"x", "x"}}, "Duplicate value"},
		{"zero ttl", oauthv1alpha1.OAuthClientSpec{Audiences: []string{"a"}, AccessTokenTTL: ttl("0s")}, "accessTokenTTL must be a positive duration"},
		{"negative ttl", oauthv1alpha1.OAuthClientSpec{Audiences: []string{"a"}, AccessTokenTTL: ttl("-5m")}, "accessTokenTTL must be a positive duration"},
		{"bad secret name", oauthv1alpha1.OAuthClientSpec{Audiences: []string{"a"}, SecretName: "Bad_Name"}, "spec.secretName"},
		{"ServiceAccountToken without serviceAccountName", oauthv1alpha1.OAuthClientSpec{Audiences: []string{"a"},
			Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthServiceAccountToken}},
			"serviceAccountName is required when method is ServiceAccountToken"},
		{"serviceAccountName with ClientSecret", oauthv1alpha1.OAuthClientSpec{Audiences: []string{"a"},
			Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthClientSecret, ServiceAccountName: "sa"}},
			"serviceAccountName may only be set when method is ServiceAccountToken"},
		{"serviceAccountName with the default method", oauthv1alpha1.OAuthClientSpec{Audiences: []string{"a"},
			Authentication: &oauthv1alpha1.ClientAuthentication{ServiceAccountName: "sa"}},
			"serviceAccountName may only be set when method is ServiceAccountToken"},
		{"unknown method", oauthv1alpha1.OAuthClientSpec{Audiences: []string{"a"},
			Authentication: &oauthv1alpha1.ClientAuthentication{Method: "Password"}}, "spec.authentication.method"},
		{"bad ServiceAccount name", oauthv1alpha1.OAuthClientSpec{Audiences: []string{"a"},
			Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthServiceAccountToken, ServiceAccountName: "Not:A:Name"}},
			"spec.authentication.serviceAccountName"},
	}
	for _, tt := range clients {
		t.Run("OAuthClient/"+tt.name, func(t *testing.T) {
			oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "bad-"}, Spec: tt.spec}
			err := k8s.Create(context.Background(), oc)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create = %v, want Invalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}

	apis := []struct {
		name string
		spec oauthv1alpha1.OAuthAPISpec
		want string
	}{
		{"no from", oauthv1alpha1.OAuthAPISpec{}, "spec.allowedNamespaces.from"},
		{"unknown from", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: "Some"}}, `supported values: "All", "Selector"`},
		{"selector missing", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector}}, "selector is required when from is Selector"},
		{"selector with All", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll, Selector: &metav1.LabelSelector{}}}, "selector may only be set when from is Selector"},
		{"zero ttl", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces(), AccessTokenTTL: ttl("0s")}, "accessTokenTTL must be a positive duration"},
		{"scope with space", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces(), Scopes: []oauthv1alpha1.Scope{"a b"}}, "spec.scopes[0]"},
		{"audience with space", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces(), Audience: "back office"}, "spec.audience"},
	}
	for _, tt := range apis {
		t.Run("OAuthAPI/"+tt.name, func(t *testing.T) {
			api := &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{GenerateName: "bad-"}, Spec: tt.spec}
			err := k8s.Create(context.Background(), api)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create = %v, want Invalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}

	t.Run("OAuthClient/secretName is immutable", func(t *testing.T) {
		g := NewWithT(t)
		oc := newClient(t, ns, "fixed", oauthv1alpha1.OAuthClientSpec{Audiences: []string{"a"}})
		patch := client.MergeFrom(oc.DeepCopy())
		oc.Spec.SecretName = "elsewhere"
		err := k8s.Patch(context.Background(), oc, patch)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "patch = %v", err)
		g.Expect(err.Error()).To(ContainSubstring("secretName is immutable"))
	})
}
