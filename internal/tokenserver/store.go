package tokenserver

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/trust"
)

// Store is the State of the token endpoint, in memory: Set and Remove record the
// cluster's objects as they change (the informers call them in the operator; tests call
// them directly), and the State methods read it. It is safe for concurrent use.
type Store struct {
	clients    index[*Client]
	secrets    index[*Credentials]
	apis       index[*API]
	namespaces index[labels.Set]
	// serviceAccounts maps each ServiceAccount to its UID: a ServiceAccount token
	// names the UID it was issued for, and one of a deleted (or deleted and recreated)
	// ServiceAccount authenticates no one.
	serviceAccounts index[types.UID]

	// apiObjects are the OAuthAPIs as last seen, by name: whether one collides with
	// another depends on them all, so every API change rebuilds the API entries.
	apiMu      sync.Mutex
	apiObjects map[string]*oauthv1alpha1.OAuthAPI

	// trusted are the OAuthTrustedIssuers that exist, as their registry built them.
	trusted index[*trust.Issuer]
	// bySubject finds the clients with a token rule for a subject (see
	// ClientsWithSubject); guarded by subjectMu, which Set and Remove of clients hold.
	subjectMu sync.RWMutex
	bySubject map[string]map[types.NamespacedName]*Client
	// registry builds the trusted issuers; shared with the OAuthTrustedIssuer
	// controller in the operator (UseRegistry).
	registryMu sync.Mutex
	registry   *trust.Registry
}

var _ State = (*Store)(nil)

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{
		clients: newIndex[*Client](), secrets: newIndex[*Credentials](), apis: newIndex[*API](),
		namespaces: newIndex[labels.Set](), serviceAccounts: newIndex[types.UID](),
		apiObjects: map[string]*oauthv1alpha1.OAuthAPI{},
		trusted:    newIndex[*trust.Issuer](), bySubject: map[string]map[types.NamespacedName]*Client{},
	}
}

// UseRegistry makes the store build its trusted issuers with r (the operator's one
// registry, shared with the OAuthTrustedIssuer controller). Without it the store makes
// a registry of its own, with the defaults, at the first OAuthTrustedIssuer.
func (s *Store) UseRegistry(r *trust.Registry) {
	s.registryMu.Lock()
	defer s.registryMu.Unlock()
	s.registry = r
}

func (s *Store) trustRegistry() *trust.Registry {
	s.registryMu.Lock()
	defer s.registryMu.Unlock()
	if s.registry == nil {
		s.registry = trust.NewRegistry(trust.Options{})
	}
	return s.registry
}

// Set records obj as it is now: an OAuthClient, a Secret, an OAuthAPI, an
// OAuthTrustedIssuer, a Namespace or a ServiceAccount (the object or its metadata). It
// reports false, recording nothing, for any other kind.
func (s *Store) Set(obj metav1.Object) bool {
	key := keyOf(obj)
	switch o := obj.(type) {
	case *oauthv1alpha1.OAuthClient:
		s.setClient(key, newClient(o))
	case *oauthv1alpha1.OAuthTrustedIssuer:
		s.trusted.set(key, s.trustRegistry().Ensure(o))
	case *corev1.Secret:
		s.secrets.set(key, newCredentials(o))
	case *oauthv1alpha1.OAuthAPI:
		s.setAPI(o.Name, o)
	case *corev1.Namespace:
		s.namespaces.set(key, labels.Set(o.Labels))
	case *corev1.ServiceAccount:
		s.serviceAccounts.set(key, o.UID)
	case *metav1.PartialObjectMetadata:
		if o.Kind != "ServiceAccount" {
			return false
		}
		s.serviceAccounts.set(key, o.UID)
	default:
		return false
	}
	return true
}

// Remove forgets obj, of any kind Set records.
func (s *Store) Remove(obj metav1.Object) {
	key := keyOf(obj)
	switch o := obj.(type) {
	case *oauthv1alpha1.OAuthClient:
		s.setClient(key, nil)
	case *oauthv1alpha1.OAuthTrustedIssuer:
		s.trusted.remove(key)
		s.trustRegistry().Remove(o.Name, o.UID)
	case *corev1.Secret:
		s.secrets.remove(key)
	case *oauthv1alpha1.OAuthAPI:
		s.setAPI(o.Name, nil)
	case *corev1.Namespace:
		s.namespaces.remove(key)
	case *corev1.ServiceAccount:
		s.serviceAccounts.remove(key)
	case *metav1.PartialObjectMetadata:
		if o.Kind == "ServiceAccount" {
			s.serviceAccounts.remove(key)
		}
	}
}

