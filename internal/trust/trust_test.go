package trust

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-logr/logr"
	"github.com/golang-jwt/jwt/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	clocktesting "k8s.io/utils/clock/testing"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/pkg/verifier"
)

// fakeIssuer is an OIDC issuer on loopback: a discovery document and a JWKS of its
// current keys, which a test rotates; it counts the reads of each.
type fakeIssuer struct {
	srv            *httptest.Server
	mu             sync.Mutex
	keys           map[string]*ecdsa.PrivateKey
	discoveryReads atomic.Int64
	jwksReads      atomic.Int64
	// jwksURI, when set, is the jwks_uri the discovery document names.
	jwksURI string
	// redirectJWKS, when set, answers the JWKS with a redirect to it.
	redirectJWKS string
	// issuer, when set, is the issuer its discovery document names (else its URL).
	issuer string
}

func newFakeIssuer(t testing.TB, tls bool) *fakeIssuer {
	return newFakeIssuerWith(t, tls, nil)
}

// newFakeIssuerWith is newFakeIssuer whose server reports its connections' states.
func newFakeIssuerWith(t testing.TB, tls bool, connState func(net.Conn, http.ConnState)) *fakeIssuer {
	t.Helper()
	f := &fakeIssuer{keys: map[string]*ecdsa.PrivateKey{}}
	f.rotate(t, "key-1")
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Config.ConnState = connState
	if tls {
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIssuer) url() string { return f.srv.URL }

// caPEM is the PEM of the TLS server's certificate (self-signed: its own authority).
func (f *fakeIssuer) caPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}))
}

func (f *fakeIssuer) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		f.discoveryReads.Add(1)
		jwks := f.jwksURI
		if jwks == "" {
			jwks = f.url() + "/jwks"
		}
		iss := f.issuer
		if iss == "" {
			iss = f.url()
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": jwks})
	case "/jwks":
		f.jwksReads.Add(1)
		if f.redirectJWKS != "" {
			http.Redirect(w, r, f.redirectJWKS, http.StatusFound)
			return
		}
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(f.jwks())
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeIssuer) jwks() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var set jose.JSONWebKeySet
	for kid, k := range f.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
	}
	b, _ := json.Marshal(set)
	return b
}

// rotate replaces the keys by a new one named kid.
func (f *fakeIssuer) rotate(t testing.TB, kid string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = map[string]*ecdsa.PrivateKey{kid: k}
}

// token signs claims with the key kid (a made-up key when the issuer has none of
// that id).
func (f *fakeIssuer) token(t testing.TB, kid string, claims jwt.MapClaims) string {
	t.Helper()
	f.mu.Lock()
	k := f.keys[kid]
	f.mu.Unlock()
	if k == nil {
		var err error
		if k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func issuerObject(name, issuer string, mutate func(*oauthv1alpha1.OAuthTrustedIssuerSpec)) *oauthv1alpha1.OAuthTrustedIssuer {
	o := &oauthv1alpha1.OAuthTrustedIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: "uid-" + "1", Generation: 1},
		Spec: oauthv1alpha1.OAuthTrustedIssuerSpec{
			Issuer:            issuer,
			AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll},
		},
	}
	if mutate != nil {
		mutate(&o.Spec)
	}
	return o
}

func newRegistry(t testing.TB, o Options) *Registry {
	o.Log = logr.Discard()
	r := NewRegistry(o)
	t.Cleanup(r.Close)
	return r
}

func parse(i *Issuer, token string) error {
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256", "RS256"}), jwt.WithIssuer(i.URL)).Parse(token, i.Keyfunc)
	return err
}

