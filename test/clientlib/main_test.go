//go:build integration

// Package clientlib tests pkg/client against the whole operator (controllers, signing
// keys, token server) on a real kube-apiserver + etcd: the credentials are the ones
// the operator writes, mounted the way the kubelet mounts them, and the tokens come
// from the real token server over HTTP. It lives outside pkg/client so that package's
// own tests, like the package, import nothing else of the project.
package clientlib

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/operator"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
)

var (
	env    *testenv.Environment
	k8s    ctrlclient.Client
	kube   kubernetes.Interface
	issuer string
	// logs holds the operator's logs, printed when a test fails.
	logs = &testenv.LogBuffer{}
)

const operatorNamespace = "oauth-system"

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(logs)))
	testenv.Main(func() (int, error) { return run(m) })
}

func run(m *testing.M) (int, error) {
	var err error
	if env, err = testenv.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = env.Stop() }()
	if k8s, err = ctrlclient.New(env.Config, ctrlclient.Options{Scheme: operator.Scheme()}); err != nil {
		return 0, err
	}
	if kube, err = kubernetes.NewForConfig(env.Config); err != nil {
		return 0, err
	}
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		return 0, err
	}
	addr := freeAddr()
	issuer = "http://" + addr
	// Every request comes from 127.0.0.1, and the tests send refused credentials on
	// purpose: a failed-authentication limit that does not interfere.
	cfg, err := config.Parse([]byte(fmt.Sprintf("issuer: %s\ntokenServer: {address: %q}\nrateLimit: {failedAuthPerMinute: 6000, failedAuthBurst: 10000}\nclients: {rotateSecretMinInterval: 1s}\n", issuer, addr)))
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	op, err := operator.New(ctx, env.Config, operator.Options{Config: cfg, Namespace: operatorNamespace, MetricsAddr: "0", ProbeAddr: "0"})
	if err != nil {
		cancel()
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- op.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "operator:", err)
		}
	}()
	return m.Run(), nil
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// dumpLogsOnFailure prints the operator's logs when t fails.
func dumpLogsOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("operator logs:\n%s", logs.String())
		}
	})
}

func create(t *testing.T, obj ctrlclient.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
}

// world creates a namespace and an OAuthAPI that admits it, and returns both names.
func world(t *testing.T) (ns, api string) {
	t.Helper()
	suffix := rand.String(5)
	ns, api = "shop-"+suffix, "orders-"+suffix
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	create(t, &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: api}, Spec: oauthv1alpha1.OAuthAPISpec{
		Scopes:            []oauthv1alpha1.Scope{"orders:read", "orders:write"},
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll},
	}})
	return ns, api
}

