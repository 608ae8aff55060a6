package operator

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// The cache's transforms decide what of each object every replica keeps in memory: only
// what the operator reads, and the strings that repeat across objects (namespaces,
// audiences, scopes, URLs, reasons, label values) once. With 100,000 clients the
// informer caches are most of the manager's heap (issue 21;
// BenchmarkCachedObjectMemory measures one object). Objects in the cache are only ever
// read: controller-runtime's client hands out deep copies, and the token server's
// store reads the informers' objects without changing them, so cached objects may
// share strings, byte slices and pointers.

// secretTransform prepares a Secret for the cache, keeping only what the operator reads
// (managed fields never). The signing-key Secret is kept whole. Of a Secret an
// OAuthClient controls: the credential keys (each within its limit,
// oauthv1alpha1.CredentialSecretKeyLimits), the operator's annotations and labels, the
// controller reference. Of any other labelled Secret: its metadata without annotations
// and data. Anyone who can write a Secret can give it the managed-by label and make an
// OAuthClient of theirs its controller; such a Secret then costs at most a few KiB in
// every replica, not up to a megabyte. The OAuthClient controller still sees its owner
// and reports a conflict; the token server never accepts credentials from it anyway.
func secretTransform(keySecret types.NamespacedName) toolscache.TransformFunc {
	strip := cache.TransformStripManagedFields()
	return func(obj any) (any, error) {
		obj, err := strip(obj)
		if err != nil {
			return obj, err
		}
		s, ok := obj.(*corev1.Secret)
		if !ok || (s.Namespace == keySecret.Namespace && s.Name == keySecret.Name) {
			return obj, nil
		}
		shareMeta(&s.TypeMeta, &s.ObjectMeta)
		if len(s.Type) > maxSecretTypeLength {
			s.Type = "" // no Secret the operator writes has such a type: it reports a conflict
		}
		s.Type = corev1.SecretType(intern(string(s.Type)))
		s.Labels = keep(s.Labels, oauthv1alpha1.ManagedByLabel, oauthv1alpha1.ClientLabel)
		if v, ok := s.Labels[oauthv1alpha1.ManagedByLabel]; ok {
			s.Labels[oauthv1alpha1.ManagedByLabel] = intern(v)
		}
		if v, ok := s.Labels[oauthv1alpha1.ClientLabel]; ok && v == s.Name {
			s.Labels[oauthv1alpha1.ClientLabel] = s.Name
		}
		s.StringData, s.Finalizers, s.GenerateName = nil, nil, ""
		owner := metav1.GetControllerOf(s)
		if oauthv1alpha1.SecretOwner(s) == "" {
			s.Data, s.Annotations, s.OwnerReferences = nil, nil, nil
			return s, nil
		}
		s.OwnerReferences = []metav1.OwnerReference{*owner}
		shareOwner(&s.OwnerReferences[0], s.Name)
		s.Annotations = keepWithin(s.Annotations, oauthv1alpha1.MaxCredentialAnnotationBytes, oauthv1alpha1.CredentialSecretAnnotations...)
		for k, v := range s.Annotations {
			s.Annotations[k] = intern(v) // times: a burst of clients shares them
		}
		s.Data = credentialData(s.Data)
		return s, nil
	}
}

