package v1alpha1

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OAuthTrustedIssuerSpec says whose JWTs authenticate OAuthClients of method
// FederatedToken: an OIDC issuer outside this cluster (another cluster's ServiceAccount
// issuer, a CI system, SPIRE), its keys, and the rules every accepted token must satisfy.
// The shape follows the Kubernetes API server's structured authentication configuration
// (`jwt` entries).
type OAuthTrustedIssuerSpec struct {
	// Issuer is the `iss` every accepted token carries, exactly. Without spec.keys the
	// keys are discovered at <issuer>/.well-known/openid-configuration. An https URL;
	// http only for a loopback host (local development).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') || self.startsWith('http://127.') || self.startsWith('http://[::1]') || self.startsWith('http://localhost:') || self.startsWith('http://localhost/') || self == 'http://localhost'",message="issuer must be an https URL (http only for a loopback host)"
	Issuer string `json:"issuer"`

	// Keys says where the issuer's public keys come from. Unset: OIDC discovery at
	// <issuer>/.well-known/openid-configuration, whose jwks_uri names them.
	// +optional
	Keys *IssuerKeys `json:"keys,omitempty"`

	// CertificateAuthority is a PEM bundle of the certificate authorities that the
	// https fetches of the discovery document and the JWKS trust, instead of the
	// system's. Unset: the system's.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	// +kubebuilder:validation:XValidation:rule="self.contains('-----BEGIN CERTIFICATE-----')",message="certificateAuthority must hold PEM certificates"
	CertificateAuthority string `json:"certificateAuthority,omitempty"`

	// Audiences are the accepted `aud` values: every value of a token's `aud` must be
	// one of them. Unset: this token server's issuer URL and its token endpoint URL.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=2048
	Audiences []string `json:"audiences,omitempty"`

	// MaxTokenLifetime is the longest lifetime (exp − iat) of an accepted token; tokens
	// without iat are refused. Tokens may be presented again until they expire (CI jobs
	// and kubelet reuse them), so this bounds how long a leaked one is good for.
	// Default 1h; at most 24h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('24h')",message="maxTokenLifetime must be positive and at most 24h"
	MaxTokenLifetime *metav1.Duration `json:"maxTokenLifetime,omitempty"`

	// ClaimValidationRules must all hold for a token to be accepted, whichever client it
	// authenticates: each requires a claim to have a value, or a CEL expression over
	// the token's claims (`claims`) and the client it would authenticate
	// (`client.namespace`, `client.name`) to be true.
	// Expressions are compiled when the object is reconciled; one that does not
	// compile, does not return a bool, or whose estimated cost is over the limit makes
	// the issuer not Ready, and no token of it is accepted.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	ClaimValidationRules []ClaimValidationRule `json:"claimValidationRules,omitempty"`

	// RequiredClientClaims are claims every client rule naming this issuer must pin
	// (spec.authentication.federated[].claims), besides the subject: a rule that does
	// not is refused (deny by default), so no client accepts, say, any repository's CI
	// job.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	RequiredClientClaims []string `json:"requiredClientClaims,omitempty"`

	// AllowedNamespaces says which namespaces may hold clients that trust this issuer,
	// by the same rule as an OAuthAPI's.
	// +required
	AllowedNamespaces AllowedNamespaces `json:"allowedNamespaces"`
}

