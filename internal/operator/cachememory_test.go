package operator

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// BenchmarkCachedObjectMemory reports the heap one cached object holds, as the
// manager's informers hold it: the object as the API server sends it (a Secret as
// protobuf, an OAuthClient as JSON; both as the operator writes them, with managed
// fields), decoded, then passed through the cache's transform:
//
//	go test -run '^$' -bench BenchmarkCachedObjectMemory ./internal/operator/
func BenchmarkCachedObjectMemory(b *testing.B) {
	scheme := Scheme()
	keySecret := types.NamespacedName{Namespace: "oauth-system", Name: "signing-keys"}
	for _, tc := range []struct {
		name      string
		codec     kruntime.Serializer
		object    func(i int) kruntime.Object
		transform toolscache.TransformFunc
	}{
		{"Secret", protobuf.NewSerializer(scheme, scheme), func(i int) kruntime.Object { return benchSecret(i) }, secretTransform(keySecret)},
		{"OAuthClient", json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{}),
			func(i int) kruntime.Object { return benchClient(i) }, oauthClientTransform()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const n = 10_000
			for b.Loop() {
				wire := make([][]byte, n)
				for i := range wire {
					var buf bytes.Buffer
					if err := tc.codec.Encode(tc.object(i), &buf); err != nil {
						b.Fatal(err)
					}
					wire[i] = buf.Bytes()
				}
				kept := make([]any, n)
				before := liveHeap()
				for i, data := range wire {
					obj, _, err := tc.codec.Decode(data, nil, nil)
					if err != nil {
						b.Fatal(err)
					}
					if kept[i], err = tc.transform(obj); err != nil {
						b.Fatal(err)
					}
				}
				after := liveHeap()
				b.ReportMetric(float64(after-before)/n, "B/object")
				runtime.KeepAlive(kept)
				runtime.KeepAlive(wire)
			}
		})
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

var benchTime = metav1.NewTime(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))

func benchMeta(i int, kind string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: fmt.Sprintf("scale-%02d", i%20), Name: fmt.Sprintf("client-%06d", i),
		UID:             types.UID(fmt.Sprintf("6f1c2a3e-0000-4000-8000-%012d", i)),
		ResourceVersion: fmt.Sprint(100000 + i), CreationTimestamp: benchTime,
		ManagedFields: []metav1.ManagedFieldsEntry{{
			Manager: "manager", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &benchTime,
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{".":{},"f:client_id":{},"f:client_secret":{}},"f:metadata":{"f:labels":{}}}`)},
		}},
	}
}

// benchSecret is a client's Secret as the operator writes it.
func benchSecret(i int) *corev1.Secret {
	m := benchMeta(i, "Secret")
	m.Labels = map[string]string{oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue, oauthv1alpha1.ClientLabel: m.Name}
	m.Annotations = map[string]string{oauthv1alpha1.SecretRotatedAtAnnotation: "2026-12-06T10:00:00Z"}
	m.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: oauthv1alpha1.GroupVersion.String(), Kind: "OAuthClient", Name: m.Name,
		UID: types.UID(fmt.Sprintf("0a1b2c3d-0000-4000-8000-%012d", i)), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: m,
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			oauthv1alpha1.SecretKeyClientID:     []byte(m.Namespace + "." + m.Name),
			oauthv1alpha1.SecretKeyClientSecret: fmt.Appendf(nil, "%043d", i),
			oauthv1alpha1.SecretKeyTokenURL:     []byte("https://oauth.example.com/oauth2-token"),
			oauthv1alpha1.SecretKeyIssuer:       []byte("https://oauth.example.com"),
		},
	}
}

// benchClient is an OAuthClient as a user writes it (one label) with the status the
// operator writes.
func benchClient(i int) *oauthv1alpha1.OAuthClient {
	m := benchMeta(i, "OAuthClient")
	m.Generation = 1
	m.Labels = map[string]string{"app.kubernetes.io/part-of": "shop"}
	return &oauthv1alpha1.OAuthClient{
		TypeMeta:   metav1.TypeMeta{APIVersion: oauthv1alpha1.GroupVersion.String(), Kind: "OAuthClient"},
		ObjectMeta: m,
		Spec:       oauthv1alpha1.OAuthClientSpec{Audiences: []string{"storefront"}, Scopes: []oauthv1alpha1.Scope{"catalog:read"}},
		Status: oauthv1alpha1.OAuthClientStatus{
			ClientID: m.Namespace + "." + m.Name, SecretName: m.Name, TokenURL: "https://oauth.example.com/oauth2-token",
			ObservedGeneration: 1,
			Conditions: []metav1.Condition{{
				Type: oauthv1alpha1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: 1, LastTransitionTime: benchTime,
				Reason: oauthv1alpha1.ReasonReady, Message: "credentials are in Secret " + m.Name,
			}},
		},
	}
}