// credentialData returns the credential keys of data within their limits, keyed by the
// operator's own key strings; the values the operator writes alike into every Secret
// (token_url, issuer) are shared. nil when none.
func credentialData(data map[string][]byte) map[string][]byte {
	n := 0
	for k, v := range data {
		if limit, ok := oauthv1alpha1.CredentialSecretKeyLimits[k]; ok && len(v) <= limit {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make(map[string][]byte, n)
	for k, limit := range oauthv1alpha1.CredentialSecretKeyLimits {
		if v, ok := data[k]; ok && len(v) <= limit {
			if k == oauthv1alpha1.SecretKeyTokenURL || k == oauthv1alpha1.SecretKeyIssuer {
				v = shareValue(v)
			}
			out[k] = v
		}
	}
	return out
}

// oauthClientTransform prepares an OAuthClient for the cache, keeping what the operator
// reads: the spec, the status, and of the metadata all but the labels (nobody reads an
// OAuthClient's labels), the managed fields and the annotations other than
// RotateSecretAnnotation (nobody reads them either; `kubectl apply` stores the whole
// object in one). A rotate-secret value longer than oauthv1alpha1.RotationTrigger keeps
// is kept as its record, which the controller compares and records the same way.
func oauthClientTransform() toolscache.TransformFunc {
	strip := cache.TransformStripManagedFields()
	return func(obj any) (any, error) {
		obj, err := strip(obj)
		if err != nil {
			return obj, err
		}
		oc, ok := obj.(*oauthv1alpha1.OAuthClient)
		if !ok {
			return obj, nil
		}
		shareMeta(&oc.TypeMeta, &oc.ObjectMeta)
		// Nobody reads an OAuthClient's labels, owners or finalizers; a tenant could pile
		// them up (thousands of labels: 380 KB an object).
		oc.Labels, oc.OwnerReferences, oc.Finalizers, oc.GenerateName = nil, nil, nil, ""
		if v, ok := oc.Annotations[oauthv1alpha1.RotateSecretAnnotation]; ok {
			oc.Annotations = map[string]string{oauthv1alpha1.RotateSecretAnnotation: oauthv1alpha1.RotationTrigger(v)}
		} else {
			oc.Annotations = nil
		}
		internAll(oc.Spec.Audiences)
		for i, s := range oc.Spec.Scopes {
			oc.Spec.Scopes[i] = oauthv1alpha1.Scope(intern(string(s)))
		}
		if oc.Spec.SecretName == oc.Name {
			oc.Spec.SecretName = oc.Name
		}
		st := &oc.Status
		if st.SecretName == oc.Name {
			st.SecretName = oc.Name
		}
		st.TokenURL = intern(st.TokenURL)
		for i := range st.Conditions {
			c := &st.Conditions[i]
			c.Type, c.Status, c.Reason = intern(c.Type), metav1.ConditionStatus(intern(string(c.Status))), intern(c.Reason)
		}
		return oc, nil
	}
}

// maxSecretTypeLength bounds the type kept of a Secret ("kubernetes.io/…" types are
// under 40 bytes); the API server sets no bound on a custom type.
const maxSecretTypeLength = 128

// objectTransform prepares every other object for the cache: without managed fields,
// and a ServiceAccount (cached as metadata) as its name, namespace and UID only: a
// tenant could pile labels and annotations on its ServiceAccounts (630 KB an object).
func objectTransform() toolscache.TransformFunc {
	strip := cache.TransformStripManagedFields()
	return func(obj any) (any, error) {
		obj, err := strip(obj)
		if err != nil {
			return obj, err
		}
		if o, ok := obj.(*metav1.PartialObjectMetadata); ok && o.Kind == "ServiceAccount" {
			shareMeta(&o.TypeMeta, &o.ObjectMeta)
			o.Labels, o.Annotations, o.OwnerReferences, o.Finalizers, o.GenerateName = nil, nil, nil, nil, ""
		}
		return obj, nil
	}
}

// maxInterned bounds the strings shared: tenants write some of them, and a shared
// string stays until its table starts afresh.
const maxInterned = 256

// intern returns s as one string shared by every object that holds it (a string longer
// than maxInterned, as it is).
func intern(s string) string {
	if s == "" || len(s) > maxInterned {
		return s
	}
	return sharedStrings.get(s, s)
}

// shareValue returns v as one slice shared by every Secret that holds it (a value longer
// than maxInterned, as it is: the table would keep a tenant's long values after their
// Secrets are gone).
func shareValue(v []byte) []byte {
	if len(v) == 0 || len(v) > maxInterned {
		return v
	}
	return sharedValues.get(string(v), v)
}

func internAll(s []string) {
	for i := range s {
		s[i] = intern(s[i])
	}
}

// shareMeta shares the metadata strings that repeat across objects: API version, kind
// and namespace.
func shareMeta(t *metav1.TypeMeta, m *metav1.ObjectMeta) {
	t.APIVersion, t.Kind = intern(t.APIVersion), intern(t.Kind)
	m.Namespace = intern(m.Namespace)
}

var (
	sharedTrue  = true
	sharedFalse = false
)

// shareOwner shares what an owner reference repeats: API version, kind, the flags, and
// the name when it is name.
func shareOwner(r *metav1.OwnerReference, name string) {
	r.APIVersion, r.Kind = intern(r.APIVersion), intern(r.Kind)
	if r.Name == name {
		r.Name = name
	}
	r.Controller, r.BlockOwnerDeletion = shareBool(r.Controller), shareBool(r.BlockOwnerDeletion)
}

func shareBool(b *bool) *bool {
	switch {
	case b == nil:
		return nil
	case *b:
		return &sharedTrue
	default:
		return &sharedFalse
	}
}

// sharedStrings and sharedValues hold the one copy of each string, and of each Secret
// value that repeats across clients (the token URL and the issuer), the cache shares.
// Tenants write some of them (namespaces, audiences, scopes, values): each table holds
// at most maxShared entries and starts afresh when full, so what is cached is shared
// again from then on and nothing grows without bound.
var (
	sharedStrings = &table[string]{m: map[string]string{}}
	sharedValues  = &table[[]byte]{m: map[string][]byte{}}
)

const maxShared = 4096

type table[V any] struct {
	mu sync.Mutex
	m  map[string]V
}

// get returns the shared copy of v, whose key is key.
func (t *table[V]) get(key string, v V) V {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.m[key]; ok {
		return s
	}
	if len(t.m) >= maxShared {
		clear(t.m)
	}
	t.m[key] = v
	return v
}

func (t *table[V]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// keep returns the entries of m under keys; nil when none.
func keep(m map[string]string, keys ...string) map[string]string {
	return keepWithin(m, -1, keys...)
}

// keepWithin returns the entries of m under keys whose values are at most limit bytes
// (any when limit < 0), keyed by the strings of keys, in a map of their size; nil when
// none.
func keepWithin(m map[string]string, limit int, keys ...string) map[string]string {
	n := 0
	for _, k := range keys {
		if v, ok := m[k]; ok && (limit < 0 || len(v) <= limit) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make(map[string]string, n)
	for _, k := range keys {
		if v, ok := m[k]; ok && (limit < 0 || len(v) <= limit) {
			out[k] = v
		}
	}
	return out
}
