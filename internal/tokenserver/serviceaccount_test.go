package tokenserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strings"
	"testing"
	"time"

	jwtv5 "github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// saToken is a token of ServiceAccount ns/name as the API server's TokenRequest gives
// it, from the world's ServiceAccount issuer.
func saToken(t *testing.T, w *world, ns, name string, audiences []string, lifetime time.Duration) string {
	t.Helper()
	return w.kubeIssuer().token(t, w, ns, name, audiences, lifetime)
}

func assertion(id, token string) string {
	return jsonBody(map[string]string{
		"grant_type": "client_credentials", "client_id": id,
		"client_assertion_type": JWTBearerAssertionType, "client_assertion": token,
	})
}

// TestServiceAccountTokenClient: a ServiceAccountToken client gets tokens with its
// own ServiceAccount's token, from the real API server's TokenRequest, and with
// nothing else.
func TestServiceAccountTokenClient(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("sa", nil)
	otherNS := w.namespace("sa-other", nil)
	api := w.api("sa-api", oauthv1alpha1.OAuthAPISpec{Scopes: []oauthv1alpha1.Scope{"users:read"}, AllowedNamespaces: allNS()})
	for _, sa := range []struct{ ns, name string }{{ns, "erp"}, {ns, "intruder"}, {otherNS, "erp"}} {
		w.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: sa.ns, Name: sa.name}})
	}
	saSpec := func(disabled bool) oauthv1alpha1.OAuthClientSpec {
		return oauthv1alpha1.OAuthClientSpec{
			Audiences: []string{api}, Scopes: []oauthv1alpha1.Scope{"users:read"}, Disabled: disabled,
			Authentication: &oauthv1alpha1.ClientAuthentication{
				Method: oauthv1alpha1.AuthServiceAccountToken, ServiceAccountName: "erp",
			},
		}
	}
	create := func(name string, spec oauthv1alpha1.OAuthClientSpec) string {
		oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
		w.create(oc)
		return oc.ClientID()
	}
	saClient := create("erp", saSpec(false))
	disabledClient := create("erp-off", saSpec(true))
	secretClient := w.client(ns, "classic", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})

	clk := clocktesting.NewFakePassiveClock(time.Now())
	srv, keys := w.server("workloadIdentity:\n  maxTokenLifetime: 1h\nrateLimit:\n  failedAuthPerMinute: 0\n", signing.ES256, clk)
	const issuer = "https://issuer.test"
	good := saToken(t, w, ns, "erp", []string{issuer}, time.Hour)

	// The right token: a token whose subject is the client.
	rec := post(srv.Handler(), "application/json", assertion(saClient, good))
	tok := decodeOK(t, rec)
	_, claims := verify(t, tok.AccessToken, keys.Load().Set.Current().Private.Public())
	if claims["sub"] != saClient || claims["client_id"] != saClient || claims["aud"] != api || claims["scope"] != "users:read" {
		t.Errorf("claims = %v", claims)
	}
	// Form bodies too; the token endpoint URL is an accepted audience; the same
	// ServiceAccount token may be presented again.
	viaTokenURL := saToken(t, w, ns, "erp", []string{issuer + TokenPath}, time.Hour)
	form := "grant_type=client_credentials&client_id=" + saClient +
		"&client_assertion_type=" + strings.ReplaceAll(JWTBearerAssertionType, ":", "%3A") + "&client_assertion=" + viaTokenURL
	for range 2 {
		decodeOK(t, post(srv.Handler(), "application/x-www-form-urlencoded", form))
	}

	// The answer every refusal must give: that of a wrong secret.
	wrongSecret := post(srv.Handler(), "application/json", jsonBody(map[string]string{
		"grant_type": "client_credentials", "client_id": secretClient, "client_secret": "wrong"}))
	if wrongSecret.Code != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", wrongSecret.Code)
	}

	long := saToken(t, w, ns, "erp", []string{issuer}, 2*time.Hour)
	if c := unverifiedClaims(t, long); c.ExpiresAt.Sub(c.IssuedAt.Time) <= time.Hour {
		t.Fatalf("the API server shortened the long-lived token to %s: the case tests nothing", c.ExpiresAt.Sub(c.IssuedAt.Time))
	}
	forged := forge(t, good, rsaKey(t), "")
	forgedSameKid := forge(t, good, rsaKey(t), kidOf(t, good))
	forgedEC := forge(t, good, ecKey(t), kidOf(t, good))
	parts := strings.Split(good, ".")
	tamperedClaims := unverifiedClaims(t, good)
	tamperedClaims.Subject = "system:serviceaccount:" + ns + ":intruder"
	tampered := parts[0] + "." + encodeSegment(t, tamperedClaims) + "." + parts[2]

	cases := []struct {
		name string
		body string
		// ahead moves the server's clock forward.
		ahead time.Duration
	}{
		{"same-named ServiceAccount of another namespace", assertion(saClient, saToken(t, w, otherNS, "erp", []string{issuer}, time.Hour)), 0},
		{"another ServiceAccount of the namespace", assertion(saClient, saToken(t, w, ns, "intruder", []string{issuer}, time.Hour)), 0},
		{"foreign audience", assertion(saClient, saToken(t, w, ns, "erp", []string{"https://kubernetes.default.svc"}, time.Hour)), 0},
		{"also for the Kubernetes API", assertion(saClient, saToken(t, w, ns, "erp", []string{issuer, "https://kubernetes.default.svc"}, time.Hour)), 0},
		{"expired token", assertion(saClient, good), 2 * time.Hour},
		{"token longer-lived than the maximum", assertion(saClient, long), 0},
		{"signed by another key", assertion(saClient, forged), 0},
		{"signed by another key under the real key id", assertion(saClient, forgedSameKid), 0},
		{"signed by another key type under the real key id", assertion(saClient, forgedEC), 0},
		{"tampered claims", assertion(saClient, tampered), 0},
		{"unsigned", assertion(saClient, parts[0]+"."+parts[1]+"."), 0},
		{"disabled client", assertion(disabledClient, good), 0},
		{"no client_id", assertion("", good), 0},
		{"assertion for a ClientSecret client", assertion(secretClient, good), 0},
		{"secret for a ServiceAccountToken client", jsonBody(map[string]string{
			"grant_type": "client_credentials", "client_id": saClient, "client_secret": w.secrets[secretClient]}), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk.SetTime(time.Now().Add(tc.ahead))
			defer clk.SetTime(time.Now())
			rec := post(srv.Handler(), "application/json", tc.body)
			if rec.Code != http.StatusUnauthorized || rec.Body.String() != wrongSecret.Body.String() ||
				rec.Header().Get("WWW-Authenticate") != wrongSecret.Header().Get("WWW-Authenticate") {
				t.Errorf("got %d %s, want the wrong-secret answer %d %s", rec.Code, rec.Body, wrongSecret.Code, wrongSecret.Body)
			}
		})
	}
	// And the right token still works after all that.
	decodeOK(t, post(srv.Handler(), "application/json", assertion(saClient, good)))

	// Its ServiceAccount deleted and created again under the same name: the old token
	// was issued for another ServiceAccount and authenticates no one; a new one does.
	w.remove(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erp"}})
	if code := post(srv.Handler(), "application/json", assertion(saClient, good)).Code; code != http.StatusUnauthorized {
		t.Fatalf("a token of the deleted ServiceAccount: %d, want 401", code)
	}
	w.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erp"}})
	if code := post(srv.Handler(), "application/json", assertion(saClient, good)).Code; code != http.StatusUnauthorized {
		t.Fatalf("a token of the deleted ServiceAccount, recreated under the same name: %d, want 401", code)
	}
	decodeOK(t, post(srv.Handler(), "application/json", assertion(saClient, saToken(t, w, ns, "erp", []string{issuer}, time.Hour))))
}

