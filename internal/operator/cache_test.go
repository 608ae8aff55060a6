//go:build integration

package operator_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// deleteLater deletes obj when the test ends (envtest has no namespace controller: the
// package's later tests, a restarted operator listing everything, must not read what a
// test left). It keeps only obj's kind and name, not obj: a test that measures the heap
// must not hold what it created.
func deleteLater(t *testing.T, obj client.Object) {
	stub := obj.DeepCopyObject().(client.Object)
	switch o := stub.(type) {
	case *corev1.Secret:
		o.Data, o.StringData, o.Annotations, o.Labels, o.Type = nil, nil, nil, nil, ""
	case *corev1.ServiceAccount:
		o.Annotations, o.Labels = nil, nil
	case *oauthv1alpha1.OAuthClient:
		o.Annotations, o.Labels = nil, nil
	}
	stub.SetOwnerReferences(nil)
	stub.SetManagedFields(nil)
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), stub) })
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// settledHeap is the live heap once transient garbage has gone: on a loaded machine a
// collection may find a watch mid-relist or a reconcile mid-flight, holding objects
// whole for a moment. It samples for up to 30 s and returns the least heap seen, sooner
// when that is already under heap0+limit. What a cache keeps never goes away, so a
// test asserting growth < limit still fails when the cache keeps what it must not.
func settledHeap(heap0 uint64, limit int64) uint64 {
	least := liveHeap()
	for deadline := time.Now().Add(30 * time.Second); int64(least)-int64(heap0) >= limit && time.Now().Before(deadline); {
		time.Sleep(time.Second)
		least = min(least, liveHeap())
	}
	return least
}

// TestLabelledSecretsOfOthersCostNoData is the cache attack: a tenant labels a thousand
// Secrets of 100 KiB with the operator's managed-by label. The operator caches them (it
// must, to see conflicts) but without their data: its heap grows by a few MiB, not the
// 100 MiB they hold. A client whose secretName is one of them still reports the
// conflict, and the signing-key Secret keeps its data.
func TestLabelledSecretsOfOthersCostNoData(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t, nil)
	const n, size = 1000, 100 << 10
	labels := map[string]string{oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue}
	inCache := func() int {
		var list corev1.SecretList
		if err := theOperator.GetCache().List(ctx, &list, client.InNamespace(ns)); err != nil {
			return -1
		}
		return len(list.Items)
	}

	heap0 := liveHeap()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				s := &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("junk-%d", i), Labels: labels},
					Data:       map[string][]byte{"blob": bytes.Repeat([]byte{byte('a' + i%26)}, size)},
				}
				if err := k8s.Create(ctx, s); err != nil {
					errs <- err
					return
				}
				deleteLater(t, s)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	g.Eventually(inCache, 2*time.Minute, 200*time.Millisecond).Should(Equal(n))
	heap1 := settledHeap(heap0, 8<<20)
	grew := int64(heap1) - int64(heap0)
	t.Logf("%d labelled Secrets of %d KiB not owned by a client (%d MiB of data): the operator's heap grew %.1f MiB (%.1f → %.1f MiB)",
		n, size>>10, n*size>>20, float64(grew)/(1<<20), float64(heap0)/(1<<20), float64(heap1)/(1<<20))
	g.Expect(grew).To(BeNumerically("<", 8<<20), "heap growth")

	cached := &corev1.Secret{}
	g.Expect(theOperator.GetCache().Get(ctx, types.NamespacedName{Namespace: ns, Name: "junk-0"}, cached)).To(Succeed())
	g.Expect(cached.Data).To(BeEmpty())
	g.Expect(cached.Labels).To(Equal(labels))
	key := &corev1.Secret{}
	g.Expect(theOperator.GetCache().Get(ctx, types.NamespacedName{Namespace: operatorNamespace, Name: "oauth-client-operator-signing-keys"}, key)).To(Succeed())
	g.Expect(key.Data).NotTo(BeEmpty(), "the signing-key Secret keeps its data")

	// A client that wants one of those Secrets reports the conflict, and one that
	// has its own Secret gets its credentials cached whole.
	api := "cache-" + rand.String(5)
	create(t, &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: api}, Spec: oauthv1alpha1.OAuthAPISpec{
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll}}})
	create(t, &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clash"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}, SecretName: "junk-1"}})
	g.Eventually(func() string {
		oc := &oauthv1alpha1.OAuthClient{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "clash"}, oc); err != nil {
			return err.Error()
		}
		if c := apimeta.FindStatusCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady); c != nil && c.Status == metav1.ConditionFalse {
			return c.Reason
		}
		return "not reported yet"
	}, 30*time.Second, 100*time.Millisecond).Should(Equal(oauthv1alpha1.ReasonSecretConflict))
	create(t, &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "own"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}}})
	credentials(t, ns, "own")
	g.Eventually(func() []byte {
		own := &corev1.Secret{}
		_ = theOperator.GetCache().Get(ctx, types.NamespacedName{Namespace: ns, Name: "own"}, own)
		return own.Data[oauthv1alpha1.SecretKeyClientSecret]
	}, 20*time.Second, 100*time.Millisecond).ShouldNot(BeEmpty())
}

