package v1alpha1

import (
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reasons of the Ready condition of an OAuthClient.
const (
	// ReasonReady: the Secret holds current credentials and every audience admits the client.
	ReasonReady = "Ready"
	// ReasonSecretConflict: a Secret of the wanted name exists and this client does not control it.
	ReasonSecretConflict = "SecretConflict"
	// ReasonAudienceNotAllowed: an audience names a missing OAuthAPI, or one that does not
	// admit the client's namespace.
	ReasonAudienceNotAllowed = "AudienceNotAllowed"
	// ReasonDisabled: spec.disabled is true; credentials are kept, no tokens are issued.
	ReasonDisabled = "Disabled"
	// ReasonReconcileError: the operator failed to reconcile the client; it retries.
	ReasonReconcileError = "ReconcileError"
	// ReasonInvalidPublicKey: an entry of spec.authentication.publicKeys cannot be used.
	ReasonInvalidPublicKey = "InvalidPublicKey"
	// ReasonCredentialDeferred: the client has no Secret and a new credential is held
	// back until its generation budget refills (the Secret was deleted or changed too
	// often).
	ReasonCredentialDeferred = "CredentialDeferred"
	// ReasonFederatedRuleNotAllowed: a rule of spec.authentication.federated names an
	// OAuthTrustedIssuer that does not exist, does not admit the client's namespace, or
	// whose requiredClientClaims the rule does not pin.
	ReasonFederatedRuleNotAllowed = "FederatedRuleNotAllowed"
)

// OAuthClientSpec is the desired state of a machine-to-machine OAuth client.
// +kubebuilder:validation:XValidation:rule="has(self.secretName) == has(oldSelf.secretName) && (!has(self.secretName) || self.secretName == oldSelf.secretName)",message="secretName is immutable"
type OAuthClientSpec struct {
	// Audiences are the names of the OAuthAPIs this client may obtain tokens for.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Audiences []DNSSubdomain `json:"audiences"`

	// Scopes the client may request. Each must also be defined by the API a token is
	// issued for. Empty: the client gets tokens without scopes.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	Scopes []Scope `json:"scopes,omitempty"`

	// AccessTokenTTL shortens the lifetime of this client's tokens. It never lengthens
	// the lifetime the API (or the server default) allows.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="accessTokenTTL must be a positive duration"
	AccessTokenTTL *metav1.Duration `json:"accessTokenTTL,omitempty"`

	// SecretName is the name of the Secret that receives the credentials, in the
	// client's namespace. Defaults to the client's name. Immutable.
	// +optional
	SecretName DNSSubdomain `json:"secretName,omitempty"`

	// Disabled stops the token server from issuing new tokens to this client. The
	// credentials are kept, so re-enabling needs no redistribution.
	// +optional
	Disabled bool `json:"disabled,omitempty"`

	// SecretRotation rotates the client secret automatically. Setting the annotation
	// oauth.operator.dev/rotate-secret to a new value rotates it once, with or without
	// this field.
	// +optional
	SecretRotation *SecretRotation `json:"secretRotation,omitempty"`

	// RateLimit caps how often this client may obtain tokens; requests beyond it get
	// 429 with Retry-After. Unset: no per-client limit. A client caches its token until
	// it expires, so a small limit suits well-behaved clients.
	// +optional
	RateLimit *ClientRateLimit `json:"rateLimit,omitempty"`

	// Authentication says how the client proves who it is at the token endpoint.
	// Unset: with a generated client secret (method ClientSecret).
	// +optional
	Authentication *ClientAuthentication `json:"authentication,omitempty"`

	// RequireDPoP makes every token of this client sender-constrained (RFC 9449
	// dpop_bound_access_tokens): a token request without a valid DPoP proof is
	// refused (400 invalid_dpop_proof), so no bearer token of this client exists.
	// Default false: a proof is optional, and a request with one gets a DPoP-bound
	// token all the same.
	// +optional
	RequireDPoP bool `json:"requireDPoP,omitempty"`
}

// AuthenticationMethod is how a client authenticates at the token endpoint.
// +kubebuilder:validation:Enum=ClientSecret;ServiceAccountToken;PrivateKeyJWT;FederatedToken
type AuthenticationMethod string

const (
	// AuthClientSecret: the operator generates a client secret into the client's
	// Secret; the client sends it (in the body, or by HTTP Basic).
	AuthClientSecret AuthenticationMethod = "ClientSecret"
	// AuthServiceAccountToken: the client sends a projected Kubernetes ServiceAccount
	// token of its namespace as an RFC 7523 client assertion; no shared secret exists.
	AuthServiceAccountToken AuthenticationMethod = "ServiceAccountToken"
	// AuthPrivateKeyJWT: the client signs an RFC 7523 assertion with a private key
	// that never leaves it (private_key_jwt); the operator generates the key pair into
	// the client's Secret, or the client names its own public keys.
	AuthPrivateKeyJWT AuthenticationMethod = "PrivateKeyJWT"
	// AuthFederatedToken: the client sends a JWT of a trusted external issuer
	// (OAuthTrustedIssuer: another cluster's ServiceAccount issuer, a CI system, SPIRE)
	// that one of its rules (spec.authentication.federated) matches; no shared secret
	// exists.
	AuthFederatedToken AuthenticationMethod = "FederatedToken"
)

// ClientAuthentication configures how a client authenticates. Changing the method
// takes effect at once.
// +kubebuilder:validation:XValidation:rule="self.method != 'ServiceAccountToken' || has(self.serviceAccountName)",message="serviceAccountName is required when method is ServiceAccountToken"
// +kubebuilder:validation:XValidation:rule="self.method == 'ServiceAccountToken' || !has(self.serviceAccountName)",message="serviceAccountName may only be set when method is ServiceAccountToken"
// +kubebuilder:validation:XValidation:rule="self.method == 'PrivateKeyJWT' || !has(self.publicKeys)",message="publicKeys may only be set when method is PrivateKeyJWT"
// +kubebuilder:validation:XValidation:rule="self.method != 'FederatedToken' || has(self.federated)",message="federated is required when method is FederatedToken"
// +kubebuilder:validation:XValidation:rule="self.method == 'FederatedToken' || !has(self.federated)",message="federated may only be set when method is FederatedToken"
type ClientAuthentication struct {
	// Method is ClientSecret (a generated secret), ServiceAccountToken (the pod's
	// projected ServiceAccount token, no secret at all), PrivateKeyJWT (assertions
	// signed with the client's private key) or FederatedToken (a JWT of a trusted
	// external issuer: another cluster, a CI job, SPIRE).
	// +optional
	// +kubebuilder:default=ClientSecret
	Method AuthenticationMethod `json:"method,omitempty"`

	// ServiceAccountName is the ServiceAccount, in the client's own namespace, whose
	// tokens authenticate this client. Required for ServiceAccountToken, forbidden
	// otherwise. The ServiceAccount may be created after the client.
	// +optional
	// +kubebuilder:validation:MinLength=1
	ServiceAccountName DNSSubdomain `json:"serviceAccountName,omitempty"`

	// PublicKeys are the PEM public keys ("-----BEGIN PUBLIC KEY-----": EC P-256, RSA of
	// at least 2048 bits, or Ed25519) whose private halves the client holds, for
	// PrivateKeyJWT only. Unset: the operator generates a key pair into the client's
	// Secret (private_key, key_id) and rotates it like a secret. A key that cannot be
	// used makes the client not Ready (reason InvalidPublicKey).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.trim().startsWith('-----BEGIN PUBLIC KEY-----') && k.trim().endsWith('-----END PUBLIC KEY-----'))",message="each public key must be a PEM block of type PUBLIC KEY"
	PublicKeys []string `json:"publicKeys,omitempty"`

	// Federated are the rules of a FederatedToken client, required for it and
	// forbidden otherwise: a token of the OAuthTrustedIssuer a rule names, with the
	// rule's subject and claims, authenticates the client. Any rule may match. The
	// client is Ready only when each named issuer exists, admits the client's
	// namespace, and the rule pins the issuer's requiredClientClaims (reason
	// FederatedRuleNotAllowed names the rule otherwise).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Federated []FederatedRule `json:"federated,omitempty"`
}

// ClientRateLimit is a token-bucket limit on a client's token requests, per token-server
// replica.
type ClientRateLimit struct {
	// RequestsPerMinute is the sustained rate.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600000
	RequestsPerMinute int32 `json:"requestsPerMinute"`

	// Burst is how many requests may come at once. Default: requestsPerMinute.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600000
	Burst int32 `json:"burst,omitempty"`
}

// SecretRotation configures client-secret rotation.
type SecretRotation struct {
	// Interval rotates the secret automatically this long after the last rotation.
	// Unset: only the annotation rotates it. At least 1m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="interval must be at least 1m"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// GracePeriod is how long the previous secret keeps working after a rotation, so
	// workloads can pick up the new one. Default 24h; 0 ends it at once.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="gracePeriod must not be negative"
	GracePeriod *metav1.Duration `json:"gracePeriod,omitempty"`
}

// OAuthClientStatus is the observed state of an OAuthClient.
type OAuthClientStatus struct {
	// ClientID is the client's OAuth client_id: "<namespace>.<name>".
	// +optional
	ClientID string `json:"clientID,omitempty"`

	// SecretName is the Secret that holds the client's credentials.
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// TokenURL is where the client requests tokens.
	// +optional
	TokenURL string `json:"tokenURL,omitempty"`

	// LastSecretRotationTime is when the current client secret was generated.
	// +optional
	LastSecretRotationTime *metav1.Time `json:"lastSecretRotationTime,omitempty"`

	// NextSecretRotationTime is when the secret rotates next (with an interval only).
	// +optional
	NextSecretRotationTime *metav1.Time `json:"nextSecretRotationTime,omitempty"`

	// PreviousSecretExpiryTime is when the previous secret, kept after a rotation,
	// stops working.
	// +optional
	PreviousSecretExpiryTime *metav1.Time `json:"previousSecretExpiryTime,omitempty"`

	// ObservedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions describe the client's state. Ready is True when the Secret holds the
	// credentials and every audience admits the client's namespace.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// OAuthClient is a machine-to-machine OAuth 2.0 client. The operator writes its
// credentials into a Secret; the token server issues it tokens by the
// client-credentials grant.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=oac,categories=oauth
// +kubebuilder:printcolumn:name="Client ID",type=string,JSONPath=`.status.clientID`
// +kubebuilder:printcolumn:name="Audiences",type=string,JSONPath=`.spec.audiences`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.status.secretName`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type OAuthClient struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state of the client.
	// +required
	Spec OAuthClientSpec `json:"spec"`
	// Status is the observed state of the client.
	// +optional
	Status OAuthClientStatus `json:"status,omitempty"`
}

// OAuthClientList is a list of OAuthClients.
// +kubebuilder:object:root=true
type OAuthClientList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the OAuthClients.
	Items []OAuthClient `json:"items"`
}

