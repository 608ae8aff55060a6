package tokenserver

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/workloadidentity"
)

// The handler tests read from a real informer cache of a real API server, as the token
// server does in the manager. The control plane starts on first use, so the fuzz and
// parser tests need none.
var (
	envOnce  sync.Once
	envErr   error
	env      *testenv.Environment
	k8s      client.Client
	objCache cache.Cache
	// saIssuer is the cluster's ServiceAccount issuer, as the operator discovers it.
	saIssuer *workloadidentity.Issuer
	stopEnv  = func() {}
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopEnv()
	os.Exit(code)
}

func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := oauthv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// controlPlane starts envtest and a cache shaped like the manager's (Secrets selected
// by the managed-by label).
func controlPlane(tb testing.TB) {
	tb.Helper()
	envOnce.Do(func() {
		env, envErr = testenv.Start()
		if envErr != nil {
			return
		}
		scheme := testScheme()
		if k8s, envErr = client.New(env.Config, client.Options{Scheme: scheme}); envErr != nil {
			return
		}
		objCache, envErr = cache.New(env.Config, cache.Options{
			Scheme: scheme,
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue})},
			},
			DefaultTransform: cache.TransformStripManagedFields(),
		})
		if envErr != nil {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		stopEnv = func() {
			cancel()
			_ = env.Stop()
		}
		go func() { _ = objCache.Start(ctx) }()
		for _, obj := range []client.Object{&corev1.Secret{}, &corev1.Namespace{}, &oauthv1alpha1.OAuthClient{}, &oauthv1alpha1.OAuthAPI{}} {
			if _, err := objCache.GetInformer(ctx, obj); err != nil {
				envErr = err
				break
			}
		}
		if !objCache.WaitForCacheSync(ctx) {
			envErr = fmt.Errorf("cache did not sync")
		}
		if saIssuer, envErr = workloadidentity.New(workloadidentity.Options{Config: env.Config}); envErr != nil {
			return
		}
		go func() { _ = saIssuer.Start(ctx) }()
		select {
		case <-saIssuer.Ready():
		case <-time.After(30 * time.Second):
			envErr = fmt.Errorf("ServiceAccount issuer not discovered in time")
		}
	})
	if envErr != nil {
		tb.Fatalf("control plane: %v", envErr)
	}
}

// world is one test's objects: namespaces, APIs, clients and their Secrets.
type world struct {
	tb testing.TB
	// suffix keeps cluster-scoped names apart between tests.
	suffix string
	// secrets maps client_id to client_secret.
	secrets map[string]string
	// servers are the token servers built by this world; objects count as created once
	// every server has indexed them.
	servers []*Server
}

func newWorld(tb testing.TB) *world {
	controlPlane(tb)
	return &world{tb: tb, suffix: rand.String(5), secrets: map[string]string{}}
}

func (w *world) create(obj client.Object) {
	w.tb.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		w.tb.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
	w.tb.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
	w.waitCached(obj, func(client.Object) bool { return true })
	w.waitIndexed(obj)
}

// waitIndexed waits until every server of the world has indexed obj as created.
func (w *world) waitIndexed(obj client.Object) {
	w.tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, srv := range w.servers {
		for !srv.registry.indexed(obj) {
			if time.Now().After(deadline) {
				w.tb.Fatalf("%T %s not indexed in time", obj, obj.GetName())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// waitCached waits until the cache holds obj in a state that satisfies ok.
func (w *world) waitCached(obj client.Object, ok func(client.Object) bool) {
	w.tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := obj.DeepCopyObject().(client.Object)
		err := objCache.Get(context.Background(), client.ObjectKeyFromObject(obj), got)
		if err == nil && ok(got) {
			return
		}
		if err != nil && !apierrors.IsNotFound(err) {
			w.tb.Fatalf("read %s from cache: %v", obj.GetName(), err)
		}
		if time.Now().After(deadline) {
			w.tb.Fatalf("%T %s not in the cache in time (err=%v)", obj, obj.GetName(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *world) namespace(prefix string, labels map[string]string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-" + w.suffix, Labels: labels}}
	w.create(ns)
	return ns.Name
}

// api creates an OAuthAPI named name-<suffix> and returns its name.
func (w *world) api(name string, spec oauthv1alpha1.OAuthAPISpec) string {
	a := &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: name + "-" + w.suffix}, Spec: spec}
	w.create(a)
	return a.Name
}

// client creates an OAuthClient and the Secret the operator would give it, and
// returns the client_id.
func (w *world) client(ns, name string, spec oauthv1alpha1.OAuthClientSpec) string {
	w.tb.Helper()
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	w.create(oc)
	secret := "secret-" + rand.String(40)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: oc.EffectiveSecretName(), Labels: map[string]string{
			oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue, oauthv1alpha1.ClientLabel: name,
		}},
		StringData: map[string]string{oauthv1alpha1.SecretKeyClientID: oc.ClientID(), oauthv1alpha1.SecretKeyClientSecret: secret},
	}
	if err := controllerutil.SetControllerReference(oc, s, testScheme()); err != nil {
		w.tb.Fatal(err)
	}
	w.create(s)
	w.secrets[oc.ClientID()] = secret
	return oc.ClientID()
}

// server returns a token server over the shared cache, with a fresh key of alg.
func (w *world) server(cfgYAML string, alg signing.Algorithm, now func() time.Time) (*Server, *signing.Keyring) {
	w.tb.Helper()
	cfg, err := config.Parse([]byte("issuer: https://issuer.test\n" + cfgYAML))
	if err != nil {
		w.tb.Fatal(err)
	}
	keys := &signing.Keyring{}
	if alg != "" {
		key, err := signing.GenerateKey(alg, time.Now())
		if err != nil {
			w.tb.Fatal(err)
		}
		if _, err := keys.Store(&signing.KeySet{CurrentID: key.ID, Keys: []*signing.Key{key}}, "1", time.Now()); err != nil {
			w.tb.Fatal(err)
		}
	}
	srv := New(Options{Config: cfg, Informers: objCache, Keys: keys, Log: logr.Discard(), Now: now, ServiceAccountIssuer: saIssuer})
	if err := srv.Watch(context.Background()); err != nil {
		w.tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !srv.registry.synced() {
		if time.Now().After(deadline) {
			w.tb.Fatal("token server did not index the cache in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.servers = append(w.servers, srv)
	return srv, keys
}

func allNS() oauthv1alpha1.AllowedNamespaces {
	return oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll}
}

func dur(s string) *metav1.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return &metav1.Duration{Duration: d}
}