// TestKeySources: the three ways to name an issuer's keys each verify its tokens:
// discovery over https with the issuer's own certificate authority, a jwksURI, and
// the JWKS copied in.
func TestKeySources(t *testing.T) {
	t.Parallel()
	f := newFakeIssuer(t, true)
	claims := jwt.MapClaims{"iss": f.url(), "sub": "a", "exp": time.Now().Add(time.Hour).Unix()}
	cases := map[string]func(*oauthv1alpha1.OAuthTrustedIssuerSpec){
		"discovery": func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) { s.CertificateAuthority = f.caPEM() },
		"jwksURI": func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.CertificateAuthority = f.caPEM()
			s.Keys = &oauthv1alpha1.IssuerKeys{JWKSURI: f.url() + "/jwks"}
		},
		"discoveryURL": func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.CertificateAuthority = f.caPEM()
			s.Keys = &oauthv1alpha1.IssuerKeys{DiscoveryURL: f.url() + "/.well-known/openid-configuration"}
		},
		"static jwks": func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.Keys = &oauthv1alpha1.IssuerKeys{JWKS: string(f.jwks())}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newRegistry(t, Options{})
			i := r.Ensure(issuerObject("b", f.url(), mutate))
			if p := i.Problem(); p != nil {
				t.Fatalf("problem: %v", p)
			}
			if err := parse(i, f.token(t, "key-1", claims)); err != nil {
				t.Fatalf("a token of the issuer: %v", err)
			}
			if s := i.Keys(); s.Keys != 1 || s.FetchedAt.IsZero() {
				t.Errorf("keys status %+v", s)
			}
		})
	}

	// Without the certificate authority, the system's do not trust the issuer.
	r := newRegistry(t, Options{})
	i := r.Ensure(issuerObject("b", f.url(), nil))
	if err := parse(i, f.token(t, "key-1", claims)); !errors.Is(err, verifier.ErrKeysUnavailable) {
		t.Errorf("without the issuer's certificate authority: %v, want keys unavailable", err)
	}
}

// TestFetchURLRule: plain http only for loopback hosts, for the issuer, the spec's
// URLs and a jwks_uri a discovery document names; redirects to another origin are not
// followed.
func TestFetchURLRule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://token.actions.githubusercontent.com", true},
		{"http://127.0.0.1:8080", true},
		{"http://127.8.9.10/x", true},
		{"http://[::1]:9000", true},
		{"http://localhost:9000/", true},
		{"http://oidc.example.com", false},
		{"http://10.0.0.1", false},
		{"http://169.254.169.254/latest/meta-data", false},
		{"ftp://example.com", false},
		{"https://user:pw@example.com", false},
		{"https://example.com/#frag", false},
		{"/relative", false},
		{"https:opaque", false},
	} {
		if err := oauthv1alpha1.CheckFetchURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("CheckFetchURL(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
	}

	r := newRegistry(t, Options{})
	for name, obj := range map[string]*oauthv1alpha1.OAuthTrustedIssuer{
		"http issuer": issuerObject("a", "http://oidc.example.com", nil),
		"http jwksURI": issuerObject("b", "https://oidc.example.com", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.Keys = &oauthv1alpha1.IssuerKeys{JWKSURI: "http://10.1.2.3/keys"}
		}),
		"http discovery": issuerObject("c", "https://oidc.example.com", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.Keys = &oauthv1alpha1.IssuerKeys{DiscoveryURL: "http://oidc.example.com/d"}
		}),
		"bad static JWKS": issuerObject("d", "https://oidc.example.com", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) { s.Keys = &oauthv1alpha1.IssuerKeys{JWKS: `{"keys":[]}`} }),
		"bad CA": issuerObject("e", "https://oidc.example.com", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.CertificateAuthority = "-----BEGIN CERTIFICATE-----\nnope\n"
		}),
		"HMAC static JWKS": issuerObject("f", "https://oidc.example.com", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.Keys = &oauthv1alpha1.IssuerKeys{JWKS: `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`}
		}),
	} {
		if p := r.Ensure(obj).Problem(); p == nil || p.Reason != oauthv1alpha1.ReasonInvalidKeySource {
			t.Errorf("%s: problem %v, want %s", name, p, oauthv1alpha1.ReasonInvalidKeySource)
		}
	}

	// A discovery document naming a plain-http jwks_uri on another host: never fetched.
	f := newFakeIssuer(t, false) // http on 127.0.0.1: allowed
	f.jwksURI = "http://oidc.example.com/jwks"
	i := r.Ensure(issuerObject("g", f.url(), nil))
	err := parse(i, f.token(t, "key-1", jwt.MapClaims{"iss": f.url()}))
	if !errors.Is(err, verifier.ErrKeysUnavailable) || !strings.Contains(i.Keys().LastError.Error(), "plain http only for a loopback host") {
		t.Errorf("a discovered plain-http jwks_uri: %v (last fetch error %v), want refused", err, i.Keys().LastError)
	}

	// A JWKS answered with a redirect to another origin (which would serve keys):
	// not followed.
	other := newFakeIssuer(t, false)
	f2 := newFakeIssuer(t, false)
	f2.redirectJWKS = other.url() + "/jwks"
	i = r.Ensure(issuerObject("h", f2.url(), nil))
	if err := parse(i, other.token(t, "key-1", jwt.MapClaims{"iss": f2.url()})); err == nil {
		t.Error("keys of another origin were taken through a redirect")
	}
	if n := other.jwksReads.Load(); n != 0 {
		t.Errorf("the other origin was asked %d times", n)
	}
}

