//go:build integration

package controllers_test

import (
	"context"
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/controllers"
)

// waitAPIStatus waits until the API's status says audience, for its current generation.
func waitAPIStatus(t *testing.T, name, audience string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		api := &oauthv1alpha1.OAuthAPI{}
		g.Expect(k8s.Get(context.Background(), types.NamespacedName{Name: name}, api)).To(Succeed())
		g.Expect(api.Status.ObservedGeneration).To(Equal(api.Generation))
		g.Expect(api.Status.Audience).To(Equal(audience))
	}, timeout, interval).Should(Succeed())
}

func patchAPISpec(t *testing.T, name string, change func(*oauthv1alpha1.OAuthAPISpec)) {
	t.Helper()
	api := &oauthv1alpha1.OAuthAPI{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Name: name}, api); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(api.DeepCopy())
	change(&api.Spec)
	if err := k8s.Patch(context.Background(), api, patch); err != nil {
		t.Fatalf("patch OAuthAPI %s: %v", name, err)
	}
}

// The status holds the effective audience: the name when spec.audience is unset,
// spec.audience when set, and follows spec changes either way.
func TestOAuthAPIStatusAudience(t *testing.T) {
	t.Parallel()
	defaulted := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	waitAPIStatus(t, defaulted.Name, defaulted.Name)

	explicit := newAPI(t, oauthv1alpha1.OAuthAPISpec{Audience: "https://back-office.example/api", AllowedNamespaces: allNamespaces()})
	waitAPIStatus(t, explicit.Name, "https://back-office.example/api")

	patchAPISpec(t, explicit.Name, func(s *oauthv1alpha1.OAuthAPISpec) { s.Audience = "back-office-v2" })
	waitAPIStatus(t, explicit.Name, "back-office-v2")

	patchAPISpec(t, explicit.Name, func(s *oauthv1alpha1.OAuthAPISpec) { s.Audience = "" })
	waitAPIStatus(t, explicit.Name, explicit.Name)

	patchAPISpec(t, defaulted.Name, func(s *oauthv1alpha1.OAuthAPISpec) { s.Audience = "set-later" })
	waitAPIStatus(t, defaulted.Name, "set-later")
}

// A status changed by someone else is written back.
func TestOAuthAPIStatusRestored(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	waitAPIStatus(t, api.Name, api.Name)

	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(api), api)).To(Succeed())
	patch := client.MergeFrom(api.DeepCopy())
	api.Status.Audience = "forged"
	g.Expect(k8s.Status().Patch(context.Background(), api, patch)).To(Succeed())
	waitAPIStatus(t, api.Name, api.Name)
}

// `kubectl get oauthapis` shows the effective audience: the CRD's Audience column reads
// status.audience, and the table the API server serves for an API without spec.audience
// (what kubectl prints) has its name in that column.
func TestOAuthAPIAudienceColumn(t *testing.T) {
	t.Parallel()
	requireEnv(t)
	g := NewWithT(t)
	ctx := context.Background()

	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	g.Expect(k8s.Get(ctx, types.NamespacedName{Name: "oauthapis.oauth.operator.dev"}, crd)).To(Succeed())
	versions, _, err := unstructured.NestedSlice(crd.Object, "spec", "versions")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(versions).To(HaveLen(1))
	columns, _, err := unstructured.NestedSlice(versions[0].(map[string]any), "additionalPrinterColumns")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(columns).To(ContainElement(And(HaveKeyWithValue("name", "Audience"), HaveKeyWithValue("jsonPath", ".status.audience"))))
	subresources, _, err := unstructured.NestedMap(versions[0].(map[string]any), "subresources")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(subresources).To(HaveKey("status"), "status is a subresource: spec writers cannot set it")

	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	waitAPIStatus(t, api.Name, api.Name)
	cfg := rest.CopyConfig(env.Config)
	cfg.APIPath, cfg.GroupVersion = "/apis", &oauthv1alpha1.GroupVersion
	cfg.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	body, err := rc.Get().Resource("oauthapis").Name(api.Name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	table := &metav1.Table{}
	g.Expect(json.Unmarshal(body, table)).To(Succeed())
	audience := -1
	for i, c := range table.ColumnDefinitions {
		if c.Name == "Audience" {
			audience = i
		}
	}
	g.Expect(audience).NotTo(Equal(-1), "the table has an Audience column: %+v", table.ColumnDefinitions)
	g.Expect(table.Rows).To(HaveLen(1))
	g.Expect(table.Rows[0].Cells[audience]).To(Equal(api.Name))
}

// apiConflict returns the API's AudienceConflict condition, nil when it has none.
func apiConflict(g Gomega, name string) *metav1.Condition {
	api := &oauthv1alpha1.OAuthAPI{}
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Name: name}, api)).To(Succeed())
	return meta.FindStatusCondition(api.Status.Conditions, oauthv1alpha1.ConditionAudienceConflict)
}

