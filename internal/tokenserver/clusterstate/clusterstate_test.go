//go:build integration

package clusterstate

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/tokenserver"
	"github.com/oauth-client-operator/oauth-client-operator/internal/workloadidentity"
)

// The informer side of the token server against a real API server: what the cluster
// holds reaches the Store, and a real ServiceAccount issuer's tokens authenticate.

var (
	env *testenv.Environment
	k8s client.Client
)

func TestMain(m *testing.M) {
	testenv.Main(func() (int, error) {
		var err error
		if env, err = testenv.Start(); err != nil {
			return 0, err
		}
		defer func() { _ = env.Stop() }()
		if k8s, err = client.New(env.Config, client.Options{Scheme: scheme()}); err != nil {
			return 0, err
		}
		return m.Run(), nil
	})
}

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := oauthv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// fed starts a cache shaped like the manager's (Secrets selected by the managed-by
// label), a Feed into a Store, and the cluster's ServiceAccount issuer, until the test
// ends.
func fed(t *testing.T) (*tokenserver.Store, *Feed, *workloadidentity.Issuer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c, err := cache.New(env.Config, cache.Options{
		Scheme: scheme(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue})},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	store, feed := tokenserver.NewStore(), &Feed{}
	if err := feed.Start(ctx, c, store); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	issuer, err := workloadidentity.New(workloadidentity.Options{Config: env.Config, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = issuer.Start(ctx) }()
	eventually(t, "the feed syncs and the issuer is discovered", func() bool { return feed.Synced() && issuer.Issuer() != "" })
	return store, feed, issuer
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not in time: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
}

func server(t *testing.T, store *tokenserver.Store, issuer tokenserver.ServiceAccountIssuer) http.Handler {
	return serverWith(t, store, issuer, nil)
}

func serverWith(t *testing.T, store *tokenserver.Store, issuer tokenserver.ServiceAccountIssuer, reviewer tokenserver.BoundTokenReviewer) http.Handler {
	t.Helper()
	cfg, err := config.Parse([]byte("issuer: https://issuer.test\nrateLimit: {failedAuthPerMinute: 0}"))
	if err != nil {
		t.Fatal(err)
	}
	keys := &signing.Keyring{}
	key, err := signing.GenerateKey(signing.ES256, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Store(&signing.KeySet{CurrentID: key.ID, Keys: []*signing.Key{key}}, "1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return tokenserver.New(tokenserver.Options{Config: cfg, State: store, Keys: keys, Log: logr.Discard(),
		ServiceAccountIssuer: issuer, BoundTokenReviewer: reviewer}).Handler()
}

func post(h http.Handler, params map[string]string) *httptest.ResponseRecorder {
	body, _ := json.Marshal(params)
	r := httptest.NewRequest(http.MethodPost, tokenserver.TokenPath, strings.NewReader(string(body)))
	r.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// TestFeedFollowsTheCluster: clients, their Secrets, APIs, namespaces and
// ServiceAccounts created, changed and deleted on the API server reach the Store, and a
// labelled Secret no client controls authenticates no one.
func TestFeedFollowsTheCluster(t *testing.T) {
	store, _, issuer := fed(t)
	h := server(t, store, issuer)
	suffix := rand.String(5)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "feed-" + suffix}}
	create(t, ns)
	api := &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: "feed-" + suffix}, Spec: oauthv1alpha1.OAuthAPISpec{
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"feed": "yes"}}},
	}}
	create(t, api)
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "c"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}}}
	create(t, oc)
	secret := strings.Repeat("s", oauthv1alpha1.MinClientSecretLength)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "c",
		Labels: map[string]string{oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue}},
		Data: map[string][]byte{oauthv1alpha1.SecretKeyClientSecret: []byte(secret)}}
	create(t, s)
	request := func(secret string) int {
		return post(h, map[string]string{"grant_type": "client_credentials", "client_id": oc.ClientID(), "client_secret": secret}).Code
	}
	eventually(t, "the client and its Secret are known", func() bool {
		c, cred := store.Client(ns.Name, "c")
		return c != nil && cred != nil
	})
	// Not controlled by the client: refused.
	if code := request(secret); code != http.StatusUnauthorized {
		t.Fatalf("a Secret the client does not control: %d, want 401", code)
	}
	if err := controllerutil.SetControllerReference(oc, s, scheme()); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	// Controlled, but the namespace is not admitted yet; then labelled: admitted.
	eventually(t, "the owner reference reaches the Store", func() bool { return request(secret) == http.StatusBadRequest })
	ns.Labels = map[string]string{"feed": "yes"}
	if err := k8s.Update(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the namespace label reaches the Store", func() bool { return request(secret) == http.StatusOK })
	// The client deleted: unknown again.
	if err := k8s.Delete(context.Background(), oc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deletion reaches the Store", func() bool { c, _ := store.Client(ns.Name, "c"); return c == nil })
	if code := request(secret); code != http.StatusUnauthorized {
		t.Fatalf("a deleted client: %d, want 401", code)
	}
}

// serviceAccountClient creates a namespace named prefix plus a random suffix, an
// OAuthAPI of its name admitting every namespace, the ServiceAccount "erp" and the
// ServiceAccountToken client "erp" of that API.
func serviceAccountClient(t *testing.T, prefix string) (*corev1.Namespace, *oauthv1alpha1.OAuthClient) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prefix + rand.String(5)}}
	create(t, ns)
	api := &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: ns.Name}, Spec: oauthv1alpha1.OAuthAPISpec{
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll}}}
	create(t, api)
	create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "erp"}})
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "erp"}, Spec: oauthv1alpha1.OAuthClientSpec{
		Audiences:      []string{api.Name},
		Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthServiceAccountToken, ServiceAccountName: "erp"},
	}}
	create(t, oc)
	return ns, oc
}

