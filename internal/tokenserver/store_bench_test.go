package tokenserver

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// BenchmarkStoreClient measures the token server's lookup of a client and its
// Secret, Store.Client(namespace, name), with 100, 10,000 and 100,000 clients indexed,
// for random existing clients. The lookup is two map reads under a read lock, so ns/op
// should stay flat as the number of clients grows, apart from CPU-cache misses once the
// maps outgrow the caches (BenchmarkStoreClientHot shows the lookup without
// them):
//
//	go test -run '^$' -bench BenchmarkStoreClient -benchmem ./internal/tokenserver/
func BenchmarkStoreClient(b *testing.B) {
	for _, n := range []int{100, 10_000, 100_000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			r, keys := filledStore(b, n)
			// Random order, fixed seed; drawn before the timer so that the loop
			// measures the lookup and not the random number generator.
			rng := rand.New(rand.NewPCG(1, uint64(n)))
			order := make([]types.NamespacedName, 1<<16)
			for i := range order {
				order[i] = keys[rng.IntN(len(keys))]
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				k := order[i&(len(order)-1)]
				i++
				c, s := r.Client(k.Namespace, k.Name)
				if c == nil || s == nil {
					b.Fatalf("no credentials for %s", k)
				}
			}
		})
	}
}

// BenchmarkStoreClientHot is BenchmarkStoreClient with the lookups
// confined to 256 random clients, whose entries stay in the CPU caches. It separates
// the lookup's algorithmic cost (flat here) from the cache misses that random lookups
// over large maps pay (the difference between the two benchmarks at 100,000 clients).
func BenchmarkStoreClientHot(b *testing.B) {
	for _, n := range []int{100, 10_000, 100_000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			r, keys := filledStore(b, n)
			rng := rand.New(rand.NewPCG(2, uint64(n)))
			hot := make([]types.NamespacedName, 256)
			for i := range hot {
				hot[i] = keys[rng.IntN(len(keys))]
			}
			order := make([]types.NamespacedName, 1<<16)
			for i := range order {
				order[i] = hot[rng.IntN(len(hot))]
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				k := order[i&(len(order)-1)]
				i++
				if c, s := r.Client(k.Namespace, k.Name); c == nil || s == nil {
					b.Fatalf("no credentials for %s", k)
				}
			}
		})
	}
}

// filledStore indexes n clients, spread over 20 namespaces, each with the Secret it
// controls, through the same Set the informers call.
func filledStore(tb testing.TB, n int) (*Store, []types.NamespacedName) {
	tb.Helper()
	r := NewStore()
	keys := make([]types.NamespacedName, 0, n)
	for i := range n {
		ns, name := fmt.Sprintf("tenant-%02d", i%20), fmt.Sprintf("client-%06d", i)
		uid := types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
		oc := &oauthv1alpha1.OAuthClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid, ResourceVersion: "1"},
			Spec: oauthv1alpha1.OAuthClientSpec{
				Audiences: []string{"back-office"},
				Scopes:    []oauthv1alpha1.Scope{"users:read"},
			},
		}
		r.Set(oc)
		r.Set(&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: ns, Name: oc.EffectiveSecretName(), ResourceVersion: "1",
				Labels: map[string]string{
					oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue,
				},
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: oauthv1alpha1.GroupVersion.String(), Kind: "OAuthClient",
					Name: name, UID: uid, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
				}},
			},
			Data: map[string][]byte{oauthv1alpha1.SecretKeyClientSecret: fmt.Appendf(nil, "secret-%06d-%036d", i, i)},
		})
		keys = append(keys, types.NamespacedName{Namespace: ns, Name: name})
	}
	if got := r.Clients(); got != n {
		tb.Fatalf("store holds %d clients, want %d", got, n)
	}
	// Every Secret must be recognised as controlled by its client, as in production.
	c, s := r.Client(keys[0].Namespace, keys[0].Name)
	if c == nil || s == nil || s.owner != c.uid || !s.ok {
		tb.Fatalf("credentials of %s not indexed as controlled: client %v secret %v", keys[0], c, s)
	}
	return r, keys
}

// BenchmarkStoreMemory reports the heap the token server's registry holds per client
// (the client's entry, its Secret's entry and their index slots), besides the objects
// themselves, which the informer cache holds anyway:
//
//	go test -run '^$' -bench BenchmarkStoreMemory ./internal/tokenserver/
func BenchmarkStoreMemory(b *testing.B) {
	const n = 20_000
	for b.Loop() {
		clients, secrets := storeObjects(n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r := NewStore()
		for i := range clients {
			r.Set(clients[i])
			r.Set(secrets[i])
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if r.Clients() != n {
			b.Fatalf("%d clients indexed", r.Clients())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/client")
		runtime.KeepAlive(clients)
		runtime.KeepAlive(secrets)
	}
}

// storeObjects builds n clients as in production (one audience, one scope, status
// written) and the Secrets they control.
func storeObjects(n int) ([]*oauthv1alpha1.OAuthClient, []*corev1.Secret) {
	clients := make([]*oauthv1alpha1.OAuthClient, n)
	secrets := make([]*corev1.Secret, n)
	for i := range n {
		ns, name := fmt.Sprintf("tenant-%02d", i%20), fmt.Sprintf("client-%06d", i)
		uid := types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
		clients[i] = &oauthv1alpha1.OAuthClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid, ResourceVersion: "1"},
			Spec: oauthv1alpha1.OAuthClientSpec{
				Audiences: []string{"back-office"},
				Scopes:    []oauthv1alpha1.Scope{"users:read"},
			},
		}
		secrets[i] = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: ns, Name: name, ResourceVersion: "1",
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: oauthv1alpha1.GroupVersion.String(), Kind: "OAuthClient",
					Name: name, UID: uid, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
				}},
			},
			Data: map[string][]byte{oauthv1alpha1.SecretKeyClientSecret: fmt.Appendf(nil, "secret-%06d-%036d", i, i)},
		}
	}
	return clients, secrets
}
