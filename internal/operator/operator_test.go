//go:build integration

package operator_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/operator"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
)

// These tests run the whole operator (controllers, signing keys, token server) on a
// real kube-apiserver + etcd and talk to it over HTTP, as clients and APIs do.

var (
	env         *testenv.Environment
	k8s         client.Client
	issuer      string
	probeAddr   string
	metricsAddr string
	stopOp      func()
	// theOperator is the operator the tests run.
	theOperator *operator.Operator
)

const operatorNamespace = "oauth-system"

// logs captures everything the operator logs, at debug level, to scan it for secrets.
var logs = &testenv.LogBuffer{}

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(logs), zap.Level(zapcore.DebugLevel)))
	testenv.Main(func() (int, error) { return run(m) })
}

func run(m *testing.M) (int, error) {
	var err error
	if env, err = testenv.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = env.Stop() }()
	if k8s, err = client.New(env.Config, client.Options{Scheme: operator.Scheme()}); err != nil {
		return 0, err
	}
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		return 0, err
	}
	tokenAddr, probe := freeAddr(), freeAddr()
	issuer, probeAddr, metricsAddr = "http://"+tokenAddr, probe, freeAddr()
	stop, err := startOperator(tokenAddr, probe)
	if err != nil {
		return 0, err
	}
	stopOp = stop
	defer func() { stopOp() }()
	return m.Run(), nil
}

func startOperator(tokenAddr, probe string) (func(), error) {
	// Every test request comes from 127.0.0.1: a failed-authentication limit high
	// enough not to interfere (the limiter is tested in internal/tokenserver).
	cfg, err := config.Parse([]byte(fmt.Sprintf("issuer: http://%s\ntokenServer: {address: %q}\nrateLimit: {failedAuthPerMinute: 6000, failedAuthBurst: 10000}\n", tokenAddr, tokenAddr)))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	op, err := operator.New(ctx, env.Config, operator.Options{
		Config: cfg, Namespace: operatorNamespace, MetricsAddr: metricsAddr, ProbeAddr: probe,
		SkipControllerNameValidation: true,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	theOperator = op
	done := make(chan error, 1)
	go func() { done <- op.Start(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "operator:", err)
		}
	}, nil
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

func namespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "shop-", Labels: labels}}
	NewWithT(t).Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	NewWithT(t).Expect(k8s.Create(context.Background(), obj)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
}

// credentials waits for the operator to write the client's Secret and returns it.
func credentials(t *testing.T, ns, name string) (clientID, clientSecret, tokenURL string) {
	t.Helper()
	s := &corev1.Secret{}
	NewWithT(t).Eventually(func() error {
		return k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s)
	}, 20*time.Second, 100*time.Millisecond).Should(Succeed())
	return string(s.Data["client_id"]), string(s.Data["client_secret"]), string(s.Data["token_url"])
}

type tokenAnswer struct {
	status  int
	header  http.Header
	Token   string `json:"access_token"`
	Type    string `json:"token_type"`
	Expires int64  `json:"expires_in"`
	Error   string `json:"error"`
}

func requestToken(t *testing.T, tokenURL, contentType, body string, header ...string) tokenAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] != "" {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", tokenURL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	a := tokenAnswer{status: resp.StatusCode, header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("decode token answer: %v", err)
	}
	return a
}

