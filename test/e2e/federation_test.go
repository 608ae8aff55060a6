//go:build integration

package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/tokenserver"
)

// TestClusterBTokenExchange: the real binaries with a second control plane. A token of
// cluster B's ServiceAccount (from its TokenRequest API, as `kubectl create token`
// prints it) is exchanged (RFC 8693) for an access token the example API accepts; the
// client's Secret says where to ask and holds no credential; a token of another of
// cluster B's ServiceAccounts is refused.
func TestClusterBTokenExchange(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	access, err := env.ExchangeClusterBToken(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	r := callAPI(access)
	g.Expect(r.status).To(Equal(http.StatusOK), string(r.body))

	s := &corev1.Secret{}
	g.Expect(env.Client.Get(ctx, types.NamespacedName{Namespace: devenv.SampleNamespace, Name: devenv.ClusterBClient}, s)).To(Succeed())
	g.Expect(s.Data).To(HaveKeyWithValue(oauthv1alpha1.SecretKeyClientID, []byte(devenv.SampleNamespace+"."+devenv.ClusterBClient)))
	g.Expect(s.Data).To(HaveKeyWithValue(oauthv1alpha1.SecretKeyTokenURL, []byte(env.TokenURL)))
	g.Expect(s.Data).NotTo(HaveKey(oauthv1alpha1.SecretKeyClientSecret))

	other, err := env.ClusterB.Token(ctx, devenv.SampleNamespace, "intruder", []string{env.Issuer}, 10*time.Minute)
	g.Expect(err).NotTo(HaveOccurred())
	form := url.Values{"grant_type": {tokenserver.GrantTokenExchange}, "subject_token": {other},
		"subject_token_type": {tokenserver.TokenTypeJWT}, "client_id": {devenv.SampleNamespace + "." + devenv.ClusterBClient}}
	req, _ := http.NewRequest(http.MethodPost, env.TokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	a := do(req)
	g.Expect(a.status).To(Equal(http.StatusBadRequest), string(a.body))
	g.Expect(string(a.body)).To(ContainSubstring(`"invalid_grant"`))
}
