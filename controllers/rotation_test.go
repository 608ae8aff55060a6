//go:build integration

package controllers_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/oauth-client-operator/oauth-client-operator/controllers"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

var pokes atomic.Int64

// poke changes an unrelated annotation, so the controller looks at the client now
// rather than when its (real-time) requeue fires.
func poke(t *testing.T, ns, name string) {
	t.Helper()
	setClientAnnotation(t, ns, name, "test.oauth.operator.dev/poke", strconv.FormatInt(pokes.Add(1), 10))
}

func setClientAnnotation(t *testing.T, ns, name, k, v string) {
	t.Helper()
	g := NewWithT(t)
	oc := &oauthv1alpha1.OAuthClient{}
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, oc)).To(Succeed())
	patch := client.MergeFrom(oc.DeepCopy())
	if oc.Annotations == nil {
		oc.Annotations = map[string]string{}
	}
	oc.Annotations[k] = v
	g.Expect(k8s.Patch(context.Background(), oc, patch)).To(Succeed())
}

// settled waits until the controller has seen the client's latest annotations: the
// poke leaves the status alone, so wait for the Secret to stop changing instead.
func settled(t *testing.T, ns, secretName string) map[string][]byte {
	t.Helper()
	g := NewWithT(t)
	var last map[string][]byte
	stable := 0
	g.Eventually(func() int {
		cur := getSecret(g, ns, secretName).Data
		if last != nil && string(cur["client_secret"]) == string(last["client_secret"]) &&
			string(cur["previous_client_secret"]) == string(last["previous_client_secret"]) {
			stable++
		} else {
			stable = 0
		}
		last = cur
		return stable
	}, timeout, 200*time.Millisecond).Should(BeNumerically(">=", 3))
	return last
}

func rotatingClient(t *testing.T, interval, grace string) (ns, name string) {
	t.Helper()
	ns = newNamespace(t, nil)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	rot := &oauthv1alpha1.SecretRotation{}
	if interval != "" {
		d, _ := time.ParseDuration(interval)
		rot.Interval = &metav1.Duration{Duration: d}
	}
	if grace != "" {
		d, _ := time.ParseDuration(grace)
		rot.GracePeriod = &metav1.Duration{Duration: d}
	}
	oc := newClient(t, ns, "rotating", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}, SecretRotation: rot})
	waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	return ns, oc.Name
}

func clientStatus(g Gomega, ns, name string) oauthv1alpha1.OAuthClientStatus {
	oc := &oauthv1alpha1.OAuthClient{}
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, oc)).To(Succeed())
	return oc.Status
}