// oauthClient creates an OAuthClient for api and waits until it is Ready.
func oauthClient(t *testing.T, ns, name, api string, spec oauthv1alpha1.OAuthClientSpec) *oauthv1alpha1.OAuthClient {
	t.Helper()
	spec.Audiences = []string{api}
	spec.Scopes = []oauthv1alpha1.Scope{"orders:read", "orders:write"}
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	create(t, oc)
	waitFor(t, 30*time.Second, "OAuthClient Ready", func() bool {
		got := &oauthv1alpha1.OAuthClient{}
		if err := k8s.Get(context.Background(), ctrlclient.ObjectKeyFromObject(oc), got); err != nil {
			return false
		}
		return meta.IsStatusConditionTrue(got.Status.Conditions, oauthv1alpha1.ConditionReady)
	})
	return oc
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// secretData reads the client's Secret from the API server once ok accepts it.
func secretData(t *testing.T, ns, name string, ok func(map[string][]byte) bool) map[string]string {
	t.Helper()
	var data map[string]string
	waitFor(t, 30*time.Second, "Secret "+ns+"/"+name, func() bool {
		s := &corev1.Secret{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s); err != nil || !ok(s.Data) {
			return false
		}
		data = map[string]string{}
		for k, v := range s.Data {
			data[k] = string(v)
		}
		return true
	})
	return data
}

func anySecret(map[string][]byte) bool { return true }

// annotate sets one annotation on obj with a merge patch.
func annotate(t *testing.T, obj ctrlclient.Object, k, v string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, k, v)
	if err := k8s.Patch(context.Background(), obj, ctrlclient.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

// serviceAccountToken returns a token of the ServiceAccount ns/name for the token
// server (audience: the issuer), as the kubelet projects it; the ServiceAccount is
// created on first use.
func serviceAccountToken(t *testing.T, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := kube.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{issuer}, ExpirationSeconds: ptr.To(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// newVolume writes data as the kubelet writes a mounted Secret (testenv.Volume).
func newVolume(t testing.TB, data map[string]string) *testenv.Volume {
	return testenv.NewVolume(t, data)
}

// recorder is an http.RoundTripper that sees every token request pkg/client sends:
// how many, their statuses, and which credentials they carried, in order of first use
// (as fingerprints: a client_secret, a ServiceAccount token, or a private_key_jwt kid).
type recorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	// requests counts token requests; refused counts answers other than 200.
	requests, refused int
	creds             []string
	seen              map[string]bool
}

func newRecorder() *recorder {
	return &recorder{base: http.DefaultTransport, seen: map[string]bool{}}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	form, _ := url.ParseQuery(string(body))
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := r.base.RoundTrip(out)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if err != nil || resp.StatusCode != http.StatusOK {
		r.refused++
	}
	if c := credentialOf(form); !r.seen[c] {
		r.seen[c] = true
		r.creds = append(r.creds, c)
	}
	return resp, err
}

func (r *recorder) client() *http.Client {
	return &http.Client{Transport: r, Timeout: 30 * time.Second}
}

func (r *recorder) stats() (requests, refused int, creds []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, r.refused, append([]string(nil), r.creds...)
}

// credentialOf identifies the credential of a token request.
func credentialOf(form url.Values) string {
	if s := form.Get("client_secret"); s != "" {
		return fingerprint(s)
	}
	a := form.Get("client_assertion")
	if tok, _, err := jwt.NewParser().ParseUnverified(a, jwt.MapClaims{}); err == nil {
		if iss, _ := tok.Claims.GetIssuer(); iss == form.Get("client_id") {
			kid, _ := tok.Header["kid"].(string)
			return "kid:" + kid // private_key_jwt: the key
		}
	}
	return fingerprint(a) // a ServiceAccount token
}

func fingerprint(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// fetchLoop calls Token without pause (but 5 ms) until stopped, as a busy workload.
type fetchLoop struct {
	fetches, failures atomic.Int64
	mu                sync.Mutex
	errs              []error
	stop, done        chan struct{}
}

func startFetching(ts oauth2.TokenSource) *fetchLoop {
	l := &fetchLoop{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			if tok, err := ts.Token(); err != nil || tok.AccessToken == "" {
				l.failures.Add(1)
				l.mu.Lock()
				l.errs = append(l.errs, fmt.Errorf("fetch %d: %w", l.fetches.Load(), err))
				l.mu.Unlock()
			}
			l.fetches.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return l
}

// await waits until n more fetches are done.
func (l *fetchLoop) await(t *testing.T, n int64) {
	t.Helper()
	target := l.fetches.Load() + n
	waitFor(t, 60*time.Second, fmt.Sprintf("%d fetches", n), func() bool { return l.fetches.Load() >= target })
}

func (l *fetchLoop) finish() (fetches, failures int64, errs []error) {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fetches.Load(), l.failures.Load(), l.errs
}

// isInvalidClient reports whether err is the token server's invalid_client refusal.
func isInvalidClient(err error) bool {
	var rerr *oauth2.RetrieveError
	return errors.As(err, &rerr) && rerr.ErrorCode == "invalid_client"
}