// TestServiceAccountClientFailuresAreRateLimited: refused assertions count against the
// failed-authentication limit like wrong secrets.
func TestServiceAccountClientFailuresAreRateLimited(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("sa-limit", nil)
	api := w.api("sa-limit", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	w.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"}})
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "c"}, Spec: oauthv1alpha1.OAuthClientSpec{
		Audiences:      []string{api},
		Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthServiceAccountToken, ServiceAccountName: "c"},
	}}
	w.create(oc)
	srv, _ := w.server("rateLimit:\n  failedAuthPerMinute: 1\n  failedAuthBurst: 3\n", signing.ES256, nil)
	wrong := assertion(oc.ClientID(), saToken(t, w, ns, "other", []string{"https://issuer.test"}, time.Hour))
	var codes []int
	for range 4 {
		codes = append(codes, post(srv.Handler(), "application/json", wrong).Code)
	}
	want := []int{401, 401, 401, 429}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("codes = %v, want %v", codes, want)
		}
	}
}

func unverifiedClaims(t *testing.T, token string) *jwtv5.RegisteredClaims {
	t.Helper()
	c := &jwtv5.RegisteredClaims{}
	if _, _, err := jwtv5.NewParser().ParseUnverified(token, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwtv5.NewParser().ParseUnverified(token, jwtv5.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	if kid == "" {
		t.Fatal("the ServiceAccount token has no kid")
	}
	return kid
}

// forge signs the claims of token with key, under kid.
func forge(t *testing.T, token string, key any, kid string) string {
	t.Helper()
	method := jwtv5.SigningMethod(jwtv5.SigningMethodRS256)
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		method = jwtv5.SigningMethodES256
	}
	forged := jwtv5.NewWithClaims(method, unverifiedClaims(t, token))
	if kid != "" {
		forged.Header["kid"] = kid
	}
	s, err := forged.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func encodeSegment(t *testing.T, c *jwtv5.RegisteredClaims) string {
	t.Helper()
	s, err := jwtv5.NewWithClaims(jwtv5.SigningMethodNone, c).SigningString()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(s, ".")[1]
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