// ClientID returns the OAuth client_id of the client: "<namespace>.<name>".
func (c *OAuthClient) ClientID() string { return ClientID(c.Namespace, c.Name) }

// EffectiveSecretName is spec.secretName, or the client's name.
func (c *OAuthClient) EffectiveSecretName() string {
	if c.Spec.SecretName != "" {
		return c.Spec.SecretName
	}
	return c.Name
}

// HasScope reports whether the client may request scope s.
func (c *OAuthClient) HasScope(s string) bool {
	for _, v := range c.Spec.Scopes {
		if string(v) == s {
			return true
		}
	}
	return false
}

// AuthMethod is the client's authentication method: spec.authentication.method, or
// ClientSecret when unset.
func (c *OAuthClient) AuthMethod() AuthenticationMethod {
	if a := c.Spec.Authentication; a != nil && a.Method != "" {
		return a.Method
	}
	return AuthClientSecret
}

// SecretGracePeriod is how long the previous credential (client secret or public key)
// keeps working after a rotation: spec.secretRotation.gracePeriod, or
// DefaultSecretGracePeriod when unset.
func (c *OAuthClient) SecretGracePeriod() time.Duration {
	if r := c.Spec.SecretRotation; r != nil && r.GracePeriod != nil {
		return r.GracePeriod.Duration
	}
	return DefaultSecretGracePeriod
}