// assertionRequest is the status of a token request of oc with assertion tok.
func assertionRequest(h http.Handler, oc *oauthv1alpha1.OAuthClient, tok string) int {
	return post(h, map[string]string{"grant_type": "client_credentials", "client_id": oc.ClientID(),
		"client_assertion_type": tokenserver.JWTBearerAssertionType, "client_assertion": tok}).Code
}

// TestServiceAccountTokenFromTheAPIServer: a ServiceAccountToken client gets tokens
// with a token of the real API server's TokenRequest; a token of its ServiceAccount
// deleted and created again authenticates no one.
func TestServiceAccountTokenFromTheAPIServer(t *testing.T) {
	store, _, issuer := fed(t)
	h := server(t, store, issuer)
	ns, oc := serviceAccountClient(t, "sa-")
	token := func() string {
		cs, err := kubernetes.NewForConfig(env.Config)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := cs.CoreV1().ServiceAccounts(ns.Name).CreateToken(context.Background(), "erp", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"https://issuer.test"}, ExpirationSeconds: ptr.To(int64(3600))},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	request := func(tok string) int { return assertionRequest(h, oc, tok) }
	good := token()
	eventually(t, "the client and its ServiceAccount are known", func() bool { return request(good) == http.StatusOK })

	old := &corev1.ServiceAccount{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns.Name, Name: "erp"}, old); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "erp"}})
	eventually(t, "the recreated ServiceAccount's UID reaches the Store", func() bool {
		uid, ok := store.ServiceAccountUID(ns.Name, "erp")
		return ok && uid != old.UID
	})
	if code := request(good); code != http.StatusUnauthorized {
		t.Fatalf("a token of the deleted ServiceAccount: %d, want 401", code)
	}
	if code := request(token()); code != http.StatusOK {
		t.Fatalf("a token of the new ServiceAccount: %d, want 200", code)
	}
}

// TestTokenOfADeletedPod is the finding of issue 22: a ServiceAccount token bound to a
// pod (as kubelet projects them) must stop getting access tokens once the pod is
// deleted, as the API server's TokenReview says, within the review TTL (2 s here, a
// minute by default).
func TestTokenOfADeletedPod(t *testing.T) {
	store, _, issuer := fed(t)
	reviewer, err := workloadidentity.NewReviewer(workloadidentity.ReviewerOptions{
		Config: env.Config, Audiences: []string{"https://issuer.test"}, TTL: 2 * time.Second, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	h := serverWith(t, store, issuer, reviewer)
	ns, oc := serviceAccountClient(t, "pod-")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "erp-7d9c"}, Spec: corev1.PodSpec{
		ServiceAccountName: "erp", Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app"}}}}
	create(t, pod)
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns.Name).CreateToken(context.Background(), "erp", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"https://issuer.test"}, ExpirationSeconds: ptr.To(int64(3600)),
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	request := func() int { return assertionRequest(h, oc, tr.Status.Token) }
	eventually(t, "the pod-bound token gets access tokens", func() bool { return request() == http.StatusOK })

	if err := k8s.Delete(context.Background(), pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	eventually(t, "the deleted pod's token is refused", func() bool { return request() == http.StatusUnauthorized })
	t.Logf("the deleted pod's token was refused %s after the deletion (review TTL 2s)", time.Since(deleted).Round(10*time.Millisecond))
}
