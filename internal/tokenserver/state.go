package tokenserver

import (
	"crypto"
	"crypto/sha256"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
	"github.com/oauth-client-operator/oauth-client-operator/internal/trust"
)

// State is everything the token endpoint reads of the cluster: clients and the
// credential material of their Secrets, APIs, which namespaces they admit, and
// ServiceAccounts. Entries are prepared once per change (secret digests, scope sets,
// parsed selectors and keys) and immutable, so a token request costs a few map lookups
// and copies nothing.
//
// Store is the implementation: the informers feed it in the operator (package
// clusterstate), tests fill it directly.
type State interface {
	// Client returns the client namespace/name and the credential material of the
	// Secret it should control (nil when there is no such Secret); nil, nil when the
	// client does not exist.
	Client(namespace, name string) (*Client, *Credentials)
	// API returns the OAuthAPI of that name; nil when it does not exist.
	API(name string) *API
	// Admits reports whether api admits the namespace now: the namespace exists and
	// its labels match the API's allowedNamespaces.
	Admits(api *API, namespace string) bool
	// ServiceAccountUID returns the UID of the ServiceAccount namespace/name that
	// exists now.
	ServiceAccountUID(namespace, name string) (types.UID, bool)
	// Clients is the number of clients known.
	Clients() int
	// TrustedIssuer returns the OAuthTrustedIssuer name as built for verifying its
	// tokens; nil when it does not exist.
	TrustedIssuer(name string) *trust.Issuer
	// AdmitsToIssuer reports whether the trusted issuer admits the namespace now: the
	// namespace exists and its labels match the issuer's allowedNamespaces.
	AdmitsToIssuer(issuer *trust.Issuer, namespace string) bool
	// ClientsWithSubject returns the clients with a token rule (FederatedToken rules,
	// and the one rule of a ServiceAccountToken client) for subject: those a token
	// with that `sub` may authenticate.
	ClientsWithSubject(subject string) []*Client
}

// Client is what the token endpoint knows of an OAuthClient.
type Client struct {
	uid        types.UID
	clientID   string
	namespace  string
	name       string
	secretName string
	disabled   bool
	// method is how the client authenticates; its authenticator reads the material
	// below or in the client's Credentials.
	method oauthv1alpha1.AuthenticationMethod
	// subject is the `sub` of the ServiceAccount tokens that authenticate a
	// ServiceAccountToken client, and serviceAccount that ServiceAccount's name.
	subject, serviceAccount string
	// rules are the token rules of a FederatedToken client, or the one rule of a
	// ServiceAccountToken client (against the local cluster's issuer): a token that
	// satisfies one authenticates the client.
	rules []tokenRule
	// keys are the usable spec.authentication.publicKeys of a PrivateKeyJWT client that
	// names its own; generatesKey is true when its key pair is in its Secret instead.
	keys         []clientKey
	generatesKey bool
	audiences    []string
	// scopeList are the client's scopes in spec order, at most 64 (the CRD's limit):
	// a slice costs a few bytes a client where a set cost hundreds (issue 21).
	scopeList []string
	ttl       time.Duration
	// perMinute and burst are the client's own request limit; 0 when it has none.
	perMinute, burst int
	// gracePeriod is how long after a rotation the previous credential of its Secret
	// works (spec.secretRotation.gracePeriod).
	gracePeriod time.Duration
	// requireDPoP: every token of the client is DPoP-bound (spec.requireDPoP).
	requireDPoP bool
}