// IssuerKeys says where an issuer's public keys come from: exactly one of
// discoveryURL, jwksURI and jwks.
// +kubebuilder:validation:XValidation:rule="[has(self.discoveryURL), has(self.jwksURI), has(self.jwks)].filter(x, x).size() == 1",message="set exactly one of discoveryURL, jwksURI and jwks"
type IssuerKeys struct {
	// DiscoveryURL is an OIDC discovery document elsewhere than
	// <issuer>/.well-known/openid-configuration; its `issuer` must still be
	// spec.issuer. https, or http for a loopback host.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') || self.startsWith('http://127.') || self.startsWith('http://[::1]') || self.startsWith('http://localhost:') || self.startsWith('http://localhost/') || self == 'http://localhost'",message="discoveryURL must be an https URL (http only for a loopback host)"
	DiscoveryURL string `json:"discoveryURL,omitempty"`

	// JWKSURI is the URL of the issuer's JSON Web Key Set, fetched directly. https, or
	// http for a loopback host.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') || self.startsWith('http://127.') || self.startsWith('http://[::1]') || self.startsWith('http://localhost:') || self.startsWith('http://localhost/') || self == 'http://localhost'",message="jwksURI must be an https URL (http only for a loopback host)"
	JWKSURI string `json:"jwksURI,omitempty"`

	// JWKS is the issuer's JSON Web Key Set itself, for issuers whose keys nobody can
	// fetch (a private cluster): used as it is, never fetched. Replace it when the
	// issuer rotates its keys.
	// +optional
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=65536
	JWKS string `json:"jwks,omitempty"`
}

// ClaimValidationRule is one rule every accepted token must satisfy: claim and
// requiredValue, or expression.
// +kubebuilder:validation:XValidation:rule="has(self.claim) != has(self.expression)",message="set either claim (with requiredValue) or expression"
// +kubebuilder:validation:XValidation:rule="has(self.claim) == has(self.requiredValue)",message="requiredValue goes with claim"
type ClaimValidationRule struct {
	// Claim is a top-level claim that must be a string equal to requiredValue.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Claim string `json:"claim,omitempty"`

	// RequiredValue is the value claim must have.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	RequiredValue string `json:"requiredValue,omitempty"`

	// Expression is a CEL expression that must evaluate to true. It sees `claims`, the
	// token's claims (a map; numbers are doubles), and `client`, the OAuthClient the
	// token would authenticate (`client.namespace`, `client.name`; `namespace` alone is
	// a reserved word of CEL). A claim the token lacks makes the expression fail (use
	// `has(claims.x)` or `'x' in claims` to test for it).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Expression string `json:"expression,omitempty"`

	// Message says what the rule requires; it goes to the operator's audit trail and
	// the issuer's status, never to the client.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Message string `json:"message,omitempty"`
}