func TestSecretRotationByInterval(t *testing.T) { // moves the clock, restarts the manager: not parallel
	g := NewWithT(t)
	ns, name := rotatingClient(t, "1h", "10m")
	s0 := getSecret(g, ns, name).Data["client_secret"]
	st := clientStatus(g, ns, name)
	g.Expect(st.LastSecretRotationTime).NotTo(BeNil())
	g.Expect(st.NextSecretRotationTime).NotTo(BeNil())
	g.Expect(st.NextSecretRotationTime.Sub(st.LastSecretRotationTime.Time)).To(Equal(time.Hour))

	// Before the interval: nothing happens.
	clock.Advance(59 * time.Minute)
	poke(t, ns, name)
	g.Expect(settled(t, ns, name)["client_secret"]).To(Equal(s0))

	// After it: one rotation; the old secret is kept for the grace period.
	clock.Advance(2 * time.Minute)
	poke(t, ns, name)
	g.Eventually(func(g Gomega) {
		d := getSecret(g, ns, name).Data
		g.Expect(d["client_secret"]).NotTo(Equal(s0))
		g.Expect(d["previous_client_secret"]).To(Equal(s0))
	}, timeout, interval).Should(Succeed())
	s1 := getSecret(g, ns, name).Data["client_secret"]
	g.Eventually(func(g Gomega) {
		st := clientStatus(g, ns, name)
		g.Expect(st.PreviousSecretExpiryTime).NotTo(BeNil())
		g.Expect(st.PreviousSecretExpiryTime.Sub(st.LastSecretRotationTime.Time)).To(Equal(10 * time.Minute))
		g.Expect(st.NextSecretRotationTime.Sub(st.LastSecretRotationTime.Time)).To(Equal(time.Hour))
	}, timeout, interval).Should(Succeed())
	g.Eventually(func(g Gomega) []string { return reasons(eventsFor(g, ns, name)) }, timeout, interval).
		Should(ContainElement("SecretRotated"))
	g.Expect(testutil.ToFloat64(controllers.SecretRotations.WithLabelValues("interval"))).To(BeNumerically(">=", 1))

	// After the grace period the previous secret is gone; the current one stays.
	clock.Advance(11 * time.Minute)
	poke(t, ns, name)
	g.Eventually(func(g Gomega) map[string][]byte { return getSecret(g, ns, name).Data }, timeout, interval).
		ShouldNot(HaveKey("previous_client_secret"))
	g.Expect(getSecret(g, ns, name).Data["client_secret"]).To(Equal(s1))
	g.Eventually(func(g Gomega) *metav1.Time { return clientStatus(g, ns, name).PreviousSecretExpiryTime }, timeout, interval).Should(BeNil())

	// Five intervals missed while the operator was away: one rotation, not five.
	clock.Advance(5 * time.Hour)
	stopManager()
	g.Expect(startManager()).To(Succeed())
	poke(t, ns, name)
	g.Eventually(func(g Gomega) []byte { return getSecret(g, ns, name).Data["previous_client_secret"] }, timeout, interval).Should(Equal(s1))
	after := settled(t, ns, name)
	poke(t, ns, name)
	again := settled(t, ns, name)
	g.Expect(again["client_secret"]).To(Equal(after["client_secret"]))
	g.Expect(again["previous_client_secret"]).To(Equal(s1))
}

func TestNoRotationOnRestart(t *testing.T) { // restarts the manager: not parallel
	g := NewWithT(t)
	ns, name := rotatingClient(t, "2h", "")
	before := getSecret(g, ns, name)
	stopManager()
	g.Expect(startManager()).To(Succeed())
	poke(t, ns, name)
	after := settled(t, ns, name)
	g.Expect(after["client_secret"]).To(Equal(before.Data["client_secret"]))
	g.Expect(after).NotTo(HaveKey("previous_client_secret"))
}

func TestSecretRotationByAnnotation(t *testing.T) { // moves the clock: not parallel
	g := NewWithT(t)
	ns, name := rotatingClient(t, "", "0s")
	s0 := getSecret(g, ns, name).Data["client_secret"]

	byAnnotation := testutil.ToFloat64(controllers.SecretRotations.WithLabelValues("annotation"))
	setClientAnnotation(t, ns, name, oauthv1alpha1.RotateSecretAnnotation, "2026-11-28-a")
	g.Eventually(func(g Gomega) []byte { return getSecret(g, ns, name).Data["client_secret"] }, timeout, interval).ShouldNot(Equal(s0))
	s1 := settled(t, ns, name)
	g.Expect(s1).NotTo(HaveKey("previous_client_secret"), "a grace period of 0 drops the old secret at once")

	// The same value again does nothing.
	poke(t, ns, name)
	g.Expect(settled(t, ns, name)["client_secret"]).To(Equal(s1["client_secret"]))

	// A new value rotates once more, once clients.rotateSecretMinInterval (1m) has
	// passed since the last requested rotation.
	clock.Advance(time.Minute)
	setClientAnnotation(t, ns, name, oauthv1alpha1.RotateSecretAnnotation, "2026-11-28-b")
	g.Eventually(func(g Gomega) []byte { return getSecret(g, ns, name).Data["client_secret"] }, timeout, interval).ShouldNot(Equal(s1["client_secret"]))
	g.Expect(clientStatus(g, ns, name).NextSecretRotationTime).To(BeNil(), "no interval, no next rotation")
	g.Expect(testutil.ToFloat64(controllers.SecretRotations.WithLabelValues("annotation"))).To(Equal(byAnnotation + 2))
}