// Credentials is the credential material of a client's Secret.
type Credentials struct {
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

// tokenRule is one token rule of a client: a token of issuer with this subject and
// these claims (exact strings) authenticates it.
type tokenRule struct {
	// issuer names an OAuthTrustedIssuer, or is localIssuer: the cluster's own
	// ServiceAccount issuer.
	issuer  string
	subject string
	claims  map[string]string
}

// localIssuer names the cluster's ServiceAccount issuer in a tokenRule: "" is no
// object's name.
const localIssuer = ""

// API is what the token endpoint knows of an OAuthAPI.
type API struct {
	name     string
	audience string
	// conflicts names the other OAuthAPIs with the same audience
	// (oauthv1alpha1.AudienceConflicts): while there are any, no token is issued for
	// it, as a resource server could not tell the APIs' tokens apart.
	conflicts []string
	scopes    map[string]bool
	ttl       time.Duration
	// selector selects the namespaces the API admits (see
	// AllowedNamespaces.NamespaceSelector).
	selector labels.Selector
	// requireDPoP: every token for the API is DPoP-bound (spec.requireDPoP).
	requireDPoP bool
}

// clientKey is a public key that verifies a PrivateKeyJWT client's assertions.
type clientKey struct {
	// kid is its RFC 7638 thumbprint.
	kid string
	pub crypto.PublicKey
}

// hasScope reports whether the client may be granted scope.
func (c *Client) hasScope(scope string) bool { return slices.Contains(c.scopeList, scope) }

// previousValid reports whether the previous credential of stored (secret or public
// key) still authenticates c at now: from the rotation time until the earlier of the
// expiry annotation and the rotation time plus c's grace period. Whatever the
// annotations say, it never works longer than the grace period after the rotation
// they name, nor before that rotation.
func previousValid(c *Client, stored *Credentials, now time.Time) bool {
	if stored.rotatedAt.IsZero() || now.Before(stored.rotatedAt) {
		return false
	}
	return now.Before(stored.previousUntil) && now.Before(stored.rotatedAt.Add(c.gracePeriod))
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

// newClient prepares the entry of an OAuthClient.
func newClient(oc *oauthv1alpha1.OAuthClient) *Client {
	e := &Client{
		uid: oc.UID, clientID: oc.ClientID(), namespace: oc.Namespace, name: oc.Name, secretName: oc.EffectiveSecretName(),
		disabled: oc.Spec.Disabled || !oc.DeletionTimestamp.IsZero(), requireDPoP: oc.Spec.RequireDPoP,
		method: oc.AuthMethod(), subject: oc.ServiceAccountSubject(),
		audiences: append([]string(nil), oc.Spec.Audiences...),
	}
	if len(oc.Spec.Scopes) > 0 {
		e.scopeList = make([]string, len(oc.Spec.Scopes))
		for i, s := range oc.Spec.Scopes {
			e.scopeList[i] = string(s)
		}
	}
	if oc.Spec.AccessTokenTTL != nil {
		e.ttl = oc.Spec.AccessTokenTTL.Duration
	}
	if e.subject != "" {
		e.serviceAccount = oc.Spec.Authentication.ServiceAccountName
		e.rules = []tokenRule{{issuer: localIssuer, subject: e.subject}}
	}
	for _, r := range oc.FederatedRules() {
		// A rule names an OAuthTrustedIssuer; never, whatever the object says, the
		// local issuer, whose rule only the ServiceAccountToken method makes (with its
		// namespace in the subject). The CRD refuses an empty issuer too.
		if r.Issuer == localIssuer || r.Subject == "" {
			continue
		}
		e.rules = append(e.rules, tokenRule{issuer: r.Issuer, subject: r.Subject, claims: maps.Clone(r.Claims)})
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
	e.gracePeriod = oc.SecretGracePeriod()
	if rl := oc.Spec.RateLimit; rl != nil && rl.RequestsPerMinute > 0 {
		e.perMinute, e.burst = int(rl.RequestsPerMinute), int(rl.Burst)
		if e.burst <= 0 {
			e.burst = e.perMinute
		}
	}
	return e
}

// newCredentials prepares the credential material of a Secret.
func newCredentials(s *corev1.Secret) *Credentials {
	// Only a Secret an OAuthClient controls can authenticate it; the token server
	// checks that the owner is the client the client_id names.
	e := &Credentials{owner: oauthv1alpha1.SecretOwner(s)}
	// A secret shorter than a generated one was not generated by the operator (the
	// controller replaces it): never accepted, current or previous.
	if v := s.Data[oauthv1alpha1.SecretKeyClientSecret]; len(v) >= oauthv1alpha1.MinClientSecretLength {
		e.digest, e.ok = sha256.Sum256(v), true
	}
	times := oauthv1alpha1.ReadRotationTimes(s)
	// Without both times no previous credential is accepted.
	rotation := !times.RotatedAt.IsZero() && !times.PreviousExpiresAt.IsZero()
	if rotation {
		e.previousUntil, e.rotatedAt = times.PreviousExpiresAt, times.RotatedAt
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
	return e
}

// newAPI prepares the entry of an OAuthAPI, which shares its audience with the
// OAuthAPIs conflicts names.
func newAPI(a *oauthv1alpha1.OAuthAPI, conflicts []string) *API {
	e := &API{name: a.Name, audience: a.EffectiveAudience(), conflicts: conflicts, scopes: make(map[string]bool, len(a.Spec.Scopes)),
		requireDPoP: a.Spec.RequireDPoP}
	for _, s := range a.Spec.Scopes {
		e.scopes[string(s)] = true
	}
	if a.Spec.AccessTokenTTL != nil {
		e.ttl = a.Spec.AccessTokenTTL.Duration
	}
	// An invalid selector admits nothing.
	e.selector, _ = a.Spec.AllowedNamespaces.NamespaceSelector()
	return e
}