// verifyWithJWKS checks the token with go-jose against the JWKS the server publishes
// (discovered through its RFC 8414 metadata), independently of the project's code.
func verifyWithJWKS(t *testing.T, token, wantAud string) (map[string]any, jose.Header) {
	t.Helper()
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, issuer+"/.well-known/oauth-authorization-server", &meta)
	if meta.Issuer != issuer {
		t.Fatalf("metadata issuer %q, want %q", meta.Issuer, issuer)
	}
	var set jose.JSONWebKeySet
	getJSON(t, meta.JWKSURI, &set)
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	var c map[string]any
	var std jwt.Claims
	if err := parsed.Claims(set, &c, &std); err != nil {
		t.Fatalf("token does not verify against the served JWKS: %v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: issuer, AnyAudience: jwt.Audience{wantAud}, Time: time.Now()}, 0); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return c, parsed.Headers[0]
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func TestYAMLToVerifiedToken(t *testing.T) {
	g := NewWithT(t)
	label := "oauth.operator.dev/back-office-" + rand.String(5)
	ns := namespace(t, map[string]string{label: "allowed"})
	api := "back-office-" + rand.String(5)
	create(t, &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: api}, Spec: oauthv1alpha1.OAuthAPISpec{
		Scopes: []oauthv1alpha1.Scope{"users:read", "users:write"},
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "allowed"}}},
	}})
	create(t, &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erp-sync"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}, Scopes: []oauthv1alpha1.Scope{"users:read"}}})
	id, secret, tokenURL := credentials(t, ns, "erp-sync")
	g.Expect(id).To(Equal(ns + ".erp-sync"))
	g.Expect(tokenURL).To(Equal(issuer + "/oauth2-token"))

	// Exactly what users send today.
	body := fmt.Sprintf(`{"grant_type": "client_credentials", "client_id": %q, "client_secret": %q}`, id, secret)
	// The token server learns of the new client from its informers a moment after the
	// Secret exists.
	g.Eventually(func() int { return requestToken(t, tokenURL, "application/json", body).status }, 10*time.Second, 20*time.Millisecond).
		Should(Equal(http.StatusOK))
	answers := map[string]tokenAnswer{
		"json":  requestToken(t, tokenURL, "application/json", body),
		"form":  requestToken(t, tokenURL, "application/x-www-form-urlencoded", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}.Encode()),
		"basic": requestToken(t, tokenURL, "application/x-www-form-urlencoded", "grant_type=client_credentials", "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))),
	}
	for name, a := range answers {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(a.status).To(Equal(http.StatusOK), a.Error)
			g.Expect(a.header.Get("Cache-Control")).To(Equal("no-store"))
			g.Expect(a.Type).To(Equal("Bearer"))
			g.Expect(a.Expires).To(BeEquivalentTo(3600))
			c, hdr := verifyWithJWKS(t, a.Token, api)
			g.Expect(hdr.ExtraHeaders[jose.HeaderType]).To(Equal("at+jwt"))
			g.Expect(c["iss"]).To(Equal(issuer))
			g.Expect(c["aud"]).To(Equal(api))
			g.Expect(c["sub"]).To(Equal(id))
			g.Expect(c["client_id"]).To(Equal(id))
			g.Expect(c["scope"]).To(Equal("users:read"))
			g.Expect(c["exp"].(float64) - c["iat"].(float64)).To(BeEquivalentTo(3600))
		})
	}
}

