//go:build integration

// Package federation tests trusted external issuers with two real control planes on
// loopback: cluster A runs the whole operator (in this process, on a clock the tests
// move), cluster B is another cluster of a fleet whose ServiceAccount tokens A's
// clients present: trusted by discovery, by jwksURI and by a copy of its JWKS, in the
// three request shapes, and refused, each time for its reason.
package federation

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/operator"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/tokenserver"
)

var (
	clusterA *testenv.Environment
	clusterB *testenv.IssuerCluster
	k8s      client.Client // cluster A, as its administrator
	issuer   string        // the operator's issuer URL (and token URL's base)
	tokenURL string
	audit    = &testenv.LogBuffer{}
	// clock is the operator's: the wall clock plus an offset tests move.
	clock = &offsetClock{}
	// jwksProxy counts the reads of cluster B's keys made through it (the jwksURI
	// issuer's), and stops answering when told.
	jwksProxy *countingProxy
)

type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) Now() time.Time                  { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

const apiName = "back-office"

// logs holds what the operator logs; printed when a test fails.
var logs = &testenv.LogBuffer{}

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(logs)))
	testenv.Main(func() (int, error) {
		code, err := run(m)
		if code != 0 && os.Getenv("FEDERATION_TEST_LOGS") != "" {
			fmt.Fprintln(os.Stderr, logs.String())
		}
		return code, err
	})
}

func run(m *testing.M) (int, error) {
	ctx := context.Background()
	var err error
	if clusterB, err = testenv.StartIssuerCluster(ctx); err != nil {
		return 0, err
	}
	defer func() { _ = clusterB.Stop() }() // idempotent: a test stops it early
	if clusterA, err = testenv.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = clusterA.Stop() }()
	if k8s, err = client.New(clusterA.Config, client.Options{Scheme: operator.Scheme()}); err != nil {
		return 0, err
	}
	if jwksProxy, err = newCountingProxy(clusterB); err != nil {
		return 0, err
	}
	defer jwksProxy.Close()
	stop, err := startOperator(ctx)
	if err != nil {
		return 0, err
	}
	defer stop()
	return m.Run(), nil
}

func startOperator(ctx context.Context) (func(), error) {
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "oauth-system"}},
		&oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: apiName}, Spec: oauthv1alpha1.OAuthAPISpec{
			AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll}}},
	} {
		if err := k8s.Create(ctx, obj); err != nil {
			return nil, err
		}
	}
	addr := freeAddr()
	issuer, tokenURL = "http://"+addr, "http://"+addr+tokenserver.TokenPath
	cfg, err := config.Parse([]byte(fmt.Sprintf("issuer: %s\ntokenServer: {address: %q}\nrateLimit: {failedAuthPerMinute: 6000, failedAuthBurst: 10000}\n", issuer, addr)))
	if err != nil {
		return nil, err
	}
	opCtx, cancel := context.WithCancel(ctx)
	op, err := operator.New(opCtx, clusterA.Config, operator.Options{
		Config: cfg, Namespace: "oauth-system", MetricsAddr: "0", ProbeAddr: "0",
		SkipControllerNameValidation: true, Clock: clock, Audit: audit,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- op.Start(opCtx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "operator:", err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for op.TokenServer.Ready(nil) != nil || op.Keys.Load() == nil {
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("the operator is not ready: %v", op.TokenServer.Ready(nil))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return stop, nil
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// countingProxy serves cluster B's JWKS on plain http on loopback (what a jwksURI may
// name), counting the reads.
type countingProxy struct {
	srv   *http.Server
	URL   string
	reads atomic.Int64
	down  atomic.Bool
}

func newCountingProxy(b *testenv.IssuerCluster) (*countingProxy, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(b.CAPEM))
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{URL: "http://" + ln.Addr().String() + "/openid/v1/jwks"}
	p.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.reads.Add(1)
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		resp, err := hc.Get(b.JWKSURI)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer func() { _ = resp.Body.Close() }()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *countingProxy) Close() { _ = p.srv.Close() }

// create creates obj in cluster A and deletes it when the test ends.
func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
}

func namespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
}

// trustB creates an OAuthTrustedIssuer of cluster B, its keys by discovery unless
// mutate says otherwise, and waits until it is Ready (unless mutate breaks it).
func trustB(t *testing.T, name string, mutate func(*oauthv1alpha1.OAuthTrustedIssuerSpec)) {
	t.Helper()
	o := &oauthv1alpha1.OAuthTrustedIssuer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: oauthv1alpha1.OAuthTrustedIssuerSpec{
		Issuer: clusterB.Issuer, CertificateAuthority: clusterB.CAPEM,
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll},
	}}
	if mutate != nil {
		mutate(&o.Spec)
	}
	create(t, o)
}

