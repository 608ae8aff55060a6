//go:build integration

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	corev1 "k8s.io/api/core/v1"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
	"github.com/oauth-client-operator/oauth-client-operator/pkg/client"
)

// TestPrivateKeyJWTRotationWithPkgClient: a PrivateKeyJWT workload using pkg/client,
// reading its Secret as the kubelet mounts it (refreshed every second), fetches a new
// token for every call of the example API while its key pair rotates twice: no token
// request and no API call fails.
func TestPrivateKeyJWTRotationWithPkgClient(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	oc := &oauthv1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "signing-rotating"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{"back-office"}, Scopes: []oauthv1alpha1.Scope{"users:read"},
			Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthPrivateKeyJWT},
			SecretRotation: &oauthv1alpha1.SecretRotation{GracePeriod: &metav1.Duration{Duration: 5 * time.Second}}},
	}
	g.Expect(env.Client.Create(ctx, oc)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), oc) })
	mounted := func(g Gomega) map[string]string {
		s := &corev1.Secret{}
		g.Expect(env.Client.Get(ctx, types.NamespacedName{Namespace: oc.Namespace, Name: oc.Name}, s)).To(Succeed())
		g.Expect(s.Data).To(HaveKey("private_key"))
		out := map[string]string{}
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out
	}
	var data map[string]string
	g.Eventually(func(g Gomega) { data = mounted(g) }, 20*time.Second, 100*time.Millisecond).Should(Succeed())
	vol := testenv.NewVolume(t, data)
	// Every Token() is a new token request: the expiry delta exceeds the lifetime.
	ts, err := client.New(ctx, vol.Dir, client.WithAudience("back-office"), client.WithExpiryDelta(24*time.Hour))
	g.Expect(err).NotTo(HaveOccurred())

	kids := map[string]bool{data["key_id"]: true}
	var fetched, called int
	var failures []string
	start, syncedAt := time.Now(), time.Now()
	rotations := 0
	for time.Since(start) < 10*time.Second && fetched < 5000 {
		if time.Since(syncedAt) > time.Second {
			data, syncedAt = mounted(g), time.Now()
			kids[data["key_id"]] = true
			vol.Update(data)
		}
		if (rotations == 0 && time.Since(start) > 2*time.Second) || (rotations == 1 && time.Since(start) > 5*time.Second) {
			rotations++
			annotate(g, oc, oauthv1alpha1.RotateSecretAnnotation, fmt.Sprintf("e2e-key-%d", rotations))
		}
		tok, err := ts.Token()
		if err != nil {
			failures = append(failures, "token: "+err.Error())
			continue
		}
		fetched++
		if r := callAPI(tok.AccessToken); r.status != http.StatusOK {
			failures = append(failures, fmt.Sprintf("api %d", r.status))
			continue
		}
		called++
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("private_key_jwt during two key rotations: %d tokens fetched with pkg/client, %d API calls ok, %d failures, %d key ids used",
		fetched, called, len(failures), len(kids))
	g.Expect(failures).To(BeEmpty())
	g.Expect(fetched).To(BeNumerically(">", 100))
	g.Expect(kids).To(HaveLen(3), "the key pair rotated twice")
}
