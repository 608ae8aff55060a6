//go:build integration

package workloadidentity_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/golang-jwt/jwt/v5"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/operator"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/workloadidentity"
)

// These tests own their control plane: the last one stops the API server.

func startControlPlane(t *testing.T) *testenv.Environment {
	t.Helper()
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	return env
}

func serviceAccountToken(t *testing.T, cfg *rest.Config, ns, name string, audiences ...string) string {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	if _, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: ptr.To(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// TestIssuerKeysAndUnknownKeyIDs: the discovered issuer is the one the API server puts
// in its tokens; its keys verify them; made-up key ids cost the API server at most one
// read per interval and never block the caller.
func TestIssuerKeysAndUnknownKeyIDs(t *testing.T) {
	env := startControlPlane(t)
	var jwksReads atomic.Int64
	cfg := rest.CopyConfig(env.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Path != workloadidentity.JWKSPath {
				return rt.RoundTrip(r)
			}
			jwksReads.Add(1)
			resp, err := rt.RoundTrip(r)
			if err == nil {
				t.Logf("%s: Cache-Control %q", workloadidentity.JWKSPath, resp.Header.Get("Cache-Control"))
			}
			return resp, err
		})
	}
	iss, err := workloadidentity.New(workloadidentity.Options{Config: cfg, Log: logr.Discard(), UnknownKeyInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Keyfunc(&jwt.Token{Header: map[string]any{"alg": "RS256"}}); err == nil {
		t.Fatal("keys before discovery")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = iss.Start(ctx) }()
	select {
	case <-iss.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("issuer not discovered")
	}

	token := serviceAccountToken(t, env.Config, "default", "wi", "https://issuer.test")
	claims := &jwt.RegisteredClaims{}
	if _, err := jwt.NewParser(jwt.WithIssuer(iss.Issuer())).ParseWithClaims(token, claims, iss.Keyfunc); err != nil {
		t.Fatalf("verify a ServiceAccount token with the discovered keys: %v", err)
	}
	if claims.Subject != "system:serviceaccount:default:wi" {
		t.Errorf("sub = %q", claims.Subject)
	}

	before := jwksReads.Load()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		forged := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		forged.Header["kid"] = fmt.Sprintf("made-up-%d", i)
		s, err := forged.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jwt.NewParser().Parse(s, iss.Keyfunc); err == nil {
			t.Fatal("a made-up key id verified")
		}
	}
	if reads := jwksReads.Load() - before; reads > 1 {
		t.Errorf("50 unknown key ids caused %d reads of the keys, want at most 1", reads)
	}
	t.Logf("50 unknown key ids: %d read(s) of %s", jwksReads.Load()-before, workloadidentity.JWKSPath)
}

// TestServiceAccountClientThroughAPIServerOutage: the whole operator issues tokens to
// a ServiceAccountToken client with cached issuer keys while the API server is stopped.
func TestServiceAccountClientThroughAPIServerOutage(t *testing.T) {
	env := startControlPlane(t)
	ctx := context.Background()
	k8s, err := client.New(env.Config, client.Options{Scheme: operator.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "oauth-system"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: "back-office"}, Spec: oauthv1alpha1.OAuthAPISpec{
			AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll}}},
		&oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "erp-sync"}, Spec: oauthv1alpha1.OAuthClientSpec{
			Audiences: []string{"back-office"},
			Authentication: &oauthv1alpha1.ClientAuthentication{
				Method: oauthv1alpha1.AuthServiceAccountToken, ServiceAccountName: "erp-sync"}}},
	} {
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	issuer := "http://" + addr
	cfg, err := config.Parse([]byte(fmt.Sprintf("issuer: %s\ntokenServer: {address: %q, apiServerGrace: 10m}\n", issuer, addr)))
	if err != nil {
		t.Fatal(err)
	}
	op, err := operator.New(ctx, env.Config, operator.Options{Config: cfg, Namespace: "oauth-system", MetricsAddr: "0", ProbeAddr: "0"})
	if err != nil {
		t.Fatal(err)
	}
	opCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- op.Start(opCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("operator stopped with error: %v", err)
		}
	}()

	saToken := serviceAccountToken(t, env.Config, "shop", "erp-sync", issuer)
	get := func() (int, string) {
		body := url.Values{
			"grant_type": {"client_credentials"}, "client_id": {"shop.erp-sync"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {saToken},
		}.Encode()
		resp, err := http.Post(issuer+"/oauth2-token", "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			return 0, err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&tok)
		return resp.StatusCode, tok.AccessToken
	}
	deadline := time.Now().Add(30 * time.Second)
	for code, _ := get(); code != http.StatusOK; code, _ = get() {
		if time.Now().After(deadline) {
			t.Fatalf("no token before the outage: last status %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// kube-apiserver drains its watches for longer than envtest waits; envtest then
	// kills it, which is an outage all the same.
	if err := env.ControlPlane.APIServer.Stop(); err != nil && !strings.Contains(err.Error(), "timeout waiting for process") {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(env.Config.Host, "https://")
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		_ = c.Close()
		t.Fatalf("kube-apiserver still accepts connections at %s", host)
	}
	for i := range 20 {
		if code, tok := get(); code != http.StatusOK || tok == "" {
			t.Fatalf("request %d with the API server stopped: status %d", i, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}