// Issue 22, finding 7: two OAuthAPIs with the same effective audience both say so, in a
// condition naming the other and a Warning event; when one changes its audience, the
// conditions go, with a Normal event.
func TestOAuthAPIAudienceConflict(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	shared := "https://shared-" + rand.String(6) + ".example/api"
	first := newAPI(t, oauthv1alpha1.OAuthAPISpec{Audience: shared, AllowedNamespaces: allNamespaces()})
	waitAPIStatus(t, first.Name, shared)
	g.Expect(apiConflict(g, first.Name)).To(BeNil(), "alone with its audience")

	// A second API with the same audience.
	second := newAPI(t, oauthv1alpha1.OAuthAPISpec{Audience: shared, AllowedNamespaces: allNamespaces()})
	for self, other := range map[string]string{first.Name: second.Name, second.Name: first.Name} {
		g.Eventually(func(g Gomega) {
			c := apiConflict(g, self)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(oauthv1alpha1.ReasonSharedAudience))
			g.Expect(c.Message).To(ContainSubstring(`OAuthAPI %q`, other))
			g.Expect(c.Message).To(ContainSubstring(shared))
		}, timeout, interval).Should(Succeed(), "OAuthAPI %s", self)
		g.Eventually(func(g Gomega) []eventsv1.Event { return eventsFor(g, metav1.NamespaceDefault, self) }, timeout, interval).
			Should(ContainElement(And(
				HaveField("Reason", controllers.EventAudienceConflict),
				HaveField("Type", corev1.EventTypeWarning),
				HaveField("Note", ContainSubstring(other)))))
	}

	// The name of one API as another's explicit audience collides too.
	third := newAPI(t, oauthv1alpha1.OAuthAPISpec{Audience: first.Name + "-x", AllowedNamespaces: allNamespaces()})
	waitAPIStatus(t, third.Name, first.Name+"-x")
	byName := &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: first.Name + "-x"}, Spec: oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()}}
	g.Expect(k8s.Create(context.Background(), byName)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), byName) })
	g.Eventually(func(g Gomega) *metav1.Condition { return apiConflict(g, third.Name) }, timeout, interval).
		Should(HaveField("Message", ContainSubstring(`OAuthAPI %q`, byName.Name)))

	// Resolved: the second moves to an audience of its own; both conditions go.
	patchAPISpec(t, second.Name, func(s *oauthv1alpha1.OAuthAPISpec) { s.Audience = shared + "/v2" })
	for _, name := range []string{first.Name, second.Name} {
		g.Eventually(func(g Gomega) *metav1.Condition { return apiConflict(g, name) }, timeout, interval).Should(BeNil(), "OAuthAPI %s", name)
		g.Eventually(func(g Gomega) []string { return reasons(eventsFor(g, metav1.NamespaceDefault, name)) }, timeout, interval).
			Should(ContainElement(controllers.EventAudienceConflictResolved))
	}
	waitAPIStatus(t, second.Name, shared+"/v2")

	// Deleting one of a colliding pair resolves it for the other.
	g.Expect(k8s.Delete(context.Background(), byName)).To(Succeed())
	g.Eventually(func(g Gomega) *metav1.Condition { return apiConflict(g, third.Name) }, timeout, interval).Should(BeNil())
}
