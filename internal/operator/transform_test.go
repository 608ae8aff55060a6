package operator

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// TestSecretTransform: the cache keeps of a Secret only what the operator reads.
func TestSecretTransform(t *testing.T) {
	t.Parallel()
	key := types.NamespacedName{Namespace: "oauth-system", Name: "signing-keys"}
	transform := secretTransform(key)
	owner := metav1.OwnerReference{APIVersion: oauthv1alpha1.GroupVersion.String(), Kind: "OAuthClient", Name: "c", UID: "u1", Controller: ptr.To(true)}
	other := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "u2"}
	labels := map[string]string{oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue, oauthv1alpha1.ClientLabel: "c", "tenant": "x"}
	big := strings.Repeat("x", 20<<10)
	secret := func(refs ...metav1.OwnerReference) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "c", OwnerReferences: refs, Labels: labels,
				Annotations: map[string]string{
					oauthv1alpha1.SecretRotatedAtAnnotation: "2026-12-01T00:00:00Z",
					oauthv1alpha1.RotationTriggerAnnotation: big, "tenant.example/notes": "hi",
				},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
			Data: map[string][]byte{
				oauthv1alpha1.SecretKeyClientSecret: []byte("s"), oauthv1alpha1.SecretKeyPrivateKey: []byte(big), "blob": []byte("b"),
			},
		}
	}
	apply := func(s *corev1.Secret) *corev1.Secret {
		t.Helper()
		out, err := transform(s)
		if err != nil {
			t.Fatal(err)
		}
		return out.(*corev1.Secret)
	}

	owned := apply(secret(other, owner))
	if got := len(owned.Data); got != 1 || string(owned.Data[oauthv1alpha1.SecretKeyClientSecret]) != "s" {
		t.Errorf("owned Secret's data %v: want only client_secret (private_key over its limit, blob not read)", owned.Data)
	}
	if len(owned.Annotations) != 1 || owned.Annotations[oauthv1alpha1.SecretRotatedAtAnnotation] == "" {
		t.Errorf("owned Secret's annotations %v: want only the operator's, within their limit", owned.Annotations)
	}
	if len(owned.Labels) != 2 || len(owned.OwnerReferences) != 1 || owned.OwnerReferences[0].UID != "u1" || owned.ManagedFields != nil {
		t.Errorf("owned Secret's metadata: labels %v, owners %v, managed fields %v", owned.Labels, owned.OwnerReferences, owned.ManagedFields)
	}
	unowned := apply(secret(other))
	if unowned.Data != nil || unowned.Annotations != nil || unowned.OwnerReferences != nil || len(unowned.Labels) != 2 {
		t.Errorf("a Secret no client controls keeps %v %v %v %v", unowned.Data, unowned.Annotations, unowned.OwnerReferences, unowned.Labels)
	}
	signing := secret()
	signing.Namespace, signing.Name = key.Namespace, key.Name
	if s := apply(signing); len(s.Data) != 3 || len(s.Annotations) != 3 {
		t.Errorf("the signing-key Secret must be kept whole: %v %v", s.Data, s.Annotations)
	}
}

// TestRotationTriggerFits: the record of a rotate-secret value always fits in what the
// cache keeps, and two values never share a record.
func TestRotationTriggerFits(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("r", 100<<10)
	for _, v := range []string{"1", "2026-12-06T10:00:00Z", long, long + "!"} {
		if got := oauthv1alpha1.RotationTrigger(v); len(got) > oauthv1alpha1.MaxCredentialAnnotationBytes {
			t.Errorf("RotationTrigger of %d bytes is %d bytes", len(v), len(got))
		}
	}
	if oauthv1alpha1.RotationTrigger(long) == oauthv1alpha1.RotationTrigger(long+"!") {
		t.Error("two long values share a record")
	}
}