// TestSecretsOwnedByATenantsClientCostLittle is the cache attack of issue 22: a tenant
// makes its own OAuthClient the controller of 60 labelled Secrets of 700 KB each (data
// under keys of its own, oversized values under the operator's keys, and a large
// annotation). Every replica caches them, but only the operator's keys within their
// limits and the operator's annotations: the heap grows by less than 2 MiB, not the
// 42 MB they hold. The client's own Secret keeps its credentials.
func TestSecretsOwnedByATenantsClientCostLittle(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t, nil)
	api := "owned-" + rand.String(5)
	create(t, &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: api}, Spec: oauthv1alpha1.OAuthAPISpec{
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll}}})
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenant"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}}}
	create(t, oc)
	_, secret, _ := credentials(t, ns, "tenant")
	const n = 60
	owner := metav1.OwnerReference{APIVersion: oauthv1alpha1.GroupVersion.String(), Kind: "OAuthClient", Name: oc.Name,
		UID: oc.UID, Controller: ptr.To(true)}
	inCache := func() int {
		var list corev1.SecretList
		if err := theOperator.GetCache().List(ctx, &list, client.InNamespace(ns)); err != nil {
			return -1
		}
		return len(list.Items)
	}
	heap0 := liveHeap()
	for i := range n {
		fill := func(size int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, size) }
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("bloat-%d", i), OwnerReferences: []metav1.OwnerReference{owner},
				Labels:      map[string]string{oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue, oauthv1alpha1.ClientLabel: oc.Name},
				Annotations: map[string]string{"tenant.example/notes": string(fill(100 << 10)), oauthv1alpha1.RotationTriggerAnnotation: string(fill(50 << 10))}},
			Data: map[string][]byte{
				"blob":                                   fill(400 << 10),
				oauthv1alpha1.SecretKeyPrivateKey:        fill(100 << 10),
				oauthv1alpha1.SecretKeyPreviousPublicKey: fill(50 << 10),
			},
		}
		g.Expect(k8s.Create(ctx, s)).To(Succeed())
		deleteLater(t, s)
	}
	g.Eventually(inCache, 2*time.Minute, 200*time.Millisecond).Should(Equal(n + 1))
	heap1 := settledHeap(heap0, 2<<20)
	grew := int64(heap1) - int64(heap0)
	t.Logf("%d Secrets of 700 KB controlled by a tenant's client: the operator's heap grew %.2f MiB (%.1f → %.1f MiB)",
		n, float64(grew)/(1<<20), float64(heap0)/(1<<20), float64(heap1)/(1<<20))
	g.Expect(grew).To(BeNumerically("<", 2<<20), "heap growth")

	cached := &corev1.Secret{}
	g.Expect(theOperator.GetCache().Get(ctx, types.NamespacedName{Namespace: ns, Name: "bloat-0"}, cached)).To(Succeed())
	g.Expect(cached.Data).To(BeEmpty())
	g.Expect(cached.Annotations).To(BeEmpty())
	own := &corev1.Secret{}
	g.Expect(theOperator.GetCache().Get(ctx, types.NamespacedName{Namespace: ns, Name: "tenant"}, own)).To(Succeed())
	g.Expect(string(own.Data[oauthv1alpha1.SecretKeyClientSecret])).To(Equal(secret))
	g.Expect(own.Annotations).To(HaveKey(oauthv1alpha1.SecretRotatedAtAnnotation))
}