// TestNoLoopbackForRemoteIssuers: an issuer that is not on loopback cannot make the
// operator read a loopback URL (its own pod's endpoints) through the jwks_uri of its
// discovery document; one on loopback can (local development).
func TestNoLoopbackForRemoteIssuers(t *testing.T) {
	t.Parallel()
	f := newFakeIssuer(t, true)
	f.issuer = "https://oidc.test"
	// oidc.test resolves to the fake issuer: every connection goes to it.
	addr := f.srv.Listener.Addr().String()
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the test's stand-in for DNS and a CA
	}
	r := newRegistry(t, Options{Transport: transport})
	claims := jwt.MapClaims{"iss": "https://oidc.test"}

	f.jwksURI = "https://oidc.test/jwks"
	i := r.Ensure(issuerObject("remote", "https://oidc.test", nil))
	if err := parse(i, f.token(t, "key-1", claims)); err != nil {
		t.Fatalf("a remote issuer's own jwks_uri: %v", err)
	}

	f.jwksURI = f.url() + "/jwks" // https://127.0.0.1:<port>/jwks
	i = r.Ensure(issuerObject("remote-to-loopback", "https://oidc.test", nil))
	before := f.jwksReads.Load()
	err := parse(i, f.token(t, "key-1", claims))
	if !errors.Is(err, verifier.ErrKeysUnavailable) || !strings.Contains(i.Keys().LastError.Error(), "a loopback address") {
		t.Errorf("a remote issuer's loopback jwks_uri: %v (last fetch error %v), want refused", err, i.Keys().LastError)
	}
	if n := f.jwksReads.Load() - before; n != 0 {
		t.Errorf("the loopback jwks_uri was read %d times", n)
	}
}

// TestRules: claim rules and CEL expressions, with the client's namespace; a rule
// that does not compile, does not return a bool or costs too much is the issuer's
// problem, naming the rule.
func TestRules(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, Options{})
	f := newFakeIssuer(t, false)
	rules := []oauthv1alpha1.ClaimValidationRule{
		{Claim: "repository_owner_id", RequiredValue: "1234567"},
		{Expression: `claims.sub.startsWith("system:serviceaccount:" + client.namespace + ":")`, Message: "own namespace only"},
		{Expression: `!has(claims.groups) || "admins" in claims.groups`},
		{Expression: `claims.exp - claims.iat <= 3600`},
	}
	i := r.Ensure(issuerObject("rules", f.url(), func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) { s.ClaimValidationRules = rules }))
	if p := i.Problem(); p != nil {
		t.Fatal(p)
	}
	base := func() map[string]any {
		return map[string]any{"repository_owner_id": "1234567", "sub": "system:serviceaccount:shop:erp", "iat": 1000.0, "exp": 4600.0}
	}
	for _, tc := range []struct {
		name   string
		edit   func(map[string]any)
		ns     string
		failed string // the rule named in the error; "" when all hold
	}{
		{"all hold", nil, "shop", ""},
		{"with groups", func(c map[string]any) { c["groups"] = []any{"dev", "admins"} }, "shop", ""},
		{"wrong owner", func(c map[string]any) { c["repository_owner_id"] = "7654321" }, "shop", "claimValidationRules[0]"},
		{"owner as a number", func(c map[string]any) { c["repository_owner_id"] = 1234567.0 }, "shop", "claimValidationRules[0]"},
		{"no owner", func(c map[string]any) { delete(c, "repository_owner_id") }, "shop", "claimValidationRules[0]"},
		{"another namespace's subject", nil, "evil", "claimValidationRules[1] (own namespace only)"},
		{"no sub", func(c map[string]any) { delete(c, "sub") }, "shop", "claimValidationRules[1]"},
		{"sub not a string", func(c map[string]any) { c["sub"] = 5.0 }, "shop", "claimValidationRules[1]"},
		{"not an admin", func(c map[string]any) { c["groups"] = []any{"dev"} }, "shop", "claimValidationRules[2]"},
		{"long-lived", func(c map[string]any) { c["exp"] = 9000.0 }, "shop", "claimValidationRules[3]"},
	} {
		c := base()
		if tc.edit != nil {
			tc.edit(c)
		}
		err := i.CheckClaims(c, tc.ns, "erp")
		switch {
		case tc.failed == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.failed != "" && (!errors.Is(err, ErrRuleFailed) || !strings.Contains(err.Error(), tc.failed)):
			t.Errorf("%s: %v, want %s to fail", tc.name, err, tc.failed)
		}
	}

	for name, tc := range map[string]struct{ expr, want string }{
		"syntax":         {`claims.sub.startsWith(`, "claimValidationRules[1]: does not compile"},
		"unknown name":   {`claim.sub == "x"`, "claimValidationRules[1]: does not compile"},
		"not a bool":     {`claims.sub`, "claimValidationRules[1]: returns dyn, not a bool"},
		"string":         {`"yes"`, "claimValidationRules[1]: returns string, not a bool"},
		"nested loops":   {`claims.all(a, claims.all(b, claims.all(c, a + b + c != "")))`, "claimValidationRules[1]: costs too much"},
		"regex per pair": {`claims.all(k, claims.exists(j, string(claims[k]).matches(j)))`, "claimValidationRules[1]: costs too much"},
	} {
		bad := []oauthv1alpha1.ClaimValidationRule{rules[0], {Expression: tc.expr}}
		p := r.Ensure(issuerObject("bad-"+strings.ReplaceAll(name, " ", "-"), f.url(), func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) { s.ClaimValidationRules = bad })).Problem()
		if p == nil || p.Reason != oauthv1alpha1.ReasonInvalidRule || !strings.HasPrefix(p.Message, tc.want) {
			t.Errorf("%s: problem %v, want %s: %s…", name, p, oauthv1alpha1.ReasonInvalidRule, tc.want)
		}
	}
}

