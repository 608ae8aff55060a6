package tokenserver

import (
	"context"
	"crypto"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// registry is what the token endpoint needs from the cluster, kept up to date by the
// manager's informers and prepared once per change: secret digests, scope sets, parsed
// selectors. A token request then costs a few map lookups, whatever the number of
// clients, and copies nothing.
type registry struct {
	mu         sync.RWMutex
	clients    map[types.NamespacedName]*clientEntry
	secrets    map[types.NamespacedName]*secretEntry
	apis       map[string]*apiEntry
	namespaces map[string]labels.Set
	// serviceAccounts maps each ServiceAccount (metadata only) to its UID: a
	// ServiceAccount token names the UID it was issued for, and one of a deleted (or
	// deleted and recreated) ServiceAccount authenticates no one.
	serviceAccounts map[types.NamespacedName]types.UID
	// versions records the resourceVersion last indexed per object, for tests and
	// diagnostics.
	versions map[string]string

	// registrations are the informer handlers, set once by watch; synced reads them
	// from the readiness probe's goroutine.
	registrations atomic.Pointer[[]toolscache.ResourceEventHandlerRegistration]
}

type clientEntry struct {
	uid        types.UID
	clientID   string
	namespace  string
	secretName string
	disabled   bool
	// method is how the client authenticates; its authenticator reads the material
	// below or in the client's secretEntry.
	method oauthv1alpha1.AuthenticationMethod
	// subject is the `sub` of the ServiceAccount tokens that authenticate a
	// ServiceAccountToken client, and serviceAccount that ServiceAccount's name.
	subject, serviceAccount string
	// keys are the usable spec.authentication.publicKeys of a PrivateKeyJWT client that
	// names its own; generatesKey is true when its key pair is in its Secret instead.
	keys         []clientKey
	generatesKey bool
	audiences    []string
	scopes       map[string]bool
	scopeList    []string
	ttl          time.Duration
	// perMinute and burst are the client's own request limit; 0 when it has none.
	perMinute, burst int
	// gracePeriod is how long after a rotation the previous credential of its Secret
	// works (spec.secretRotation.gracePeriod).
	gracePeriod time.Duration
}

type secretEntry struct {
	// owner is the UID of the OAuthClient that controls the Secret, if any.
	owner  types.UID
	digest [sha256.Size]byte
	ok     bool
	// previous is the digest of the secret before the last rotation, set only when
	// that secret is as long as a generated one; it and previousKey are accepted from
	// rotatedAt until previousUntil and the client's grace period after rotatedAt
	// have both passed (see previousValid).
	previous      [sha256.Size]byte
	hasPrevious   bool
	previousUntil time.Time
	rotatedAt     time.Time
	// key is the public key of a PrivateKeyJWT client's generated key pair, and
	// previousKey the one before the last rotation (accepted until previousUntil).
	key, previousKey *clientKey
}

// previousValid reports whether the previous credential of stored (secret or public
// key) still authenticates c at now: from the rotation time until the earlier of the
// expiry annotation and the rotation time plus c's grace period. Whatever the
// annotations say, it never works longer than the grace period after the rotation
// they name, nor before that rotation.
func previousValid(c *clientEntry, stored *secretEntry, now time.Time) bool {
	if stored.rotatedAt.IsZero() || now.Before(stored.rotatedAt) {
		return false
	}
	return now.Before(stored.previousUntil) && now.Before(stored.rotatedAt.Add(c.gracePeriod))
}

// clientKey is a public key that verifies a PrivateKeyJWT client's assertions.
type clientKey struct {
	// kid is its RFC 7638 thumbprint.
	kid string
	pub crypto.PublicKey
}

// newClientKey makes a clientKey of pub, or nil when pub cannot verify assertions.
func newClientKey(pub crypto.PublicKey) *clientKey {
	if signing.CheckClientKey(pub) != nil {
		return nil
	}
	kid, err := signing.Thumbprint(pub)
	if err != nil {
		return nil
	}
	return &clientKey{kid: kid, pub: pub}
}

type apiEntry struct {
	// issued counts the tokens issued for this API (oauth_tokens_issued_total).
	issued   prometheus.Counter
	name     string
	audience string
	scopes   map[string]bool
	ttl      time.Duration
	// selector selects the namespaces the API admits (see
	// AllowedNamespaces.NamespaceSelector).
	selector labels.Selector
}

func newRegistry() *registry {
	return &registry{
		clients:         map[types.NamespacedName]*clientEntry{},
		secrets:         map[types.NamespacedName]*secretEntry{},
		apis:            map[string]*apiEntry{},
		namespaces:      map[string]labels.Set{},
		serviceAccounts: map[types.NamespacedName]types.UID{},
		versions:        map[string]string{},
	}
}

// watch registers the registry's handlers on the informers of the four kinds.
func (r *registry) watch(ctx context.Context, informers cache.Informers) error {
	kinds := []struct {
		obj    client.Object
		set    func(client.Object)
		remove func(client.Object)
	}{
		{&oauthv1alpha1.OAuthClient{}, r.setClient, r.removeClient},
		{&corev1.Secret{}, r.setSecret, r.removeSecret},
		{&oauthv1alpha1.OAuthAPI{}, r.setAPI, r.removeAPI},
		{&corev1.Namespace{}, r.setNamespace, r.removeNamespace},
		{serviceAccountMetadata(), r.setServiceAccount, r.removeServiceAccount},
	}
	var regs []toolscache.ResourceEventHandlerRegistration
	for _, k := range kinds {
		inf, err := informers.GetInformer(ctx, k.obj)
		if err != nil {
			return fmt.Errorf("watch %T: %w", k.obj, err)
		}
		set, remove := k.set, k.remove
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { apply(o, set) },
			UpdateFunc: func(_, o any) { apply(o, set) },
			DeleteFunc: func(o any) { apply(o, remove) },
		})
		if err != nil {
			return fmt.Errorf("watch %T: %w", k.obj, err)
		}
		regs = append(regs, reg)
	}
	r.registrations.Store(&regs)
	return nil
}