func issuerCondition(g Gomega, name string) *metav1.Condition {
	o := &oauthv1alpha1.OAuthTrustedIssuer{}
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Name: name}, o)).To(Succeed())
	c := meta.FindStatusCondition(o.Status.Conditions, oauthv1alpha1.ConditionReady)
	g.Expect(c).NotTo(BeNil())
	g.Expect(o.Status.ObservedGeneration).To(Equal(o.Generation))
	return c
}

func waitIssuer(t *testing.T, name string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var c *metav1.Condition
	NewWithT(t).Eventually(func(g Gomega) {
		c = issuerCondition(g, name)
		g.Expect(c.Status).To(Equal(status), c.Message)
		g.Expect(c.Reason).To(Equal(reason), c.Message)
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	return c
}

// federatedClient creates a FederatedToken client of cluster A with one rule.
func federatedClient(t *testing.T, ns, name, issuerName, subject string, claims map[string]string) string {
	t.Helper()
	create(t, &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: oauthv1alpha1.OAuthClientSpec{
		Audiences: []string{apiName},
		Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthFederatedToken,
			Federated: []oauthv1alpha1.FederatedRule{{Issuer: issuerName, Subject: subject, Claims: claims}}},
	}})
	return ns + "." + name
}

func clientCondition(g Gomega, id string) *metav1.Condition {
	ns, name, _ := strings.Cut(id, ".")
	oc := &oauthv1alpha1.OAuthClient{}
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, oc)).To(Succeed())
	c := meta.FindStatusCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady)
	g.Expect(c).NotTo(BeNil())
	g.Expect(c.ObservedGeneration).To(Equal(oc.Generation))
	return c
}