// TestRuntimeCostLimit: an expression the estimator admits is still stopped at the
// cost limit when evaluated: here on a claim far larger than a token can hold (the
// estimator assumes at most 8 KiB), a check of the limit itself.
func TestRuntimeCostLimit(t *testing.T) {
	t.Parallel()
	env, err := celEnv()
	if err != nil {
		t.Fatal(err)
	}
	prg, err := compileExpression(env, `claims.s.contains("zz")`)
	if err != nil {
		t.Fatal(err)
	}
	rules := []rule{{program: prg, name: "r"}}
	if err := checkRules(rules, map[string]any{"s": "azz"}, "ns", "n"); err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("a", 20*MaxExpressionCost)
	err = checkRules(rules, map[string]any{"s": huge}, "ns", "n")
	if !errors.Is(err, ErrRuleFailed) || !strings.Contains(err.Error(), "cost limit") {
		t.Fatalf("evaluation over the cost limit: %v", err)
	}
}

// TestEnsureSharesAndReplaces: the token server and the controller share one Issuer
// per object and generation; a newer generation replaces it, an older copy does not,
// and a new object of the same name does.
func TestEnsureSharesAndReplaces(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, Options{})
	f := newFakeIssuer(t, false)
	o := issuerObject("x", f.url(), nil)
	a := r.Ensure(o)
	if b := r.Ensure(o.DeepCopy()); b != a {
		t.Fatal("the same generation built again")
	}
	newer := o.DeepCopy()
	newer.Generation = 2
	b := r.Ensure(newer)
	if b == a {
		t.Fatal("a newer generation did not replace the issuer")
	}
	if c := r.Ensure(o); c != b {
		t.Fatal("an older copy replaced a newer issuer")
	}
	recreated := o.DeepCopy()
	recreated.UID = "uid-2"
	if c := r.Ensure(recreated); c == b || c.UID != "uid-2" {
		t.Fatal("a new object of the same name did not replace the issuer")
	}
	r.Remove("x", "uid-1") // the old object's deletion, seen late
	if r.Get("x") == nil {
		t.Fatal("removing an old object removed the new one")
	}
	r.Remove("x", "uid-2")
	if r.Get("x") != nil || r.Len() != 0 {
		t.Fatal("not removed")
	}
	if !b.Selector.Matches(labels.Set{"any": "thing"}) {
		t.Error("from All admits every namespace")
	}
}