func TestTenancy(t *testing.T) {
	g := NewWithT(t)
	label := "oauth.operator.dev/payroll-" + rand.String(5)
	api := "payroll-" + rand.String(5)
	create(t, &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: api}, Spec: oauthv1alpha1.OAuthAPISpec{
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "allowed"}}},
	}})
	ns := namespace(t, nil)
	create(t, &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenant"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}}})
	id, secret, tokenURL := credentials(t, ns, "tenant")
	body := fmt.Sprintf(`{"grant_type": "client_credentials", "client_id": %q, "client_secret": %q}`, id, secret)
	status := func() int { return requestToken(t, tokenURL, "application/json", body).status }

	// Not admitted: authenticated (once the token server has indexed the new client),
	// but no token for that API.
	g.Eventually(status, 10*time.Second, 20*time.Millisecond).ShouldNot(Equal(http.StatusUnauthorized))
	a := requestToken(t, tokenURL, "application/json", body)
	g.Expect(a.status).To(Equal(http.StatusBadRequest))
	g.Expect(a.Error).To(Equal("invalid_target"))

	setLabel := func(value string) {
		nsObj := &corev1.Namespace{}
		g.Expect(k8s.Get(context.Background(), types.NamespacedName{Name: ns}, nsObj)).To(Succeed())
		patch := client.MergeFrom(nsObj.DeepCopy())
		if value == "" {
			delete(nsObj.Labels, label)
		} else {
			nsObj.Labels[label] = value
		}
		g.Expect(k8s.Patch(context.Background(), nsObj, patch)).To(Succeed())
	}
	setLabel("allowed")
	g.Eventually(status, 5*time.Second, 50*time.Millisecond).Should(Equal(http.StatusOK), "labelling the namespace admits the client within seconds")
	setLabel("")
	g.Eventually(status, 5*time.Second, 50*time.Millisecond).Should(Equal(http.StatusBadRequest), "removing the label withdraws access within seconds")

	// A tenant elsewhere forges a Secret that claims this client_id, with the label the
	// operator's cache selects. It gains nothing.
	attacker := namespace(t, nil)
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: attacker, Name: "tenant", Labels: map[string]string{
			oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue, oauthv1alpha1.ClientLabel: "tenant"}},
		StringData: map[string]string{"client_id": id, "client_secret": "forged-forged-forged-forged-forged-forged-0"},
	})
	setLabel("allowed")
	g.Eventually(status, 5*time.Second, 50*time.Millisecond).Should(Equal(http.StatusOK))
	forged := requestToken(t, tokenURL, "application/json",
		fmt.Sprintf(`{"grant_type": "client_credentials", "client_id": %q, "client_secret": "forged-forged-forged-forged-forged-forged-0"}`, id))
	g.Expect(forged.status).To(Equal(http.StatusUnauthorized))
	g.Expect(forged.Error).To(Equal("invalid_client"))
	// Nor does a client_id naming the attacker's namespace with the forged Secret's name.
	forged = requestToken(t, tokenURL, "application/json",
		fmt.Sprintf(`{"grant_type": "client_credentials", "client_id": %q, "client_secret": "forged-forged-forged-forged-forged-forged-0"}`, attacker+".tenant"))
	g.Expect(forged.status).To(Equal(http.StatusUnauthorized))
}

func TestReadinessAndSigningKeySecret(t *testing.T) {
	g := NewWithT(t)
	g.Eventually(func() (int, error) {
		resp, err := http.Get("http://" + probeAddr + "/readyz")
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}, 30*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK))

	keys := &corev1.Secret{}
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: operatorNamespace, Name: "oauth-client-operator-signing-keys"}, keys)).To(Succeed())
	g.Expect(keys.Labels).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "oauth-client-operator"))
	g.Expect(keys.Data).To(HaveKey("keys.json"))
	var set jose.JSONWebKeySet
	getJSON(t, issuer+"/.well-known/jwks.json", &set)
	g.Expect(set.Keys).To(HaveLen(1))
	kid := set.Keys[0].KeyID
	g.Expect(string(keys.Data["keys.json"])).To(ContainSubstring(kid))

	// A restarted operator signs with the same key: the Secret is the state.
	stopOp()
	addr := strings.TrimPrefix(issuer, "http://")
	stop, err := startOperator(addr, probeAddr)
	g.Expect(err).NotTo(HaveOccurred())
	stopOp = stop
	g.Eventually(func() (string, error) {
		resp, err := http.Get(issuer + "/.well-known/jwks.json")
		if err != nil {
			return "", err
		}
		defer func() { _ = resp.Body.Close() }()
		var s jose.JSONWebKeySet
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || len(s.Keys) != 1 {
			return "", fmt.Errorf("jwks: %v", err)
		}
		return s.Keys[0].KeyID, nil
	}, 20*time.Second, 100*time.Millisecond).Should(Equal(kid))
}

// metric returns the value of one sample line of the operator's metrics endpoint.
func metric(t *testing.T, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("metric %s: %v", sample, err)
			}
			return f
		}
	}
	return 0
}