// setAPI records the OAuthAPI name as a (nil: deleted) and rebuilds the entries of
// every API, with the audience collisions among them all.
func (s *Store) setAPI(name string, a *oauthv1alpha1.OAuthAPI) {
	s.apiMu.Lock()
	defer s.apiMu.Unlock()
	if a == nil {
		delete(s.apiObjects, name)
		s.apis.remove(types.NamespacedName{Name: name})
	} else {
		s.apiObjects[name] = a
	}
	all := make([]oauthv1alpha1.OAuthAPI, 0, len(s.apiObjects))
	for _, o := range s.apiObjects {
		all = append(all, *o)
	}
	conflicts := oauthv1alpha1.AudienceConflicts(all)
	for n, o := range s.apiObjects {
		s.apis.set(types.NamespacedName{Name: n}, newAPI(o, conflicts[n]))
	}
}

func keyOf(obj metav1.Object) types.NamespacedName {
	return types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// Client implements State.
func (s *Store) Client(namespace, name string) (*Client, *Credentials) {
	c, _ := s.clients.get(types.NamespacedName{Namespace: namespace, Name: name})
	if c == nil {
		return nil, nil
	}
	cred, _ := s.secrets.get(types.NamespacedName{Namespace: namespace, Name: c.secretName})
	return c, cred
}

// API implements State.
func (s *Store) API(name string) *API {
	a, _ := s.apis.get(types.NamespacedName{Name: name})
	return a
}

// Admits implements State. Admission reads only what administrators write: the
// OAuthAPI and the Namespace's labels.
func (s *Store) Admits(api *API, namespace string) bool {
	nsLabels, ok := s.namespaces.get(types.NamespacedName{Name: namespace})
	return ok && api.selector.Matches(nsLabels)
}

// ServiceAccountUID implements State.
func (s *Store) ServiceAccountUID(namespace, name string) (types.UID, bool) {
	return s.serviceAccounts.get(types.NamespacedName{Namespace: namespace, Name: name})
}

// Clients implements State.
func (s *Store) Clients() int { return s.clients.len() }

// setClient records the client key as c (nil: deleted), and the subjects of its token
// rules.
func (s *Store) setClient(key types.NamespacedName, c *Client) {
	s.subjectMu.Lock()
	defer s.subjectMu.Unlock()
	if old, ok := s.clients.get(key); ok {
		for _, r := range old.rules {
			delete(s.bySubject[r.subject], key)
			if len(s.bySubject[r.subject]) == 0 {
				delete(s.bySubject, r.subject)
			}
		}
	}
	if c == nil {
		s.clients.remove(key)
		return
	}
	s.clients.set(key, c)
	for _, r := range c.rules {
		if s.bySubject[r.subject] == nil {
			s.bySubject[r.subject] = map[types.NamespacedName]*Client{}
		}
		s.bySubject[r.subject][key] = c
	}
}

// TrustedIssuer implements State.
func (s *Store) TrustedIssuer(name string) *trust.Issuer {
	i, _ := s.trusted.get(types.NamespacedName{Name: name})
	return i
}

// AdmitsToIssuer implements State; like Admits, it reads only what administrators
// write.
func (s *Store) AdmitsToIssuer(issuer *trust.Issuer, namespace string) bool {
	nsLabels, ok := s.namespaces.get(types.NamespacedName{Name: namespace})
	return ok && issuer.Selector.Matches(nsLabels)
}

// ClientsWithSubject implements State.
func (s *Store) ClientsWithSubject(subject string) []*Client {
	s.subjectMu.RLock()
	defer s.subjectMu.RUnlock()
	out := make([]*Client, 0, len(s.bySubject[subject]))
	for _, c := range s.bySubject[subject] {
		out = append(out, c)
	}
	return out
}

// index is one kind of object, by namespace and name (cluster-scoped objects have no
// namespace).
type index[V any] struct {
	mu sync.RWMutex
	m  map[types.NamespacedName]V
}

func newIndex[V any]() index[V] { return index[V]{m: map[types.NamespacedName]V{}} }

func (i *index[V]) set(k types.NamespacedName, v V) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.m[k] = v
}

func (i *index[V]) remove(k types.NamespacedName) {
	i.mu.Lock()
	defer i.mu.Unlock()
	delete(i.m, k)
}

func (i *index[V]) get(k types.NamespacedName) (V, bool) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	v, ok := i.m[k]
	return v, ok
}

func (i *index[V]) len() int {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return len(i.m)
}