// TestUnknownKeyIDsAndRotation: 50 tokens naming made-up key ids cost the issuer at
// most one JWKS read per refresh interval, and none waits for its turn; a key the
// issuer rotates to is picked up by the first token that names it once the interval
// since the last read has passed; cached keys keep verifying while the issuer is down.
func TestUnknownKeyIDsAndRotation(t *testing.T) {
	t.Parallel()
	f := newFakeIssuer(t, false)
	clk := clocktesting.NewFakePassiveClock(time.Now())
	r := newRegistry(t, Options{Clock: clk, RefreshInterval: 10 * time.Second})
	i := r.Ensure(issuerObject("b", f.url(), nil))
	claims := jwt.MapClaims{"iss": f.url()}
	if err := parse(i, f.token(t, "key-1", claims)); err != nil {
		t.Fatal(err)
	}
	before := f.jwksReads.Load()
	start := time.Now()
	for n := range 50 {
		if err := parse(i, f.token(t, fmt.Sprintf("made-up-%d", n), claims)); err == nil {
			t.Fatal("a made-up key id verified")
		}
	}
	reads := f.jwksReads.Load() - before
	t.Logf("50 unknown key ids within the refresh interval: %d JWKS read(s), %s for the 50 verifications", reads, time.Since(start))
	if reads != 0 {
		t.Errorf("50 unknown key ids within the refresh interval caused %d JWKS reads, want 0", reads)
	}

	// The issuer rotates: within the interval the new key is unknown, after it the
	// first token naming it fetches the set once.
	f.rotate(t, "key-2")
	rotated := f.token(t, "key-2", claims)
	if err := parse(i, rotated); err == nil {
		t.Fatal("the rotated key was known without a read")
	}
	clk.SetTime(clk.Now().Add(10 * time.Second))
	if err := parse(i, rotated); err != nil {
		t.Fatalf("the rotated key after the refresh interval: %v", err)
	}
	if reads := f.jwksReads.Load() - before; reads != 1 {
		t.Errorf("%d reads for the rotation, want 1", reads)
	}
	// 50 more made-up kids after another interval: one read.
	clk.SetTime(clk.Now().Add(10 * time.Second))
	before = f.jwksReads.Load()
	for n := range 50 {
		_ = parse(i, f.token(t, fmt.Sprintf("made-up-again-%d", n), claims))
	}
	if reads := f.jwksReads.Load() - before; reads != 1 {
		t.Errorf("50 unknown key ids after the interval: %d reads, want 1", reads)
	}

	// The issuer goes away: the cached key still verifies, and the status says since
	// when the keys are stale once they are.
	f.srv.Close()
	if err := parse(i, rotated); err != nil {
		t.Fatalf("cached key while the issuer is down: %v", err)
	}
	clk.SetTime(clk.Now().Add(DefaultMaxAge + time.Minute))
	_ = parse(i, rotated) // starts a refresh, which fails
	deadline := time.Now().Add(10 * time.Second)
	for i.Keys().StaleSince.IsZero() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := i.Keys(); s.StaleSince.IsZero() || s.Keys != 1 || s.LastError == nil {
		t.Errorf("status while the issuer is down: %+v", s)
	}
	if err := parse(i, rotated); err != nil {
		t.Fatalf("stale cached key while the issuer is down: %v", err)
	}
}

