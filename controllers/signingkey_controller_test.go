//go:build integration

package controllers_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/oauth-client-operator/oauth-client-operator/controllers"

	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

func keySet(g Gomega) *signing.KeySet {
	s := &corev1.Secret{}
	g.Expect(k8s.Get(context.Background(), keySecret, s)).To(Succeed())
	ks, err := signing.Decode(s.Data)
	g.Expect(err).NotTo(HaveOccurred())
	return ks
}

func annotateKeySecret(t *testing.T, k, v string) {
	t.Helper()
	g := NewWithT(t)
	s := &corev1.Secret{}
	g.Expect(k8s.Get(context.Background(), keySecret, s)).To(Succeed())
	patch := client.MergeFrom(s.DeepCopy())
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[k] = v
	g.Expect(k8s.Patch(context.Background(), s, patch)).To(Succeed())
}

// TestSigningKeyRotationPhases drives a rotation with the operator's clock: published,
// then signing after the propagation delay (10m), the old key retired and kept for the
// longest token lifetime plus leeway (24h + 5m), then removed.
func TestSigningKeyRotationPhases(t *testing.T) { // moves the clock: not parallel
	requireEnv(t)
	g := NewWithT(t)
	var first *signing.KeySet
	g.Eventually(func(g Gomega) { first = keySet(g) }, timeout, interval).Should(Succeed())
	oldKID := first.CurrentID

	annotateKeySecret(t, "oauth.operator.dev/rotate", "manual-"+strconv.FormatInt(time.Now().UnixNano(), 10))
	var published *signing.Key
	g.Eventually(func(g Gomega) {
		ks := keySet(g)
		g.Expect(ks.Keys).To(HaveLen(2))
		g.Expect(ks.CurrentID).To(Equal(oldKID), "a new key is published before it signs")
		published = ks.Keys[1]
	}, timeout, interval).Should(Succeed())
	g.Expect(published.ActivatesAt.Sub(published.CreatedAt)).To(Equal(10 * time.Minute))

	// Before the propagation delay has passed, it does not sign.
	clock.Advance(9 * time.Minute)
	annotateKeySecret(t, "test.oauth.operator.dev/poke", "1")
	g.Consistently(func(g Gomega) string { return keySet(g).CurrentID }, 2*time.Second, 200*time.Millisecond).Should(Equal(oldKID))

	rotations := testutil.ToFloat64(controllers.SigningKeyRotations)
	clock.Advance(2 * time.Minute)
	annotateKeySecret(t, "test.oauth.operator.dev/poke", "2")
	g.Eventually(func(g Gomega) string { return keySet(g).CurrentID }, timeout, interval).Should(Equal(published.ID))
	g.Expect(testutil.ToFloat64(controllers.SigningKeyRotations)).To(Equal(rotations + 1))
	retired := keySet(g).Find(oldKID)
	g.Expect(retired).NotTo(BeNil(), "the retired key stays published")
	g.Expect(retired.ExpiresAt.Sub(retired.RetiredAt)).To(Equal(24*time.Hour + 5*time.Minute))

	// Still there just before every token it signed has expired; gone after.
	clock.Advance(24 * time.Hour)
	annotateKeySecret(t, "test.oauth.operator.dev/poke", "3")
	g.Consistently(func(g Gomega) *signing.Key { return keySet(g).Find(oldKID) }, 2*time.Second, 200*time.Millisecond).ShouldNot(BeNil())
	clock.Advance(6 * time.Minute)
	annotateKeySecret(t, "test.oauth.operator.dev/poke", "4")
	g.Eventually(func(g Gomega) *signing.Key { return keySet(g).Find(oldKID) }, timeout, interval).Should(BeNil())
	g.Expect(keySet(g).Keys).To(HaveLen(1))
	g.Expect(keySet(g).CurrentID).To(Equal(published.ID))
}
