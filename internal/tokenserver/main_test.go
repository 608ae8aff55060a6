package tokenserver

import (
	cryptorand "crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	jwtv5 "github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
	"github.com/oauth-client-operator/oauth-client-operator/internal/trust"
)

// The protocol tests need no API server: a world holds the objects a test creates in a
// Store, as the informers record them in the operator (package clusterstate tests the
// informer side against a real API server).

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

var scheme = testScheme()

// world is one test's objects: namespaces, APIs, clients and their Secrets.
type world struct {
	tb    testing.TB
	store *Store
	// suffix keeps cluster-scoped names apart, as on a shared API server.
	suffix string
	// secrets maps client_id to client_secret.
	secrets map[string]string
	// objects are what the world created, by kind/namespace/name, as last written.
	objects map[string]client.Object
	// kube is the cluster's ServiceAccount token issuer, once used.
	kube *kubeIssuer
	// registry builds the world's OAuthTrustedIssuers, once one is created.
	registry *trust.Registry
}

// uids numbers the objects created, as the API server gives them UIDs.
var uids atomic.Int64

func newWorld(tb testing.TB) *world {
	return &world{tb: tb, store: NewStore(), suffix: rand.String(5), secrets: map[string]string{}, objects: map[string]client.Object{}}
}

func objectKey(obj client.Object) string {
	return fmt.Sprintf("%T/%s/%s", obj, obj.GetNamespace(), obj.GetName())
}

// create records obj as the API server would: with a UID, and StringData merged into
// Data.
func (w *world) create(obj client.Object) {
	w.tb.Helper()
	if obj.GetUID() == "" {
		obj.SetUID(types.UID(fmt.Sprintf("uid-%d", uids.Add(1))))
	}
	w.update(obj)
}

// update records obj as it is now.
func (w *world) update(obj client.Object) {
	w.tb.Helper()
	if s, ok := obj.(*corev1.Secret); ok && len(s.StringData) > 0 {
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		for k, v := range s.StringData {
			s.Data[k] = []byte(v)
		}
		s.StringData = nil
	}
	if !w.store.Set(obj) {
		w.tb.Fatalf("the store does not record %T", obj)
	}
	w.objects[objectKey(obj)] = obj
}

// remove deletes obj.
func (w *world) remove(obj client.Object) {
	w.store.Remove(obj)
	delete(w.objects, objectKey(obj))
}

// secret returns the Secret namespace/name as last written.
func (w *world) secret(namespace, name string) *corev1.Secret {
	w.tb.Helper()
	s, ok := w.objects[objectKey(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})].(*corev1.Secret)
	if !ok {
		w.tb.Fatalf("no Secret %s/%s", namespace, name)
	}
	return s.DeepCopy()
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
	w.own(oc, s)
	w.create(s)
	w.secrets[oc.ClientID()] = secret
	return oc.ClientID()
}

// own makes oc the controller of s, as the operator does.
func (w *world) own(oc *oauthv1alpha1.OAuthClient, s *corev1.Secret) {
	w.tb.Helper()
	if err := controllerutil.SetControllerReference(oc, s, scheme); err != nil {
		w.tb.Fatal(err)
	}
}

// server returns a token server over the world's store, with a fresh key of alg (none
// when alg is ""), on clk (the real clock when nil).
func (w *world) server(cfgYAML string, alg signing.Algorithm, clk clock.PassiveClock) (*Server, *signing.Keyring) {
	w.tb.Helper()
	return w.serverWith(cfgYAML, alg, Options{Clock: clk})
}

// serverWith is server with more options; Config, State, Keys and Log are set here.
func (w *world) serverWith(cfgYAML string, alg signing.Algorithm, o Options) (*Server, *signing.Keyring) {
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
	o.Config, o.State, o.Keys, o.Log = cfg, w.store, keys, logr.Discard()
	if o.ServiceAccountIssuer == nil {
		o.ServiceAccountIssuer = w.kubeIssuer()
	}
	return New(o), keys
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

// kubeIssuer is a cluster's ServiceAccount token issuer, as the API server's
// TokenRequest issues tokens: RS256 under a key id, with the ServiceAccount's UID.
type kubeIssuer struct {
	key *rsa.PrivateKey
}

const (
	kubeIssuerURL = "https://kubernetes.default.svc.cluster.local"
	kubeKeyID     = "kube-key-1"
)

// kubeIssuer returns the world's ServiceAccount issuer, made on first use.
func (w *world) kubeIssuer() *kubeIssuer {
	if w.kube == nil {
		key, err := rsa.GenerateKey(cryptorand.Reader, 2048)
		if err != nil {
			w.tb.Fatal(err)
		}
		w.kube = &kubeIssuer{key: key}
	}
	return w.kube
}

func (k *kubeIssuer) Issuer() string { return kubeIssuerURL }

// Keyfunc knows the one key, by its kid; a token without a kid is offered it too.
func (k *kubeIssuer) Keyfunc(t *jwtv5.Token) (any, error) {
	if kid, ok := t.Header["kid"].(string); ok && kid != kubeKeyID {
		return nil, errors.New("unknown kid")
	}
	return &k.key.PublicKey, nil
}

// token is a token of ServiceAccount ns/name of the world (its UID is in the token).
func (k *kubeIssuer) token(t *testing.T, w *world, ns, name string, audiences []string, lifetime time.Duration) string {
	return k.boundToken(t, w, ns, name, "", audiences, lifetime)
}

// boundToken is token bound to the pod named pod (none when "").
func (k *kubeIssuer) boundToken(t *testing.T, w *world, ns, name, pod string, audiences []string, lifetime time.Duration) string {
	t.Helper()
	sa, ok := w.objects[objectKey(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})]
	if !ok {
		t.Fatalf("TokenRequest for %s/%s: no such ServiceAccount", ns, name)
	}
	now := time.Now()
	claims := jwtv5.MapClaims{
		"iss": kubeIssuerURL, "sub": oauthv1alpha1.ServiceAccountSubject(ns, name), "aud": audiences,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(lifetime).Unix(), "jti": rand.String(16),
		"kubernetes.io": map[string]any{
			"namespace":      ns,
			"serviceaccount": map[string]any{"name": name, "uid": string(sa.GetUID())},
		},
	}
	if pod != "" {
		claims["kubernetes.io"].(map[string]any)["pod"] = map[string]any{"name": pod, "uid": "pod-uid-" + pod}
	}
	tok := jwtv5.NewWithClaims(jwtv5.SigningMethodRS256, claims)
	tok.Header["kid"] = kubeKeyID
	signed, err := tok.SignedString(k.key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}
