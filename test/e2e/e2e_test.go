//go:build integration

// Package e2e tests the real binaries: the control plane (etcd, kube-apiserver), the
// operator process and the example API, started by internal/devenv exactly as
// `make dev` starts them, and driven over HTTP as the README shows.
package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
)

var env *devenv.Env

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oauth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	env, err = devenv.Start(ctx, devenv.Options{
		Dir: dir,
		// Short key-rotation times for the rotation tests (which request rotations
		// seconds apart); a failed-authentication limit that the tests (all from
		// 127.0.0.1) never reach.
		ManagerConfig: `
tokenServer: {jwksMaxAge: 1s}
clients: {rotateSecretMinInterval: 1s}
signing: {propagationDelay: 2s, rotationInterval: 1h}
rateLimit: {failedAuthPerMinute: 6000, failedAuthBurst: 10000}
`,
		APIArgs: []string{"--leeway", "1s", "--jwks-refresh-interval", "1s"},
		// A second control plane, another cluster whose tokens the operator trusts.
		ClusterB: true,
	})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the environment:", err)
		os.Exit(1)
	}
	code := m.Run()
	if code != 0 {
		for _, f := range []string{env.ManagerLog, env.APILog} {
			if b, err := os.ReadFile(f); err == nil {
				fmt.Fprintf(os.Stderr, "--- last of %s:\n%s\n", f, tail(string(b), 40))
			}
		}
	}
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop:", err)
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// secretOf reads a client's credentials from its Secret, as a workload would.
func secretOf(g Gomega, ns, name string) string {
	s := &corev1.Secret{}
	g.Expect(env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s)).To(Succeed())
	return string(s.Data["client_secret"])
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func do(req *http.Request) answer {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{status: -1, body: []byte(err.Error())}
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

// token requests a token exactly as the README shows: a JSON body.
func token(clientID, secret string, extra ...string) (string, answer) {
	body := fmt.Sprintf(`{"grant_type": "client_credentials", "client_id": %q, "client_secret": %q`, clientID, secret)
	for i := 0; i+1 < len(extra); i += 2 {
		body += fmt.Sprintf(`, %q: %q`, extra[i], extra[i+1])
	}
	req, _ := http.NewRequest(http.MethodPost, env.TokenURL, strings.NewReader(body+"}"))
	req.Header.Set("Content-Type", "application/json")
	a := do(req)
	var t struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(a.body, &t)
	return t.AccessToken, a
}

func callAPI(tok string) answer {
	req, _ := http.NewRequest(http.MethodGet, env.APIURL, nil)
	req.Header.Set("Accept", "application/vnd.api+json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return do(req)
}

func TestREADMEFlow(t *testing.T) {
	g := NewWithT(t)
	secret := secretOf(g, "shop", "erp-sync")
	tok, a := token("shop.erp-sync", secret)
	g.Expect(a.status).To(Equal(http.StatusOK), string(a.body))
	g.Expect(a.header.Get("Cache-Control")).To(Equal("no-store"))
	g.Expect(string(a.body)).To(ContainSubstring(`"token_type":"Bearer","expires_in":3600`))

	r := callAPI(tok)
	g.Expect(r.status).To(Equal(http.StatusOK), string(r.body))
	g.Expect(r.header.Get("Content-Type")).To(Equal("application/vnd.api+json"))
	var doc struct {
		Data []struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"data"`
	}
	g.Expect(json.Unmarshal(r.body, &doc)).To(Succeed())
	g.Expect(doc.Data).NotTo(BeEmpty())
	g.Expect(doc.Data[0].Type).To(Equal("users"))
}

func TestWrongAudienceAndNoTokenAreRefused(t *testing.T) {
	g := NewWithT(t)
	// web-shop is a storefront client: its token is not for the back-office API.
	tok, a := token("shop.web-shop", secretOf(g, "shop", "web-shop"))
	g.Expect(a.status).To(Equal(http.StatusOK), string(a.body))
	r := callAPI(tok)
	g.Expect(r.status).To(Equal(http.StatusUnauthorized))
	g.Expect(r.header.Get("WWW-Authenticate")).To(ContainSubstring(`error="invalid_token"`))

	// Nor can a storefront client ask for a back-office token.
	_, a = token("shop.web-shop", secretOf(g, "shop", "web-shop"), "audience", "back-office")
	g.Expect(a.status).To(Equal(http.StatusBadRequest))
	g.Expect(string(a.body)).To(ContainSubstring("invalid_target"))

	r = callAPI("")
	g.Expect(r.status).To(Equal(http.StatusUnauthorized))
	g.Expect(r.header.Get("WWW-Authenticate")).To(HavePrefix("Bearer"))
}

func TestExpiredTokenIsRefused(t *testing.T) {
	g := NewWithT(t)
	oc := &oauthv1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "short-lived"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{"back-office"}, Scopes: []oauthv1alpha1.Scope{"users:read"},
			AccessTokenTTL: &metav1.Duration{Duration: time.Second}},
	}
	g.Expect(env.Client.Create(context.Background(), oc)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), oc) })
	var tok string
	g.Eventually(func(g Gomega) {
		var a answer
		tok, a = token("shop.short-lived", secretOf(g, "shop", "short-lived"))
		g.Expect(a.status).To(Equal(http.StatusOK))
		g.Expect(string(a.body)).To(ContainSubstring(`"expires_in":1`))
	}, 20*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Expect(callAPI(tok).status).To(Equal(http.StatusOK))
	// Past exp plus the API's one-second leeway.
	time.Sleep(2500 * time.Millisecond)
	r := callAPI(tok)
	g.Expect(r.status).To(Equal(http.StatusUnauthorized))
	g.Expect(r.header.Get("WWW-Authenticate")).To(ContainSubstring("expired"))
}

func TestTokenSignedByAnotherKeyIsRefused(t *testing.T) {
	g := NewWithT(t)
	real, a := token("shop.erp-sync", secretOf(g, "shop", "erp-sync"))
	g.Expect(a.status).To(Equal(http.StatusOK))
	parsed, _, err := jwt.NewParser().ParseUnverified(real, jwt.MapClaims{})
	g.Expect(err).NotTo(HaveOccurred())

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	for name, kid := range map[string]any{"the server's kid": parsed.Header["kid"], "an unknown kid": "forged-kid"} {
		forged := jwt.NewWithClaims(jwt.SigningMethodES256, parsed.Claims)
		forged.Header["typ"] = "at+jwt"
		forged.Header["kid"] = kid
		s, err := forged.SignedString(key)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(callAPI(s).status).To(Equal(http.StatusUnauthorized), name)
	}
}

func jwksKIDs(g Gomega) []string {
	resp, err := http.Get(env.Issuer + "/.well-known/jwks.json")
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	g.Expect(json.NewDecoder(resp.Body).Decode(&set)).To(Succeed())
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KID)
	}
	return kids
}

func TestOperatorRestartKeepsSecretsAndKeys(t *testing.T) {
	g := NewWithT(t)
	before := map[string]string{"erp-sync": secretOf(g, "shop", "erp-sync"), "web-shop": secretOf(g, "shop", "web-shop")}
	kids := jwksKIDs(g)
	tok, a := token("shop.erp-sync", before["erp-sync"])
	g.Expect(a.status).To(Equal(http.StatusOK))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g.Expect(env.RestartOperator(ctx)).To(Succeed())

	for name, secret := range before {
		g.Expect(secretOf(g, "shop", name)).To(Equal(secret), "client %s kept its secret", name)
	}
	g.Expect(jwksKIDs(g)).To(Equal(kids))
	g.Expect(callAPI(tok).status).To(Equal(http.StatusOK), "a token issued before the restart still verifies")
	_, a = token("shop.erp-sync", before["erp-sync"])
	g.Expect(a.status).To(Equal(http.StatusOK))
}

// TestRotationWithoutFailedRequests requests and verifies tokens without pause while
// the client secret and then the signing key are rotated. The workload re-reads its
// Secret every second, as one that reads a mounted Secret would.
func TestRotationWithoutFailedRequests(t *testing.T) {
	g := NewWithT(t)
	oc := &oauthv1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "rotating"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{"back-office"}, Scopes: []oauthv1alpha1.Scope{"users:read"},
			SecretRotation: &oauthv1alpha1.SecretRotation{GracePeriod: &metav1.Duration{Duration: 5 * time.Second}}},
	}
	g.Expect(env.Client.Create(context.Background(), oc)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), oc) })
	g.Eventually(func(g Gomega) {
		_, a := token("shop.rotating", secretOf(g, "shop", "rotating"))
		g.Expect(a.status).To(Equal(http.StatusOK))
	}, 20*time.Second, 100*time.Millisecond).Should(Succeed())
	firstSecret := secretOf(g, "shop", "rotating")
	firstKIDs := jwksKIDs(g)

	var issued, verified, tokenFailures, apiFailures int
	var failures []string
	secret, readAt := firstSecret, time.Now()
	start := time.Now()
	const duration = 14 * time.Second
	rotatedSecret, rotatedKey := false, false
	for time.Since(start) < duration && issued < 20000 {
		if time.Since(readAt) > time.Second {
			secret, readAt = secretOf(g, "shop", "rotating"), time.Now()
		}
		if !rotatedSecret && time.Since(start) > 2*time.Second {
			annotate(g, oc, oauthv1alpha1.RotateSecretAnnotation, "e2e-1")
			rotatedSecret = true
		}
		if !rotatedKey && time.Since(start) > 5*time.Second {
			annotate(g, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: devenv.OperatorNamespace, Name: "oauth-client-operator-signing-keys"}},
				"oauth.operator.dev/rotate", "e2e-1")
			rotatedKey = true
		}
		tok, a := token("shop.rotating", secret)
		if a.status != http.StatusOK {
			tokenFailures++
			failures = append(failures, fmt.Sprintf("token %d: %s", a.status, a.body))
			continue
		}
		issued++
		if r := callAPI(tok); r.status != http.StatusOK {
			apiFailures++
			failures = append(failures, fmt.Sprintf("api %d: %s", r.status, r.header.Get("WWW-Authenticate")))
			continue
		}
		verified++
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("during rotation: %d tokens issued, %d verified by the API; %d failed token requests, %d failed verifications",
		issued, verified, tokenFailures, apiFailures)
	g.Expect(failures).To(BeEmpty())
	g.Expect(issued).To(BeNumerically(">", 100))
	g.Expect(secretOf(g, "shop", "rotating")).NotTo(Equal(firstSecret), "the client secret was rotated")
	g.Eventually(func(g Gomega) string {
		kids := jwksKIDs(g)
		return kids[0]
	}, 10*time.Second, 200*time.Millisecond).ShouldNot(Equal(firstKIDs[0]), "a new key signs")
	// The last token was signed by the new key and verified.
	tok, _ := token("shop.rotating", secretOf(g, "shop", "rotating"))
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(parsed.Header["kid"]).NotTo(Equal(firstKIDs[0]))
	g.Expect(callAPI(tok).status).To(Equal(http.StatusOK))
}

// annotate sets one annotation with a merge patch.
func annotate(g Gomega, obj client.Object, k, v string) {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, k, v)
	g.Expect(env.Client.Patch(context.Background(), obj, client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
}
