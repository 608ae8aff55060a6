package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

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
	// SecretKeyPreviousClientSecret holds the secret before the last rotation, until
	// its grace period ends.
	SecretKeyPreviousClientSecret = "previous_client_secret"
)

// Annotations of the client-secret rotation. The rotation state lives in the Secret,
// next to the credentials it describes, so it survives restarts.
const (
	// RotateSecretAnnotation on an OAuthClient rotates its secret once per distinct value.
	RotateSecretAnnotation = "oauth.operator.dev/rotate-secret"
	// SecretRotatedAtAnnotation on the Secret: when client_secret was generated (RFC 3339).
	SecretRotatedAtAnnotation = "oauth.operator.dev/secret-rotated-at"
	// PreviousSecretExpiresAnnotation on the Secret: when previous_client_secret stops
	// working (RFC 3339).
	PreviousSecretExpiresAnnotation = "oauth.operator.dev/previous-secret-expires-at"
	// RotationTriggerAnnotation on the Secret: the last rotate-secret value acted on.
	RotationTriggerAnnotation = "oauth.operator.dev/rotate-secret-handled"
)

// DefaultSecretGracePeriod is how long a previous client secret keeps working.
const DefaultSecretGracePeriod = 24 * time.Hour

// ConditionReady is the condition type that summarises whether an object is usable.
const ConditionReady = "Ready"

// SecretOwner is the one rule of Secret ownership: the UID of the OAuthClient that
// controls a Secret (its controller owner reference names an OAuthClient of this API
// group), or "" when no OAuthClient does. Only a Secret its client controls carries
// that client's credentials; a Secret anyone else wrote, labelled or not, is never
// read as one.
func SecretOwner(secret metav1.Object) types.UID {
	ref := metav1.GetControllerOf(secret)
	if ref == nil || ref.Kind != "OAuthClient" || ref.APIVersion != GroupVersion.String() {
		return ""
	}
	return ref.UID
}