// synced reports whether every handler has seen the informers' initial lists.
func (r *registry) synced() bool {
	regs := r.registrations.Load()
	if regs == nil || len(*regs) == 0 {
		return false
	}
	for _, reg := range *regs {
		if !reg.HasSynced() {
			return false
		}
	}
	return true
}

func apply(o any, f func(client.Object)) {
	if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = tomb.Obj
	}
	if obj, ok := o.(client.Object); ok {
		f(obj)
	}
}

func versionKey(obj client.Object) string {
	return fmt.Sprintf("%T/%s/%s", obj, obj.GetNamespace(), obj.GetName())
}

func (r *registry) setClient(obj client.Object) {
	oc := obj.(*oauthv1alpha1.OAuthClient)
	e := &clientEntry{
		uid: oc.UID, clientID: oc.ClientID(), namespace: oc.Namespace, secretName: oc.EffectiveSecretName(),
		disabled: oc.Spec.Disabled || !oc.DeletionTimestamp.IsZero(),
		method:   oc.AuthMethod(), subject: oc.ServiceAccountSubject(),
		audiences: append([]string(nil), oc.Spec.Audiences...),
		scopes:    make(map[string]bool, len(oc.Spec.Scopes)),
	}
	for _, s := range oc.Spec.Scopes {
		e.scopes[string(s)] = true
		e.scopeList = append(e.scopeList, string(s))
	}
	if oc.Spec.AccessTokenTTL != nil {
		e.ttl = oc.Spec.AccessTokenTTL.Duration
	}
	if e.subject != "" {
		e.serviceAccount = oc.Spec.Authentication.ServiceAccountName
	}
	if oc.AuthMethod() == oauthv1alpha1.AuthPrivateKeyJWT {
		e.generatesKey = oc.GeneratesKey()
		for _, p := range oc.Spec.Authentication.PublicKeys {
			// An unusable key is skipped here; the controller reports it.
			if pub, err := signing.ParsePublicKeyPEM(p); err == nil {
				if k := newClientKey(pub); k != nil {
					e.keys = append(e.keys, *k)
				}
			}
		}
	}
	e.gracePeriod = oauthv1alpha1.DefaultSecretGracePeriod
	if r := oc.Spec.SecretRotation; r != nil && r.GracePeriod != nil {
		e.gracePeriod = r.GracePeriod.Duration
	}
	if rl := oc.Spec.RateLimit; rl != nil && rl.RequestsPerMinute > 0 {
		e.perMinute, e.burst = int(rl.RequestsPerMinute), int(rl.Burst)
		if e.burst <= 0 {
			e.burst = e.perMinute
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clients[client.ObjectKeyFromObject(oc)] = e
	r.versions[versionKey(obj)] = obj.GetResourceVersion()
}

func (r *registry) removeClient(obj client.Object) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.clients, client.ObjectKeyFromObject(obj))
	delete(r.versions, versionKey(obj))
}