// BenchmarkCheckClaims is the per-request cost of an issuer's rules: a claim rule and
// the namespace CEL rule of the README's example.
func BenchmarkCheckClaims(b *testing.B) {
	r := newRegistry(b, Options{})
	i := r.Ensure(issuerObject("bench", "https://oidc.example.com", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
		s.Keys = &oauthv1alpha1.IssuerKeys{JWKS: string(newFakeIssuer(b, false).jwks())}
		s.ClaimValidationRules = []oauthv1alpha1.ClaimValidationRule{
			{Claim: "repository_owner_id", RequiredValue: "1234567"},
			{Expression: `claims.sub.startsWith("system:serviceaccount:" + client.namespace + ":")`},
		}
	}))
	if p := i.Problem(); p != nil {
		b.Fatal(p)
	}
	claims := map[string]any{"repository_owner_id": "1234567", "sub": "system:serviceaccount:shop:erp", "iat": 1000.0, "exp": 4600.0,
		"aud": []any{"https://oauth.example.com"}, "iss": "https://oidc.example.com", "kubernetes.io": map[string]any{"namespace": "shop"}}
	b.Run("claim rule only", func(b *testing.B) {
		only := &Issuer{rules: i.rules[:1]}
		for b.Loop() {
			if err := only.CheckClaims(claims, "shop", "erp"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("claim rule and CEL", func(b *testing.B) {
		for b.Loop() {
			if err := i.CheckClaims(claims, "shop", "erp"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRemoveClosesConnections: an issuer removed (or replaced) keeps no connection to
// its server open.
func TestRemoveClosesConnections(t *testing.T) {
	t.Parallel()
	var open atomic.Int64
	f := newFakeIssuerWith(t, false, func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	})
	r := newRegistry(t, Options{})
	i := r.Ensure(issuerObject("conns", f.url(), nil))
	if err := parse(i, f.token(t, "key-1", jwt.MapClaims{"iss": f.url()})); err != nil {
		t.Fatal(err)
	}
	if open.Load() == 0 {
		t.Fatal("no connection was kept open: the test tests nothing")
	}
	r.Remove("conns", "")
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := open.Load(); n != 0 {
		t.Errorf("%d connections to a removed issuer stay open", n)
	}
}

// TestCostlyStringFunctionsRefused is the attack review's finding: with string
// extensions that gave replace, indexOf and the rest no cost, a rule that allocates tens
// of megabytes, or loops for seconds, per token passed the cost estimate. They are
// refused at reconcile now, naming the rule.
func TestCostlyStringFunctionsRefused(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, Options{})
	loop := strings.TrimSuffix(strings.Repeat("0,", 1000), ",")
	for name, expr := range map[string]string{
		"replace with an empty needle": `claims.ref.replace("", claims.ref).size() > 0`,
		"indexOf in a loop":            `[` + loop + `].all(i, claims.a.indexOf(claims.b) >= -1)`,
	} {
		i := r.Ensure(issuerObject("costly-"+strings.ReplaceAll(name, " ", "-"), "http://127.0.0.1:1", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.Keys = &oauthv1alpha1.IssuerKeys{JWKSURI: "http://127.0.0.1:1/jwks"}
			s.ClaimValidationRules = []oauthv1alpha1.ClaimValidationRule{{Expression: expr}}
		}))
		if p := i.Problem(); p == nil || !strings.Contains(p.Error(), "claimValidationRules[0]") {
			t.Errorf("%s: problem %v, want the rule refused as too costly", name, p)
		}
	}
}

// TestLocalAddressesRefusedWhateverTheSpelling is the attack review's finding: the
// loopback guard compared the host's spelling, so a remote issuer's jwks_uri of
// https://0.0.0.0:<port> (or LOCALHOST, [::ffff:0.0.0.0], [::]) reached the operator's
// own listeners. The dialer now refuses the local address itself. (An administrator
// who names a loopback URL in spec, as 127.0.0.1, localhost or [::1], means it: allowed,
// for local development.)
func TestLocalAddressesRefusedWhateverTheSpelling(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	f := newFakeIssuerWith(t, true, func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	})
	_, port, _ := net.SplitHostPort(f.srv.Listener.Addr().String())
	r := newRegistry(t, Options{}) // the registry's own transport, as in the operator
	for _, host := range []string{"0.0.0.0", "LOCALHOST", "[::ffff:0.0.0.0]", "[::]"} {
		i := r.Ensure(issuerObject("spelled-"+strings.NewReplacer(".", "-", "[", "", "]", "", ":", "-").Replace(strings.ToLower(host)),
			"https://issuer.example", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
				s.Keys = &oauthv1alpha1.IssuerKeys{JWKSURI: "https://" + host + ":" + port + "/jwks"}
			}))
		before := conns.Load()
		err := parse(i, f.token(t, "key-1", jwt.MapClaims{"iss": "https://issuer.example"}))
		if err == nil {
			t.Errorf("%s: a token verified with keys read from a local address", host)
		}
		if n := conns.Load() - before; n != 0 {
			t.Errorf("%s: the local listener received %d connections (last fetch error %v)", host, n, i.Keys().LastError)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the local listener received %d connections, want none", n)
	}
}
