//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/tokenserver"
)

// TestServiceAccountTokenFlow: the sample ServiceAccountToken client, with a token of
// its ServiceAccount from the TokenRequest API (what kubelet projects into a pod, and
// what `kubectl create token` prints), gets an access token the example API accepts.
// Its Secret says where to ask and holds no credential.
func TestServiceAccountTokenFlow(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns, name := devenv.SampleNamespace, devenv.SampleServiceAccountClient

	s := &corev1.Secret{}
	g.Expect(env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s)).To(Succeed())
	g.Expect(s.Data).NotTo(HaveKey("client_secret"))
	clientID, tokenURL := string(s.Data["client_id"]), string(s.Data["token_url"])
	g.Expect(tokenURL).To(Equal(env.TokenURL))

	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{env.Issuer}, ExpirationSeconds: ptr.To(int64(600))}}
	sa := &corev1.ServiceAccount{}
	g.Expect(env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, sa)).To(Succeed())
	g.Expect(env.Client.SubResource("token").Create(ctx, sa, tr)).To(Succeed())

	form := url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID},
		"client_assertion_type": {tokenserver.JWTBearerAssertionType}, "client_assertion": {tr.Status.Token},
	}
	req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	a := do(req)
	g.Expect(a.status).To(Equal(http.StatusOK), string(a.body))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	g.Expect(json.Unmarshal(a.body, &tok)).To(Succeed())
	r := callAPI(tok.AccessToken)
	g.Expect(r.status).To(Equal(http.StatusOK), string(r.body))

	// A token of another ServiceAccount of the namespace does not authenticate it.
	other := &corev1.ServiceAccount{}
	other.Namespace, other.Name = ns, "default"
	if err := env.Client.Create(ctx, other); err != nil {
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "default"}, other)).To(Succeed())
	}
	tr2 := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{env.Issuer}}}
	g.Expect(env.Client.SubResource("token").Create(ctx, other, tr2)).To(Succeed())
	form.Set("client_assertion", tr2.Status.Token)
	req, _ = http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	g.Expect(do(req).status).To(Equal(http.StatusUnauthorized))
}

// TestPrivateKeyJWTFlow: the sample PrivateKeyJWT client signs an assertion with the
// key the operator generated into its Secret, gets an access token the example API
// accepts, and the same assertion is refused the second time.
func TestPrivateKeyJWTFlow(t *testing.T) {
	g := NewWithT(t)
	s := &corev1.Secret{}
	g.Expect(env.Client.Get(context.Background(), types.NamespacedName{Namespace: devenv.SampleNamespace, Name: "reports"}, s)).To(Succeed())
	g.Expect(s.Data).NotTo(HaveKey("client_secret"))
	key, err := jwt.ParseECPrivateKeyFromPEM(s.Data["private_key"])
	g.Expect(err).NotTo(HaveOccurred())
	tokenURL := string(s.Data["token_url"])
	assertion := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": string(s.Data["client_id"]), "sub": string(s.Data["client_id"]), "aud": tokenURL,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(), "jti": fmt.Sprint(time.Now().UnixNano()),
	})
	assertion.Header["kid"] = string(s.Data["key_id"])
	signed, err := assertion.SignedString(key)
	g.Expect(err).NotTo(HaveOccurred())
	form := url.Values{"grant_type": {"client_credentials"},
		"client_assertion_type": {tokenserver.JWTBearerAssertionType}, "client_assertion": {signed}}
	send := func() answer {
		req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return do(req)
	}
	a := send()
	g.Expect(a.status).To(Equal(http.StatusOK), string(a.body))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	g.Expect(json.Unmarshal(a.body, &tok)).To(Succeed())
	g.Expect(callAPI(tok.AccessToken).status).To(Equal(http.StatusOK))
	g.Expect(send().status).To(Equal(http.StatusUnauthorized), "a replayed assertion")
}