func TestMetricsFollowTokenRequests(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t, nil)
	api := "metrics-" + rand.String(5)
	create(t, &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: api}, Spec: oauthv1alpha1.OAuthAPISpec{
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll}}})
	create(t, &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "counted"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}}})
	id, secret, tokenURL := credentials(t, ns, "counted")
	issued := fmt.Sprintf(`oauth_tokens_issued_total{audience=%q}`, api)
	failed := `oauth_token_requests_failed_total{error="invalid_client",reason="wrong_secret"}`
	g.Eventually(func() int {
		return requestToken(t, tokenURL, "application/json", fmt.Sprintf(`{"grant_type":"client_credentials","client_id":%q,"client_secret":%q}`, id, secret)).status
	}, 10*time.Second, 50*time.Millisecond).Should(Equal(http.StatusOK))
	issuedBefore, failedBefore := metric(t, issued), metric(t, failed)

	for range 3 {
		g.Expect(requestToken(t, tokenURL, "application/json", fmt.Sprintf(`{"grant_type":"client_credentials","client_id":%q,"client_secret":%q}`, id, secret)).status).To(Equal(http.StatusOK))
	}
	for range 2 {
		g.Expect(requestToken(t, tokenURL, "application/json", fmt.Sprintf(`{"grant_type":"client_credentials","client_id":%q,"client_secret":"wrong"}`, id)).status).To(Equal(http.StatusUnauthorized))
	}
	g.Expect(metric(t, issued)).To(Equal(issuedBefore + 3))
	g.Expect(metric(t, failed)).To(Equal(failedBefore + 2))
	g.Expect(metric(t, "oauth_clients")).To(BeNumerically(">=", 1))
	g.Expect(metric(t, `oauth_token_request_duration_seconds_count{result="ok"}`)).To(BeNumerically(">=", 4))
}

// TestLogsNeverHoldSecretsOrTokens floods the token server (loopback, bounded) with
// bad and good requests, then scans everything the operator logged for the client
// secret, the tokens it issued and the Authorization headers it was sent.
func TestLogsNeverHoldSecretsOrTokens(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t, nil)
	api := "quiet-" + rand.String(5)
	create(t, &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: api}, Spec: oauthv1alpha1.OAuthAPISpec{
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll}}})
	create(t, &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "quiet"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}}})
	id, secret, tokenURL := credentials(t, ns, "quiet")
	good := fmt.Sprintf(`{"grant_type":"client_credentials","client_id":%q,"client_secret":%q}`, id, secret)
	g.Eventually(func() int { return requestToken(t, tokenURL, "application/json", good).status }, 10*time.Second, 20*time.Millisecond).
		Should(Equal(http.StatusOK))

	basicAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	var tokens []string
	bad := []struct {
		ct, body, auth string
		status         int
	}{
		{"application/json", fmt.Sprintf(`{"grant_type":"client_credentials","client_id":%q,"client_secret":"%s-x"}`, id, secret), "", 401},
		{"application/json", fmt.Sprintf(`{"grant_type":"password","client_id":%q,"client_secret":%q}`, id, secret), "", 400},
		{"application/json", fmt.Sprintf(`{"grant_type":"client_credentials","client_id":%q,"client_secret":%q,"scope":"nope"}`, id, secret), "", 400},
		{"application/json", fmt.Sprintf(`{"client_secret":%q`, secret), "", 400},
		{"application/x-www-form-urlencoded", "grant_type=client_credentials&client_secret=" + secret, basicAuth, 400},
		{"text/plain", secret, basicAuth, 400},
		{"application/x-www-form-urlencoded", "grant_type=client_credentials", "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret+"x")), 401},
	}
	for i := range 60 {
		for _, b := range bad {
			a := requestToken(t, tokenURL, b.ct, b.body, "Authorization", b.auth)
			g.Expect(a.status).To(Equal(b.status), b.body)
		}
		if i%10 == 0 {
			tokens = append(tokens, requestToken(t, tokenURL, "application/json", good).Token)
		}
	}
	// Let the operator log whatever it would about this client (reconciles, events).
	time.Sleep(500 * time.Millisecond)
	out := logs.String()
	g.Expect(out).To(ContainSubstring("token server listening"), "the scan must see the operator's logs")
	g.Expect(out).NotTo(ContainSubstring(secret))
	g.Expect(out).NotTo(ContainSubstring(strings.TrimPrefix(basicAuth, "Basic ")))
	for _, tok := range tokens {
		g.Expect(tok).NotTo(BeEmpty())
		g.Expect(out).NotTo(ContainSubstring(tok))
		g.Expect(out).NotTo(ContainSubstring(strings.Split(tok, ".")[2]), "no token signature")
	}
}