// TestOAuthClientTransform: the cache keeps of an OAuthClient its spec, its status and
// its metadata but labels, managed fields and annotations other than rotate-secret; a
// long rotate-secret value is kept as the record the controller compares.
func TestOAuthClientTransform(t *testing.T) {
	t.Parallel()
	transform := oauthClientTransform()
	apply := func(oc *oauthv1alpha1.OAuthClient) *oauthv1alpha1.OAuthClient {
		t.Helper()
		out, err := transform(oc)
		if err != nil {
			t.Fatal(err)
		}
		return out.(*oauthv1alpha1.OAuthClient)
	}
	long := strings.Repeat("r", 4<<10)
	for _, tc := range []struct {
		name      string
		rotate    *string
		wantAnnot map[string]string
	}{
		{"no rotate-secret", nil, nil},
		{"short rotate-secret", ptr.To("2026-12-06"), map[string]string{oauthv1alpha1.RotateSecretAnnotation: "2026-12-06"}},
		{"long rotate-secret", &long, map[string]string{oauthv1alpha1.RotateSecretAnnotation: oauthv1alpha1.RotationTrigger(long)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := benchClient(7)
			in.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("{}", 500)}
			in.Finalizers = []string{"example.com/dropped"}
			in.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "u"}}
			if tc.rotate != nil {
				in.Annotations[oauthv1alpha1.RotateSecretAnnotation] = *tc.rotate
			}
			want := in.DeepCopy()
			got := apply(in)
			if got.Labels != nil || got.ManagedFields != nil || got.Finalizers != nil || got.OwnerReferences != nil {
				t.Errorf("labels %v, managed fields %v, finalizers %v, owners %v: want none (nobody reads them)",
					got.Labels, got.ManagedFields, got.Finalizers, got.OwnerReferences)
			}
			if !equality.Semantic.DeepEqual(got.Annotations, tc.wantAnnot) {
				t.Errorf("annotations %v, want %v", got.Annotations, tc.wantAnnot)
			}
			if !equality.Semantic.DeepEqual(got.Spec, want.Spec) || !equality.Semantic.DeepEqual(got.Status, want.Status) {
				t.Errorf("spec or status changed:\n%+v\n%+v", got, want)
			}
			if got.Name != want.Name || got.Namespace != want.Namespace || got.UID != want.UID || got.Generation != want.Generation ||
				got.ResourceVersion != want.ResourceVersion {
				t.Errorf("metadata changed: %+v, want %+v", got.ObjectMeta, want.ObjectMeta)
			}
		})
	}
	// The record of a kept value is what the controller would record for the original.
	if r := oauthv1alpha1.RotationTrigger(oauthv1alpha1.RotationTrigger(long)); r != oauthv1alpha1.RotationTrigger(long) {
		t.Errorf("RotationTrigger is not idempotent: %q", r)
	}

	// Strings that repeat across clients are held once (objects decoded as the
	// informers decode them: every string its own).
	a, b := apply(fromWire(t, benchClient(1))), apply(fromWire(t, benchClient(21))) // same namespace
	for name, pair := range map[string][2]string{
		"namespace": {a.Namespace, b.Namespace}, "audience": {a.Spec.Audiences[0], b.Spec.Audiences[0]},
		"scope": {string(a.Spec.Scopes[0]), string(b.Spec.Scopes[0])}, "token URL": {a.Status.TokenURL, b.Status.TokenURL},
		"reason": {a.Status.Conditions[0].Reason, b.Status.Conditions[0].Reason},
	} {
		if unsafe.StringData(pair[0]) != unsafe.StringData(pair[1]) {
			t.Errorf("%s %q is held twice", name, pair[0])
		}
	}
}

// TestSecretTransformSharesRepeatedValues: the values every client's Secret repeats
// (token URL, issuer, managed-by label, owner kind) are held once, and the cached
// Secret still says what the original said.
func TestSecretTransformSharesRepeatedValues(t *testing.T) {
	t.Parallel()
	transform := secretTransform(types.NamespacedName{Namespace: "oauth-system", Name: "signing-keys"})
	apply := func(s *corev1.Secret) *corev1.Secret {
		t.Helper()
		out, err := transform(s)
		if err != nil {
			t.Fatal(err)
		}
		return out.(*corev1.Secret)
	}
	in := fromWire(t, benchSecret(3))
	want := in.DeepCopy()
	a, b := apply(in), apply(fromWire(t, benchSecret(23)))
	want.ManagedFields = nil
	if !equality.Semantic.DeepEqual(a, want) {
		t.Errorf("the cached Secret differs from the original:\n%+v\n%+v", a, want)
	}
	if &a.Data[oauthv1alpha1.SecretKeyTokenURL][0] != &b.Data[oauthv1alpha1.SecretKeyTokenURL][0] ||
		&a.Data[oauthv1alpha1.SecretKeyIssuer][0] != &b.Data[oauthv1alpha1.SecretKeyIssuer][0] {
		t.Error("token_url and issuer are held once per Secret")
	}
	if &a.Data[oauthv1alpha1.SecretKeyClientSecret][0] == &b.Data[oauthv1alpha1.SecretKeyClientSecret][0] {
		t.Fatal("two Secrets share a client_secret")
	}
	for name, pair := range map[string][2]string{
		"managed-by": {a.Labels[oauthv1alpha1.ManagedByLabel], b.Labels[oauthv1alpha1.ManagedByLabel]},
		"owner kind": {a.OwnerReferences[0].Kind, b.OwnerReferences[0].Kind},
		"namespace":  {a.Namespace, b.Namespace},
	} {
		if unsafe.StringData(pair[0]) != unsafe.StringData(pair[1]) {
			t.Errorf("%s %q is held twice", name, pair[0])
		}
	}
	// Values written by hand do not grow the shared table past its bound.
	for i := range 2 * maxShared {
		s := benchSecret(i)
		s.Data[oauthv1alpha1.SecretKeyIssuer] = fmt.Appendf(nil, "https://issuer-%d.example", i)
		if got := apply(s); string(got.Data[oauthv1alpha1.SecretKeyIssuer]) != fmt.Sprintf("https://issuer-%d.example", i) {
			t.Fatalf("issuer %q", got.Data[oauthv1alpha1.SecretKeyIssuer])
		}
	}
	if n := sharedValues.len(); n > maxShared {
		t.Errorf("%d shared values, more than %d", n, maxShared)
	}
}

// fromWire returns obj as an informer gets it: a Secret through protobuf, anything
// else through JSON.
func fromWire[T kruntime.Object](t *testing.T, obj T) T {
	t.Helper()
	scheme := Scheme()
	var codec kruntime.Serializer = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{})
	if _, ok := any(obj).(*corev1.Secret); ok {
		codec = protobuf.NewSerializer(scheme, scheme)
	}
	var buf bytes.Buffer
	if err := codec.Encode(obj, &buf); err != nil {
		t.Fatal(err)
	}
	out, _, err := codec.Decode(buf.Bytes(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out.(T)
}
