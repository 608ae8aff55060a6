package v1alpha1

// Scope is one OAuth 2.0 scope token (RFC 6749 §3.3): printable ASCII without spaces,
// double quotes or backslashes.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:Pattern=`^[!#-\[\]-~]+$`
type Scope string

// Labels and annotations the operator sets and reads.
const (
	// ManagedByLabel marks every Secret the operator manages; the operator caches only
	// Secrets that carry it.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel on the operator's Secrets.
	ManagedByValue = "oauth-client-operator"
	// ClientLabel names the OAuthClient a credential Secret belongs to.
	ClientLabel = "oauth.operator.dev/client"
)

// Keys of the credential Secret generated for an OAuthClient.
const (
	SecretKeyClientID     = "client_id"
	SecretKeyClientSecret = "client_secret"
	SecretKeyTokenURL     = "token_url"
	SecretKeyIssuer       = "issuer"
)

// ConditionReady is the condition type that summarises whether an object is usable.
const ConditionReady = "Ready"