func waitClient(t *testing.T, id string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var c *metav1.Condition
	NewWithT(t).Eventually(func(g Gomega) {
		c = clientCondition(g, id)
		g.Expect(c.Status).To(Equal(status), c.Message)
		g.Expect(c.Reason).To(Equal(reason), c.Message)
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	return c
}

// tokenOfB is a token of cluster B's ServiceAccount ns/name for the audiences
// (default: this operator's issuer), living lifetime (default 1h).
func tokenOfB(t *testing.T, ns, name string, audiences []string, lifetime time.Duration) string {
	t.Helper()
	if audiences == nil {
		audiences = []string{issuer}
	}
	if lifetime == 0 {
		lifetime = time.Hour
	}
	tok, err := clusterB.Token(context.Background(), ns, name, audiences, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tokenOfA is a token of cluster A's own ServiceAccount ns/name, for this operator.
func tokenOfA(t *testing.T, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := k8s.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{issuer}, ExpirationSeconds: ptr.To(int64(3600))}}
	if err := k8s.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

type answer struct {
	status int
	body   map[string]any
	raw    string
}

// request shapes: a client assertion (client_id required), the JWT-bearer grant, the
// token exchange; clientID "" sends none.
var shapes = map[string]func(clientID, token string) url.Values{
	"client-assertion": func(id, tok string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {id},
			"client_assertion_type": {tokenserver.JWTBearerAssertionType}, "client_assertion": {tok}}
	},
	"jwt-bearer": func(id, tok string) url.Values {
		v := url.Values{"grant_type": {tokenserver.GrantJWTBearer}, "assertion": {tok}}
		if id != "" {
			v.Set("client_id", id)
		}
		return v
	},
	"token-exchange": func(id, tok string) url.Values {
		v := url.Values{"grant_type": {tokenserver.GrantTokenExchange}, "subject_token": {tok},
			"subject_token_type": {tokenserver.TokenTypeJWT}}
		if id != "" {
			v.Set("client_id", id)
		}
		return v
	},
}

func send(t *testing.T, form url.Values) answer {
	t.Helper()
	resp, err := http.PostForm(tokenURL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

var auditMu sync.Mutex

// lastRefusal is the reason of the last refusal the operator audited.
func lastRefusal(t *testing.T) string {
	t.Helper()
	auditMu.Lock()
	defer auditMu.Unlock()
	var last string
	sc := bufio.NewScanner(strings.NewReader(audit.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r map[string]any
		if json.Unmarshal(sc.Bytes(), &r) == nil && r["outcome"] == "refused" {
			last, _ = r["reason"].(string)
		}
	}
	return last
}

// accessClaims are the claims of an access token, unverified (the operator's own
// tests verify them).
func accessClaims(t *testing.T, token string) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, c); err != nil {
		t.Fatalf("access token: %v", err)
	}
	return c
}

// TestClusterBTrustedThreeWays: cluster B trusted by discovery, by jwksURI and by a
// copy of its JWKS; a client of each gets an access token by each request shape, the
// grants without client_id too.
func TestClusterBTrustedThreeWays(t *testing.T) {
	ctx := context.Background()
	namespace(t, "shop", nil)
	staticJWKS, err := clusterB.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]func(*oauthv1alpha1.OAuthTrustedIssuerSpec){
		"discovery": nil,
		"jwks-uri": func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.Keys = &oauthv1alpha1.IssuerKeys{JWKSURI: clusterB.JWKSURI}
		},
		"static": func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.Keys = &oauthv1alpha1.IssuerKeys{JWKS: string(staticJWKS)}
		},
	}
	for mode, mutate := range modes {
		t.Run(mode, func(t *testing.T) {
			trustB(t, "b-"+mode, mutate)
			c := waitIssuer(t, "b-"+mode, metav1.ConditionTrue, oauthv1alpha1.ReasonIssuerReady)
			t.Logf("b-%s: %s", mode, c.Message)
			sa := "via-" + mode
			id := federatedClient(t, "shop", sa, "b-"+mode, oauthv1alpha1.ServiceAccountSubject("shop", sa), nil)
			waitClient(t, id, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
			tok := tokenOfB(t, "shop", sa, nil, 0)
			for shape, form := range shapes {
				for _, withID := range []bool{true, false} {
					if shape == "client-assertion" && !withID {
						continue
					}
					cid := ""
					if withID {
						cid = id
					}
					a := send(t, form(cid, tok))
					if a.status != http.StatusOK {
						t.Fatalf("%s (client_id %v): %d %s (reason %s)", shape, withID, a.status, a.raw, lastRefusal(t))
					}
					claims := accessClaims(t, a.body["access_token"].(string))
					if claims["client_id"] != id || claims["aud"] != apiName || claims["iss"] != issuer {
						t.Errorf("%s: access token claims %v", shape, claims)
					}
					if (a.body["issued_token_type"] == tokenserver.TokenTypeAccessToken) != (shape == "token-exchange") {
						t.Errorf("%s: issued_token_type %v", shape, a.body["issued_token_type"])
					}
				}
			}
		})
	}
}

// TestClusterBRefusals: each way a token of cluster B (or another cluster's) fails,
// refused with its reason: 401 invalid_client as a client assertion, 400 invalid_grant
// in the grants.
func TestClusterBRefusals(t *testing.T) {
	ctx := context.Background()
	const label = "federation.test/cluster-b"
	namespace(t, "stores", map[string]string{label: "allowed"})
	namespace(t, "evil", map[string]string{label: "allowed"})
	namespace(t, "outside", nil)
	admitted := oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "allowed"}}}
	trustB(t, "b", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) { s.AllowedNamespaces = admitted })
	trustB(t, "b-short", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
		s.MaxTokenLifetime = &metav1.Duration{Duration: 15 * time.Minute}
	})
	trustB(t, "b-static-rule", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
		s.ClaimValidationRules = []oauthv1alpha1.ClaimValidationRule{{Claim: "sub", RequiredValue: "system:serviceaccount:stores:erp"}}
	})
	trustB(t, "b-cel-rule", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
		s.AllowedNamespaces = admitted
		s.ClaimValidationRules = []oauthv1alpha1.ClaimValidationRule{{
			Expression: `claims.sub.startsWith("system:serviceaccount:" + client.namespace + ":")`,
			Message:    "a client may only name ServiceAccounts of its own namespace",
		}}
	})
	trustB(t, "b-broken", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
		s.ClaimValidationRules = []oauthv1alpha1.ClaimValidationRule{{Expression: `claims.sub.startsWith(`}}
	})
	for _, name := range []string{"b", "b-short", "b-static-rule", "b-cel-rule"} {
		waitIssuer(t, name, metav1.ConditionTrue, oauthv1alpha1.ReasonIssuerReady)
	}
	// A CEL expression that does not compile: the issuer is not Ready, naming the rule.
	broken := waitIssuer(t, "b-broken", metav1.ConditionFalse, oauthv1alpha1.ReasonInvalidRule)
	if !strings.HasPrefix(broken.Message, "claimValidationRules[0]: does not compile") {
		t.Errorf("b-broken: %s", broken.Message)
	}

	erpSub := oauthv1alpha1.ServiceAccountSubject("stores", "erp")
	erp := federatedClient(t, "stores", "erp", "b", erpSub, nil)
	outside := federatedClient(t, "outside", "erp", "b", erpSub, nil)
	short := federatedClient(t, "stores", "short", "b-short", erpSub, nil)
	otherSub := oauthv1alpha1.ServiceAccountSubject("stores", "other")
	staticRule := federatedClient(t, "stores", "static-rule", "b-static-rule", otherSub, nil)
	tenant := federatedClient(t, "evil", "copycat", "b-cel-rule", erpSub, nil)
	brokenClient := federatedClient(t, "stores", "broken", "b-broken", erpSub, nil)
	twinSub := oauthv1alpha1.ServiceAccountSubject("stores", "twin")
	federatedClient(t, "stores", "twin-1", "b", twinSub, nil)
	federatedClient(t, "evil", "twin-2", "b", twinSub, nil)
	waitClient(t, erp, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	c := waitClient(t, outside, metav1.ConditionFalse, oauthv1alpha1.ReasonFederatedRuleNotAllowed)
	if !strings.Contains(c.Message, `does not admit namespace "outside"`) {
		t.Errorf("outside: %s", c.Message)
	}
	waitClient(t, tenant, metav1.ConditionTrue, oauthv1alpha1.ReasonReady) // its rule is refused per token

	good := tokenOfB(t, "stores", "erp", nil, 0)
	for shape, form := range shapes {
		if a := send(t, form(erp, good)); a.status != http.StatusOK {
			t.Fatalf("%s: the right token: %d %s (%s)", shape, a.status, a.raw, lastRefusal(t))
		}
	}
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"stores"`, `"storex"`, 1))) + "." + parts[2]
	kid := func() string {
		tok, _, _ := jwt.NewParser().ParseUnverified(good, jwt.MapClaims{})
		return tok.Header["kid"].(string)
	}()
	resign := func(method jwt.SigningMethod, key any) string {
		tok := jwt.NewWithClaims(method, accessClaims(t, good))
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name, clientID, token string
		ahead                 time.Duration
		reason                tokenserver.Reason
	}{
		{"cluster A's own token for the right subject", erp, tokenOfA(t, "stores", "erp"), 0, tokenserver.ReasonAssertionIssuer},
		{"right issuer, other subject", erp, tokenOfB(t, "stores", "other", nil, 0), 0, tokenserver.ReasonAssertionSubject},
		{"a namespace the issuer does not admit", outside, good, 0, tokenserver.ReasonIssuerNamespaceNotAdmitted},
		{"a static claim rule", staticRule, tokenOfB(t, "stores", "other", nil, 0), 0, tokenserver.ReasonClaimRuleFailed},
		{"a CEL claim rule: another namespace's subject", tenant, good, 0, tokenserver.ReasonClaimRuleFailed},
		{"over maxTokenLifetime", short, good, 0, tokenserver.ReasonAssertionLifetime},
		{"wrong audience", erp, tokenOfB(t, "stores", "erp", []string{"https://elsewhere.example"}, 0), 0, tokenserver.ReasonAssertionAudience},
		{"an audience of another party too", erp, tokenOfB(t, "stores", "erp", []string{issuer, "https://elsewhere.example"}, 0), 0, tokenserver.ReasonAssertionAudience},
		{"expired", erp, good, 2 * time.Hour, tokenserver.ReasonAssertionExpired},
		{"tampered", erp, tampered, 0, tokenserver.ReasonAssertionSignature},
		{"HS256 under the real kid", erp, resign(jwt.SigningMethodHS256, []byte("the JWKS is public")), 0, tokenserver.ReasonAssertionAlgorithm},
		{"alg none", erp, resign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType), 0, tokenserver.ReasonAssertionAlgorithm},
		{"an issuer whose rule does not compile", brokenClient, good, 0, tokenserver.ReasonIssuerNotTrusted},
	}
	for _, tc := range cases {
		for shape, form := range shapes {
			t.Run(tc.name+"/"+shape, func(t *testing.T) {
				clock.offset.Store(int64(tc.ahead))
				defer clock.offset.Store(0)
				a := send(t, form(tc.clientID, tc.token))
				wantStatus, wantError := http.StatusBadRequest, "invalid_grant"
				if shape == "client-assertion" {
					wantStatus, wantError = http.StatusUnauthorized, "invalid_client"
				}
				if a.status != wantStatus || a.body["error"] != wantError {
					t.Errorf("%d %s, want %d %s", a.status, a.raw, wantStatus, wantError)
				}
				if got := lastRefusal(t); got != string(tc.reason) {
					t.Errorf("reason %s, want %s", got, tc.reason)
				}
			})
		}
	}

	// A subject two clients' rules match, no client_id: 400 invalid_request.
	twin := tokenOfB(t, "stores", "twin", nil, 0)
	for _, shape := range []string{"jwt-bearer", "token-exchange"} {
		a := send(t, shapes[shape]("", twin))
		if a.status != http.StatusBadRequest || a.body["error"] != "invalid_request" || lastRefusal(t) != string(tokenserver.ReasonClientIDRequired) {
			t.Errorf("%s, two matching clients: %d %s (%s)", shape, a.status, a.raw, lastRefusal(t))
		}
		if a := send(t, shapes[shape]("stores.twin-1", twin)); a.status != http.StatusOK {
			t.Errorf("%s with client_id: %d %s", shape, a.status, a.raw)
		}
	}

	// The issuer deleted: refused at once, the client not Ready.
	if err := k8s.Delete(ctx, &oauthv1alpha1.OAuthTrustedIssuer{ObjectMeta: metav1.ObjectMeta{Name: "b"}}); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() string {
		send(t, shapes["token-exchange"](erp, good))
		return lastRefusal(t)
	}, 10*time.Second, 20*time.Millisecond).Should(Equal(string(tokenserver.ReasonIssuerNotTrusted)))
	c = waitClient(t, erp, metav1.ConditionFalse, oauthv1alpha1.ReasonFederatedRuleNotAllowed)
	if !strings.Contains(c.Message, `OAuthTrustedIssuer "b" does not exist`) {
		t.Errorf("after the issuer's deletion: %s", c.Message)
	}
}

// TestClusterBKeys: 50 tokens naming made-up key ids cost cluster B one JWKS read
// (at most one per refresh interval, measured); then, with cluster B stopped, tokens it issued before keep
// being accepted with the cached keys, by every trust mode. Last: it stops cluster B.
func TestClusterBKeys(t *testing.T) {
	ctx := context.Background()
	namespace(t, "keys", nil)
	staticJWKS, err := clusterB.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]func(*oauthv1alpha1.OAuthTrustedIssuerSpec){
		"discovery": nil,
		"proxied": func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.Keys = &oauthv1alpha1.IssuerKeys{JWKSURI: jwksProxy.URL}
		},
		"static": func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.Keys = &oauthv1alpha1.IssuerKeys{JWKS: string(staticJWKS)}
		},
	}
	ids, tokens := map[string]string{}, map[string]string{}
	for mode, mutate := range modes {
		trustB(t, "keys-"+mode, mutate)
		waitIssuer(t, "keys-"+mode, metav1.ConditionTrue, oauthv1alpha1.ReasonIssuerReady)
		ids[mode] = federatedClient(t, "keys", mode, "keys-"+mode, oauthv1alpha1.ServiceAccountSubject("keys", mode), nil)
		waitClient(t, ids[mode], metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
		tokens[mode] = tokenOfB(t, "keys", mode, nil, 0)
		if a := send(t, shapes["token-exchange"](ids[mode], tokens[mode])); a.status != http.StatusOK {
			t.Fatalf("%s: %d %s (%s)", mode, a.status, a.raw, lastRefusal(t))
		}
	}

	// 50 made-up key ids, through the proxied issuer whose reads are counted.
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	claims := accessClaims(t, tokens["proxied"])
	// Past the refresh interval (10 s) since the keys were read: the first unknown key
	// id may read them again, no other.
	clock.offset.Store(int64(11 * time.Second))
	defer clock.offset.Store(0)
	before := jwksProxy.reads.Load()
	start := time.Now()
	for i := range 50 {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		tok.Header["kid"] = fmt.Sprintf("made-up-%d", i)
		s, err := tok.SignedString(forger)
		if err != nil {
			t.Fatal(err)
		}
		if a := send(t, shapes["token-exchange"](ids["proxied"], s)); a.status != http.StatusBadRequest {
			t.Fatalf("a made-up key id: %d %s", a.status, a.raw)
		}
	}
	elapsed := time.Since(start)
	reads := jwksProxy.reads.Load() - before
	t.Logf("50 made-up key ids in %s: %d read(s) of cluster B's JWKS", elapsed.Round(time.Millisecond), reads)
	// One read per refresh interval at most: the 50 took far less than one.
	if reads != 1 {
		t.Errorf("50 made-up key ids caused %d JWKS reads, want 1 (the first, the refresh interval having passed)", reads)
	}
	if a := send(t, shapes["token-exchange"](ids["proxied"], tokens["proxied"])); a.status != http.StatusOK {
		t.Fatalf("the real key after the made-up ones: %d %s", a.status, a.raw)
	}

	// Cluster B stops: the tokens it issued keep getting access tokens with the cached
	// keys, by every mode.
	if err := clusterB.Stop(); err != nil {
		t.Fatal(err)
	}
	jwksProxy.down.Store(true)
	for mode := range modes {
		for shape, form := range shapes {
			if a := send(t, form(ids[mode], tokens[mode])); a.status != http.StatusOK {
				t.Errorf("%s, %s, cluster B stopped: %d %s (%s)", mode, shape, a.status, a.raw, lastRefusal(t))
			}
		}
	}
}