func (r *registry) setSecret(obj client.Object) {
	s := obj.(*corev1.Secret)
	// Only a Secret an OAuthClient controls can authenticate it; the token server
	// checks that the owner is the client the client_id names.
	e := &secretEntry{owner: oauthv1alpha1.SecretOwner(s)}
	// A secret shorter than a generated one was not generated by the operator (the
	// controller replaces it): never accepted, current or previous.
	if v := s.Data[oauthv1alpha1.SecretKeyClientSecret]; len(v) >= oauthv1alpha1.MinClientSecretLength {
		e.digest, e.ok = sha256.Sum256(v), true
	}
	until, untilErr := time.Parse(time.RFC3339, s.Annotations[oauthv1alpha1.PreviousSecretExpiresAnnotation])
	rotated, rotatedErr := time.Parse(time.RFC3339, s.Annotations[oauthv1alpha1.SecretRotatedAtAnnotation])
	// Without both times no previous credential is accepted.
	rotation := untilErr == nil && rotatedErr == nil
	if rotation {
		e.previousUntil, e.rotatedAt = until, rotated
	}
	if v := s.Data[oauthv1alpha1.SecretKeyPreviousClientSecret]; len(v) >= oauthv1alpha1.MinClientSecretLength && rotation {
		e.previous, e.hasPrevious = sha256.Sum256(v), true
	}
	if v := s.Data[oauthv1alpha1.SecretKeyPrivateKey]; len(v) > 0 {
		if pub, _, err := signing.ParseClientPrivateKey(string(v)); err == nil {
			e.key = newClientKey(pub)
		}
	}
	if v := s.Data[oauthv1alpha1.SecretKeyPreviousPublicKey]; len(v) > 0 && rotation {
		if pub, err := signing.ParsePublicKeyPEM(string(v)); err == nil {
			e.previousKey = newClientKey(pub)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets[client.ObjectKeyFromObject(s)] = e
	r.versions[versionKey(obj)] = obj.GetResourceVersion()
}

func (r *registry) removeSecret(obj client.Object) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.secrets, client.ObjectKeyFromObject(obj))
	delete(r.versions, versionKey(obj))
}

func (r *registry) setAPI(obj client.Object) {
	a := obj.(*oauthv1alpha1.OAuthAPI)
	e := &apiEntry{
		issued: tokensIssued.WithLabelValues(a.EffectiveAudience()),
		name:   a.Name, audience: a.EffectiveAudience(), scopes: make(map[string]bool, len(a.Spec.Scopes)),
	}
	for _, s := range a.Spec.Scopes {
		e.scopes[string(s)] = true
	}
	if a.Spec.AccessTokenTTL != nil {
		e.ttl = a.Spec.AccessTokenTTL.Duration
	}
	// An invalid selector admits nothing.
	e.selector, _ = a.Spec.AllowedNamespaces.NamespaceSelector()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.apis[a.Name] = e
	r.versions[versionKey(obj)] = obj.GetResourceVersion()
}

func (r *registry) removeAPI(obj client.Object) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.apis, obj.GetName())
	delete(r.versions, versionKey(obj))
}

// serviceAccountMetadata is the metadata-only form of a ServiceAccount, as cached.
func serviceAccountMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	return m
}

func (r *registry) setServiceAccount(obj client.Object) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.serviceAccounts[client.ObjectKeyFromObject(obj)] = obj.GetUID()
	r.versions[versionKey(obj)] = obj.GetResourceVersion()
}

func (r *registry) removeServiceAccount(obj client.Object) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.serviceAccounts, client.ObjectKeyFromObject(obj))
	delete(r.versions, versionKey(obj))
}

// serviceAccountUID is the UID of the ServiceAccount namespace/name that exists now.
func (r *registry) serviceAccountUID(namespace, name string) (types.UID, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	uid, ok := r.serviceAccounts[types.NamespacedName{Namespace: namespace, Name: name}]
	return uid, ok
}

func (r *registry) setNamespace(obj client.Object) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.namespaces[obj.GetName()] = labels.Set(obj.GetLabels())
	r.versions[versionKey(obj)] = obj.GetResourceVersion()
}

func (r *registry) removeNamespace(obj client.Object) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.namespaces, obj.GetName())
	delete(r.versions, versionKey(obj))
}

// indexed reports whether the registry has seen obj at its resourceVersion.
func (r *registry) indexed(obj client.Object) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.versions[versionKey(obj)] == obj.GetResourceVersion()
}

// credentials returns the client a client_id names and the Secret it should control.
// Entries are immutable, so they are safe to use after the lock is released.
func (r *registry) credentials(namespace, name string) (*clientEntry, *secretEntry) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c := r.clients[types.NamespacedName{Namespace: namespace, Name: name}]
	if c == nil {
		return nil, nil
	}
	return c, r.secrets[types.NamespacedName{Namespace: namespace, Name: c.secretName}]
}

// api returns the API of that name and whether it admits the namespace now.
func (r *registry) api(name, namespace string) (*apiEntry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a := r.apis[name]
	if a == nil {
		return nil, false
	}
	nsLabels, ok := r.namespaces[namespace]
	return a, ok && a.selector.Matches(nsLabels)
}

func (r *registry) clientCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.clients)
}
