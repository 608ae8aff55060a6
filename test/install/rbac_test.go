//go:build integration

package install

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/operator"
)

// The chart's RBAC is sufficient and minimal: the whole operator (leader election,
// controller, signing keys, token server) runs with exactly the chart's ServiceAccount,
// ClusterRole and leader-election Role, and that identity can do nothing else of
// consequence.
func TestChartRBACIsSufficientAndMinimal(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	r := release{name: "rbac", namespace: "oauth-rbac"}
	ensureNamespace(t, r.namespace)
	objs := render(t, r)
	sa := find(t, objs, "ServiceAccount")
	user := fmt.Sprintf("system:serviceaccount:%s:%s", r.namespace, sa.GetName())

	// A client that is the chart's ServiceAccount: the API server authorizes its requests
	// by that identity's RBAC alone (the ServiceAccount groups and system:authenticated
	// are added by the impersonation, as for a real pod's token).
	saCfg := rest.CopyConfig(env.Config)
	saCfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	asSA, err := client.New(saCfg, client.Options{Scheme: operator.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())

	// envtest's kube-apiserver enforces RBAC: before the chart's RBAC exists, the
	// ServiceAccount may not even list OAuthClients.
	err = asSA.List(ctx, &oauthv1alpha1.OAuthClientList{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "RBAC is not enforced by the test API server: %v", err)

	// Apply the chart's identity and RBAC for real.
	rbacKinds := map[string]bool{"ServiceAccount": true, "ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true}
	applied := 0
	for _, o := range objs {
		if !rbacKinds[o.GetKind()] {
			continue
		}
		obj := o.DeepCopy()
		g.Expect(admin.Create(ctx, obj)).To(Succeed(), "%s %s", o.GetKind(), o.GetName())
		t.Cleanup(func() { _ = admin.Delete(context.Background(), obj) })
		applied++
	}
	g.Expect(applied).To(Equal(len(rbacKinds)), "the chart renders one object of each RBAC kind")
	g.Eventually(func() error { return asSA.List(ctx, &oauthv1alpha1.OAuthClientList{}) }, 10*time.Second, 100*time.Millisecond).
		Should(Succeed(), "the chart's ClusterRole is in force")

	// Run the operator as the ServiceAccount, with the chart's config file (served on
	// loopback) and leader election, as the chart's Deployment runs it.
	cfg := operatorConfig(t, objs)
	tokenAddr, probeAddr := freeAddr(t), freeAddr(t)
	cfg.Issuer, cfg.TokenServer.Address = "http://"+tokenAddr, tokenAddr
	// Ready: caches synced and signing keys loaded (the key Secret created as the SA).
	startOperator(t, saCfg, operator.Options{
		Config: cfg, Namespace: r.namespace, MetricsAddr: "0", ProbeAddr: probeAddr,
		LeaderElection: true, SkipControllerNameValidation: true,
	}, "the operator becomes ready with the chart's RBAC")

	// The leader holds the Lease in the release namespace.
	lease := &coordinationv1.Lease{}
	g.Eventually(func() (string, error) {
		err := admin.Get(ctx, types.NamespacedName{Namespace: r.namespace, Name: "oauth-client-operator.oauth.operator.dev"}, lease)
		if err != nil || lease.Spec.HolderIdentity == nil {
			return "", err
		}
		return *lease.Spec.HolderIdentity, nil
	}, 30*time.Second, 200*time.Millisecond).ShouldNot(BeEmpty(), "leader election works with the chart's Role")

	// As an administrator: an API and a client in a namespace the API admits.
	shop := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "rbac-shop-", Labels: map[string]string{"oauth.operator.dev/rbac-api": "allowed"}}}
	g.Expect(admin.Create(ctx, shop)).To(Succeed())
	t.Cleanup(func() { _ = admin.Delete(context.Background(), shop) })
	api := &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: "rbac-api"}, Spec: oauthv1alpha1.OAuthAPISpec{
		Scopes: []oauthv1alpha1.Scope{"users:read"},
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"oauth.operator.dev/rbac-api": "allowed"}}},
	}}
	g.Expect(admin.Create(ctx, api)).To(Succeed())
	t.Cleanup(func() { _ = admin.Delete(context.Background(), api) })
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: shop.Name, Name: "erp-sync"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{"rbac-api"}, Scopes: []oauthv1alpha1.Scope{"users:read"}}}
	g.Expect(admin.Create(ctx, oc)).To(Succeed())

	// The operator writes the credentials, the statuses and an event...
	secret := &corev1.Secret{}
	g.Eventually(func() error {
		return admin.Get(ctx, types.NamespacedName{Namespace: shop.Name, Name: "erp-sync"}, secret)
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed(), "the client's Secret is written")
	g.Eventually(func() bool {
		got := &oauthv1alpha1.OAuthClient{}
		if err := admin.Get(ctx, client.ObjectKeyFromObject(oc), got); err != nil {
			return false
		}
		return meta.IsStatusConditionTrue(got.Status.Conditions, oauthv1alpha1.ConditionReady)
	}, 30*time.Second, 100*time.Millisecond).Should(BeTrue(), "the client's status is written")
	g.Eventually(func() (string, error) {
		got := &oauthv1alpha1.OAuthAPI{}
		err := admin.Get(ctx, client.ObjectKeyFromObject(api), got)
		return got.Status.Audience, err
	}, 30*time.Second, 100*time.Millisecond).Should(Equal("rbac-api"), "the API's status is written")
	g.Eventually(func() []string {
		list := &eventsv1.EventList{}
		if err := admin.List(ctx, list, client.InNamespace(shop.Name)); err != nil {
			return nil
		}
		var reasons []string
		for _, e := range list.Items {
			if e.Regarding.Name == "erp-sync" {
				reasons = append(reasons, e.Reason)
			}
		}
		return reasons
	}, 30*time.Second, 200*time.Millisecond).Should(ContainElement("SecretCreated"), "events are recorded on the client")
	g.Eventually(func() bool {
		list := &corev1.EventList{}
		if err := admin.List(ctx, list, client.InNamespace(r.namespace)); err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.InvolvedObject.Kind == "Lease" && e.Reason == "LeaderElection" {
				return true
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond).Should(BeTrue(), "the leader-election event is recorded in the release namespace")

	// ... and the token server issues a token for it.
	body := fmt.Sprintf(`{"grant_type": "client_credentials", "client_id": %q, "client_secret": %q}`,
		secret.Data["client_id"], secret.Data["client_secret"])
	var status int
	var answer map[string]any
	g.Eventually(func() (int, error) {
		resp, err := http.Post(string(secret.Data["token_url"]), "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		defer func() { _ = resp.Body.Close() }()
		answer = nil
		status = resp.StatusCode
		return status, json.NewDecoder(resp.Body).Decode(&answer)
	}, 10*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK), "a token is served: %v", &answer)
	g.Expect(answer).To(HaveKeyWithValue("token_type", "Bearer"))
	g.Expect(answer["access_token"]).NotTo(BeEmpty())

	// A ServiceAccountToken client too: the operator reads the ServiceAccount issuer's
	// keys through the API server with the chart's RBAC.
	saClient := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: shop.Name, Name: "inventory"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{"rbac-api"}, Authentication: &oauthv1alpha1.ClientAuthentication{
			Method: oauthv1alpha1.AuthServiceAccountToken, ServiceAccountName: "inventory"}}}
	workloadSA := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: shop.Name, Name: "inventory"}}
	g.Expect(admin.Create(ctx, saClient)).To(Succeed())
	g.Expect(admin.Create(ctx, workloadSA)).To(Succeed())
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{cfg.Issuer}}}
	g.Expect(admin.SubResource("token").Create(ctx, workloadSA, tr)).To(Succeed())
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {shop.Name + ".inventory"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {tr.Status.Token}}
	g.Eventually(func() (int, error) {
		resp, err := http.PostForm(cfg.TokenURL(), form)
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}, 10*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK), "a ServiceAccountToken client gets a token")

	// Minimal: the identity is refused what the operator does not need.
	forbidden := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("as %s, %s: want Forbidden, got %v", user, what, err)
		}
	}
	forbidden("delete a Namespace", asSA.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: shop.Name}}))
	forbidden("list ConfigMaps cluster-wide", asSA.List(ctx, &corev1.ConfigMapList{}))
	forbidden("list ConfigMaps in its namespace", asSA.List(ctx, &corev1.ConfigMapList{}, client.InNamespace(r.namespace)))
	forbidden("delete a client's Secret", asSA.Delete(ctx, secret.DeepCopy()))
	forbidden("delete the signing-key Secret", asSA.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.namespace, Name: cfg.Signing.SecretName}}))
	forbidden("create an OAuthAPI", asSA.Create(ctx, &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: "rbac-forged"},
		Spec: oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll}}}))
	current := &oauthv1alpha1.OAuthAPI{}
	g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(api), current)).To(Succeed())
	current.Spec.Scopes = append(current.Spec.Scopes, "users:write")
	forbidden("update an OAuthAPI", asSA.Update(ctx, current))
	forbidden("delete an OAuthAPI", asSA.Delete(ctx, current))
	currentClient := &oauthv1alpha1.OAuthClient{}
	g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(oc), currentClient)).To(Succeed())
	currentClient.Spec.Scopes = nil
	forbidden("update an OAuthClient's spec", asSA.Update(ctx, currentClient))
	forbidden("delete an OAuthClient", asSA.Delete(ctx, currentClient))
	forbidden("create a Lease outside its namespace", asSA.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: shop.Name, Name: "x"}}))
	forbidden("list Pods", asSA.List(ctx, &corev1.PodList{}))
	forbidden("create a Pod", asSA.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: r.namespace, Name: "x"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}}))
	forbidden("bind itself to cluster-admin", asSA.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "rbac-escalate"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.GetName(), Namespace: r.namespace}}}))

	// Nothing the operator tried was refused.
	g.Expect(strings.ToLower(logs.String())).NotTo(ContainSubstring("forbidden"), "the operator's log reports a refused request:\n%s", logs.String())
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// startOperator runs the whole operator on restCfg with opts until the test ends, and
// waits until its /readyz (at opts.ProbeAddr) answers 200.
func startOperator(t *testing.T, restCfg *rest.Config, opts operator.Options, why ...any) {
	t.Helper()
	opCtx, cancel := context.WithCancel(context.Background())
	op, err := operator.New(opCtx, rest.CopyConfig(restCfg), opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- op.Start(opCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator stopped with error: %v", err)
		}
	})
	NewWithT(t).Eventually(func() (int, error) {
		resp, err := http.Get("http://" + opts.ProbeAddr + "/readyz")
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}, 30*time.Second, 200*time.Millisecond).Should(Equal(http.StatusOK), why...)
}
