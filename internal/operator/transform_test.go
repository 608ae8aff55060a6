package operator

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
