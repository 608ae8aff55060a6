//go:build integration

package resilience

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/operator"
)

// grace is tokenServer.apiServerGrace of the in-process operator: short enough to
// watch readiness flip within the test.
const grace = 4 * time.Second

// startInProcess runs the whole operator in this process, leader election off (one
// replica), and stops it when the test ends.
func startInProcess(t *testing.T, namespace string) (issuer, probe string) {
	t.Helper()
	g := NewWithT(t)
	tokenAddr := freeAddr(t)
	probe = freeAddr(t)
	issuer = "http://" + tokenAddr
	c, err := config.Parse([]byte(fmt.Sprintf("issuer: %s\ntokenServer: {address: %q, apiServerGrace: %s}\n", issuer, tokenAddr, grace)))
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	op, err := operator.New(ctx, cfg, operator.Options{
		Config: c, Namespace: namespace, MetricsAddr: "0", ProbeAddr: probe,
		SkipControllerNameValidation: true,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- op.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Logf("operator: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("operator did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("operator logs:\n%s", logs.String())
		}
	})
	return issuer, probe
}

// TestAPIServerOutage stops kube-apiserver under a running operator: tokens keep
// being issued from the cache, readiness holds for tokenServer.apiServerGrace and then
// fails (only the api-server check), and once the API server is back readiness
// returns and the controller reconciles new clients.
func TestAPIServerOutage(t *testing.T) {
	g := NewWithT(t)
	opNS := createNamespace(t, "oauth-outage-")
	issuer, probe := startInProcess(t, opNS)
	tokenURL := issuer + config.TokenPath
	readyz := "http://" + probe + "/readyz"

	api := createAPI(t, "outage-")
	ns := createNamespace(t, "outage-")
	createClient(t, ns, "before", api)
	body := reconciled(t, ns, "before", 30*time.Second)
	g.Eventually(func() int { c, _, _ := token(tokenURL, body); return c }, 10*time.Second, 50*time.Millisecond).
		Should(Equal(http.StatusOK))
	g.Eventually(func() int { return status(readyz) }, 10*time.Second, 50*time.Millisecond).Should(Equal(http.StatusOK))
	keys := jwks(t, issuer)

	// The API server goes away (its /readyz fails from the SIGTERM on); etcd keeps
	// running.
	apiServer := env.ControlPlane.APIServer
	stopped := time.Now()
	stopAPIServer(t)
	running := false
	t.Cleanup(func() {
		if !running {
			_ = apiServer.Start()
		}
	})
	g.Expect(status(cfg.Host+"/version")).To(BeZero(), "the API server is down")

	// Within the grace: ready, and tokens are issued. The last successful probe may
	// precede the stop by one probe interval (grace/4), so look until grace/2.
	for time.Since(stopped) < grace/2 {
		code, tok, err := token(tokenURL, body)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusOK), "a token from the cache while the API server is down")
		verify(t, tok, keys, issuer, api)
		g.Expect(status(readyz)).To(Equal(http.StatusOK), "ready within the grace (%s after the stop)", time.Since(stopped))
		time.Sleep(200 * time.Millisecond)
	}

	// Past the grace: not ready, because of the API server alone; still issuing.
	g.Eventually(func() int { return status(readyz) }, grace+5*time.Second, 100*time.Millisecond).
		Should(Equal(http.StatusInternalServerError), "not ready once the API server is gone for longer than the grace")
	notReadyAfter := time.Since(stopped)
	t.Logf("readiness failed %s after the API server stopped (grace %s)", notReadyAfter.Round(10*time.Millisecond), grace)
	g.Expect(notReadyAfter).To(BeNumerically(">=", grace-grace/4), "readiness must hold for the grace")
	g.Expect(status(readyz + "/api-server")).To(Equal(http.StatusInternalServerError))
	g.Expect(status(readyz + "/token-server")).To(Equal(http.StatusOK))
	for range 5 {
		code, tok, err := token(tokenURL, body)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusOK), "tokens are still issued past the grace")
		verify(t, tok, keys, issuer, api)
		time.Sleep(100 * time.Millisecond)
	}

	// The API server comes back on the same address and certificates.
	g.Expect(apiServer.Start()).To(Succeed())
	running = true
	t.Logf("API server down for %s", time.Since(stopped).Round(10*time.Millisecond))
	restarted := time.Now()
	g.Eventually(func() int { return status(readyz) }, 20*time.Second, 100*time.Millisecond).
		Should(Equal(http.StatusOK), "ready again once the API server answers")
	t.Logf("ready again %s after the API server restarted", time.Since(restarted).Round(10*time.Millisecond))

	// The controller recovers: a client created now gets its Secret and Ready=True,
	// and the token server (informers re-established) issues it tokens.
	createClient(t, ns, "after", api)
	after := reconciled(t, ns, "after", 45*time.Second)
	g.Eventually(func() int { c, _, _ := token(tokenURL, after); return c }, 30*time.Second, 100*time.Millisecond).
		Should(Equal(http.StatusOK))
	t.Logf("new client reconciled and served %s after the API server restarted", time.Since(restarted).Round(10*time.Millisecond))
	code, _, err := token(tokenURL, body)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(http.StatusOK))
	_ = k8s.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
}