// OAuthTrustedIssuerStatus is the observed state of an OAuthTrustedIssuer.
type OAuthTrustedIssuerStatus struct {
	// Keys is how many usable keys of the issuer are cached.
	// +optional
	Keys int32 `json:"keys,omitempty"`

	// LastKeyFetch is when the cached keys were fetched (or, for spec.keys.jwks, read).
	// +optional
	LastKeyFetch *metav1.Time `json:"lastKeyFetch,omitempty"`

	// ObservedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions describe the issuer's state. Ready is True when its rules compile and
	// its keys are fresh; False with reason InvalidRule, InvalidKeySource,
	// KeysUnavailable or KeysStale (the cached keys stay in use).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Reasons of the Ready condition of an OAuthTrustedIssuer.
const (
	// ReasonIssuerReady: the rules compile and the keys are fresh.
	ReasonIssuerReady = "Ready"
	// ReasonInvalidRule: a claimValidationRules expression does not compile, does not
	// return a bool, or costs too much; no token of the issuer is accepted.
	ReasonInvalidRule = "InvalidRule"
	// ReasonInvalidKeySource: a URL, the certificate authority or the static JWKS
	// cannot be used; no token of the issuer is accepted.
	ReasonInvalidKeySource = "InvalidKeySource"
	// ReasonKeysUnavailable: no key could be obtained yet.
	ReasonKeysUnavailable = "KeysUnavailable"
	// ReasonKeysStale: the issuer has not answered since the keys went stale; the
	// cached keys stay in use.
	ReasonKeysStale = "KeysStale"
)

// DefaultMaxTokenLifetime is the maxTokenLifetime of an OAuthTrustedIssuer that sets
// none.
const DefaultMaxTokenLifetime = time.Hour

// OAuthTrustedIssuer is an external token issuer whose JWTs authenticate OAuthClients
// of method FederatedToken: workloads of other clusters, CI jobs, SPIFFE workloads.
// Cluster-scoped: only cluster administrators decide whom to trust.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=oati,categories=oauth
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.issuer`
// +kubebuilder:printcolumn:name="Keys",type=integer,JSONPath=`.status.keys`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type OAuthTrustedIssuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the issuer and what its tokens must satisfy.
	// +required
	Spec OAuthTrustedIssuerSpec `json:"spec"`

	// Status is the observed state of the issuer.
	// +optional
	Status OAuthTrustedIssuerStatus `json:"status,omitempty"`
}

// OAuthTrustedIssuerList is a list of OAuthTrustedIssuers.
// +kubebuilder:object:root=true
type OAuthTrustedIssuerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the OAuthTrustedIssuers.
	Items []OAuthTrustedIssuer `json:"items"`
}

// EffectiveMaxTokenLifetime is spec.maxTokenLifetime, or DefaultMaxTokenLifetime.
func (i *OAuthTrustedIssuer) EffectiveMaxTokenLifetime() time.Duration {
	if d := i.Spec.MaxTokenLifetime; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return DefaultMaxTokenLifetime
}

// DiscoveryURL is where the issuer's OIDC discovery document is read when spec.keys
// does not name a JWKS: spec.keys.discoveryURL, or
// <issuer>/.well-known/openid-configuration (OpenID Connect Discovery 1.0 §4: a
// trailing slash of the issuer is not doubled). "" when spec.keys names a JWKS URI
// or holds the keys.
func (i *OAuthTrustedIssuer) DiscoveryURL() string {
	k := i.Spec.Keys
	switch {
	case k == nil:
		return strings.TrimSuffix(i.Spec.Issuer, "/") + "/.well-known/openid-configuration"
	case k.DiscoveryURL != "":
		return k.DiscoveryURL
	}
	return ""
}

// CheckFetchURL is the one rule of the URLs an issuer's keys are fetched from (the
// issuer, a discovery document, a JWKS, and a jwks_uri a discovery document names):
// an absolute https URL, or http when the host is a loopback address or localhost
// (local development); no user information, no fragment. The operator checks every
// fetch with it (a spec URL it refuses makes the issuer not Ready, InvalidKeySource);
// the CRD refuses the plainest violations early, by their prefix (the API server's
// URL functions cost too much for its CEL budget).
func CheckFetchURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL", raw)
	case u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%q is not an absolute URL with a host", raw)
	case u.User != nil:
		return fmt.Errorf("%q holds user information", raw)
	case u.Fragment != "":
		return fmt.Errorf("%q has a fragment", raw)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && IsLoopbackHost(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("%q: plain http only for a loopback host; use https", raw)
	}
	return fmt.Errorf("%q: the scheme must be https", raw)
}

// IsLoopbackHost reports whether host (no port) is localhost or a loopback IP address.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// FederatedRule is one rule of a FederatedToken client: a token of the OAuthTrustedIssuer
// it names, with this subject and these claims, authenticates the client.
type FederatedRule struct {
	// Issuer is the name of an OAuthTrustedIssuer.
	// +required
	// +kubebuilder:validation:MinLength=1
	Issuer DNSSubdomain `json:"issuer"`

	// Subject is the token's `sub`, exactly.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Subject string `json:"subject"`

	// Claims are further top-level claims the token must have, each a string equal to
	// the value given. They must include the issuer's requiredClientClaims.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) >= 1 && size(k) <= 256 && size(self[k]) <= 1024)",message="claim names are 1 to 256 characters, values at most 1024"
	Claims map[string]string `json:"claims,omitempty"`
}

// MaxFederatedRules is the most rules a FederatedToken client may list.
const MaxFederatedRules = 8

// MissingClientClaims is the one rule of required client claims: the claims of
// required (an issuer's requiredClientClaims) that a client rule pinning claims (its
// spec.authentication.federated[].claims) does not pin. The rule's subject pins "sub".
func MissingClientClaims(required []string, claims map[string]string) []string {
	var missing []string
	for _, c := range required {
		if _, ok := claims[c]; !ok && c != "sub" {
			missing = append(missing, c)
		}
	}
	return missing
}