func TestRotationRequestedAtCreation(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	oc := &oauthv1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fresh", Annotations: map[string]string{oauthv1alpha1.RotateSecretAnnotation: "x"}},
		Spec:       oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}},
	}
	g.Expect(k8s.Create(context.Background(), oc)).To(Succeed())
	waitReady(t, ns, "fresh", metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	g.Expect(settled(t, ns, "fresh")).NotTo(HaveKey("previous_client_secret"), "a new Secret needs no rotation")
}

// TestRotationRequestsAreRateLimited reproduces issue 22's finding 6: 50 writes of the
// rotate-secret annotation in a few seconds. Each new value used to be a key generation
// on the leader; now the first rotates at once, every later one within
// clients.rotateSecretMinInterval (1m) is deferred with an event, and the latest value
// is acted on once the interval has passed: 2 generations in all.
func TestRotationRequestsAreRateLimited(t *testing.T) { // moves the clock: not parallel
	g := NewWithT(t)
	ns, name := rotatingClient(t, "", "")
	rotations := func() float64 { return testutil.ToFloat64(controllers.SecretRotations.WithLabelValues("annotation")) }
	before := rotations()
	s0 := getSecret(g, ns, name)

	start := time.Now()
	for i := range 50 {
		setClientAnnotation(t, ns, name, oauthv1alpha1.RotateSecretAnnotation, "flood-"+strconv.Itoa(i))
	}
	t.Logf("50 annotation writes in %s", time.Since(start).Round(time.Millisecond))
	poke(t, ns, name)
	settled(t, ns, name)
	g.Expect(rotations()-before).To(Equal(1.0), "key generations for 50 requests within the interval")

	// The controller has seen the last value and defers it, with an event.
	deferred := func(g Gomega) {
		oc := &oauthv1alpha1.OAuthClient{}
		g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, oc)).To(Succeed())
		g.Expect(oc.Annotations[oauthv1alpha1.RotateSecretAnnotation]).To(Equal("flood-49"))
		g.Expect(getSecret(g, ns, name).Annotations[oauthv1alpha1.RotationTriggerAnnotation]).NotTo(Equal("flood-49"))
	}
	g.Eventually(func(g Gomega) []string { return reasons(eventsFor(g, ns, name)) }, timeout, interval).
		Should(ContainElement(controllers.EventSecretRotationDeferred))
	g.Consistently(deferred, 2*time.Second, 200*time.Millisecond).Should(Succeed())
	g.Expect(rotations() - before).To(Equal(1.0))

	s1 := getSecret(g, ns, name)
	g.Expect(s1.Data["client_secret"]).NotTo(Equal(s0.Data["client_secret"]))
	g.Expect(s1.Annotations[oauthv1alpha1.RotationTriggerAnnotation]).To(HavePrefix("flood-"))
	g.Expect(s1.Annotations[oauthv1alpha1.SecretRotatedAtAnnotation]).To(Equal(s1.Annotations[oauthv1alpha1.RotationTriggerHandledAtAnnotation]))

	// Once the interval has passed, the latest value is acted on: one more generation.
	clock.Advance(time.Minute)
	poke(t, ns, name)
	g.Eventually(func(g Gomega) string {
		return getSecret(g, ns, name).Annotations[oauthv1alpha1.RotationTriggerAnnotation]
	}, timeout, interval).Should(Equal("flood-49"))
	settled(t, ns, name)
	g.Expect(rotations()-before).To(Equal(2.0), "50 requests: two key generations")
	g.Expect(getSecret(g, ns, name).Annotations[oauthv1alpha1.SecretRotatedAtAnnotation]).
		NotTo(Equal(s1.Annotations[oauthv1alpha1.SecretRotatedAtAnnotation]))
}