// SecretRotationInterval is how long after the last rotation the credential rotates
// again on its own: spec.secretRotation.interval; 0 when unset (only the rotate-secret
// annotation rotates it).
func (c *OAuthClient) SecretRotationInterval() time.Duration {
	if r := c.Spec.SecretRotation; r != nil && r.Interval != nil {
		return r.Interval.Duration
	}
	return 0
}

// GeneratesKey reports whether the operator generates the client's key pair: method
// PrivateKeyJWT without publicKeys.
func (c *OAuthClient) GeneratesKey() bool {
	return c.AuthMethod() == AuthPrivateKeyJWT && len(c.Spec.Authentication.PublicKeys) == 0
}

// ServiceAccountSubject is the `sub` claim of the ServiceAccount tokens that
// authenticate a ServiceAccountToken client; "" for other methods.
func (c *OAuthClient) ServiceAccountSubject() string {
	if c.AuthMethod() != AuthServiceAccountToken {
		return ""
	}
	return ServiceAccountSubject(c.Namespace, c.Spec.Authentication.ServiceAccountName)
}

// ServiceAccountSubject is the subject of tokens of the ServiceAccount namespace/name,
// as Kubernetes writes it.
func ServiceAccountSubject(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// ClientID builds the client_id of the OAuthClient namespace/name. A namespace name
// holds no dot, so the first dot separates the two unambiguously.
func ClientID(namespace, name string) string { return namespace + "." + name }

// ParseClientID splits a client_id into namespace and name; ok is false when it cannot
// name an OAuthClient.
func ParseClientID(id string) (namespace, name string, ok bool) {
	namespace, name, ok = strings.Cut(id, ".")
	if !ok || namespace == "" || name == "" {
		return "", "", false
	}
	return namespace, name, true
}

// FederatedRules are the rules of a FederatedToken client; nil for other methods.
func (c *OAuthClient) FederatedRules() []FederatedRule {
	if c.AuthMethod() != AuthFederatedToken {
		return nil
	}
	return c.Spec.Authentication.Federated
}
