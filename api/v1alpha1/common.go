package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Scope is one OAuth 2.0 scope token (RFC 6749 §3.3): printable ASCII without spaces,
// double quotes or backslashes.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:Pattern=`^[!#-\[\]-~]+$`
type Scope string

// DNSSubdomain is the name of a Kubernetes object in the DNS-subdomain form (RFC 1123):
// at most 253 lowercase letters, digits, '-' and '.', starting and ending with a
// letter or digit.
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
type DNSSubdomain = string // the one place of the pattern; an alias, so values need no conversion

// Labels and annotations the operator sets and reads.
const (
	// ManagedByLabel marks every Secret the operator manages; the operator caches only
	// Secrets that carry it.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel on the operator's Secrets.
	ManagedByValue = "oauth-client-operator"
	// ClientLabel names the OAuthClient a credential Secret belongs to.
	ClientLabel = "oauth.operator.dev/client"
	// SigningKeysLabel marks the Secret that holds the signing keys (with the
	// managed-by label, which puts it in the operator's Secret cache).
	SigningKeysLabel = "oauth.operator.dev/signing-keys"
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
	// SecretKeyPrivateKey holds a PrivateKeyJWT client's generated private key (PKCS#8
	// PEM), and SecretKeyKeyID its RFC 7638 thumbprint: the kid of its assertions.
	SecretKeyPrivateKey = "private_key"
	SecretKeyKeyID      = "key_id"
	// SecretKeyPreviousPublicKey holds the public key (PEM) of the key pair before the
	// last rotation, accepted until its grace period ends.
	SecretKeyPreviousPublicKey = "previous_public_key"
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
	// RotationTriggerHandledAtAnnotation on the Secret: when the last rotate-secret
	// value was acted on (RFC 3339). The next value is acted on no sooner than the
	// operator's minimum interval between requested rotations after it.
	RotationTriggerHandledAtAnnotation = "oauth.operator.dev/rotate-secret-handled-at"
)

// CredentialSecretAnnotations are every annotation the operator writes on a
// credential Secret and reads back; a cache that drops a Secret's other annotations
// must keep these.
var CredentialSecretAnnotations = []string{
	SecretRotatedAtAnnotation,
	PreviousSecretExpiresAnnotation,
	RotationTriggerAnnotation,
	RotationTriggerHandledAtAnnotation,
}

// CredentialSecretKeyLimits are the keys of a credential Secret the operator reads,
// each with the most bytes a value the operator writes there can take (with room to
// spare: a generated secret is 43 bytes, an RSA-4096 PKCS#8 key about 3.3 KiB, its
// public key 0.8 KiB). The
// cache keeps only these keys of a Secret an OAuthClient controls, and drops a value
// over its limit (which only a hand-written or hostile Secret holds; the controller
// then restores the key), so no Secret costs more than their sum in memory.
var CredentialSecretKeyLimits = map[string]int{
	SecretKeyClientID:             320,
	SecretKeyClientSecret:         256,
	SecretKeyPreviousClientSecret: 256,
	SecretKeyTokenURL:             2 << 10,
	SecretKeyIssuer:               2 << 10,
	SecretKeyPrivateKey:           8 << 10,
	SecretKeyKeyID:                128,
	SecretKeyPreviousPublicKey:    2 << 10,
}

// MaxCredentialAnnotationBytes is the most bytes a CredentialSecretAnnotations value
// the operator writes takes; the cache drops a longer one.
const MaxCredentialAnnotationBytes = 1 << 10

// RotationTrigger is the value of RotationTriggerAnnotation that records a
// rotate-secret value as acted on: the value itself, or when that is longer than
// MaxCredentialAnnotationBytes allows, its SHA-256 digest, so the record always fits.
func RotationTrigger(rotateSecret string) string {
	if len(rotateSecret) <= 128 {
		return rotateSecret
	}
	sum := sha256.Sum256([]byte(rotateSecret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// RotationTimes are the times a credential Secret's rotation annotations record. A
// time whose annotation is absent or unreadable is zero.
// +kubebuilder:object:generate=false
type RotationTimes struct {
	// RotatedAt is when the current credential was generated (SecretRotatedAtAnnotation).
	RotatedAt time.Time
	// PreviousExpiresAt is when the previous credential stops working
	// (PreviousSecretExpiresAnnotation).
	PreviousExpiresAt time.Time
	// TriggerHandledAt is when the last rotate-secret value was acted on
	// (RotationTriggerHandledAtAnnotation).
	TriggerHandledAt time.Time
}

// ReadRotationTimes is the one reader of a credential Secret's rotation annotations.
func ReadRotationTimes(secret metav1.Object) RotationTimes {
	a := secret.GetAnnotations()
	return RotationTimes{
		RotatedAt:         parseRotationTime(a[SecretRotatedAtAnnotation]),
		PreviousExpiresAt: parseRotationTime(a[PreviousSecretExpiresAnnotation]),
		TriggerHandledAt:  parseRotationTime(a[RotationTriggerHandledAtAnnotation]),
	}
}

// FormatRotationTime is how the rotation annotations write a time: RFC 3339, UTC,
// whole seconds.
func FormatRotationTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func parseRotationTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// MinClientSecretLength is the length of a generated client secret: 256 bits in
// URL-safe base64 without padding. A stored client secret (current or previous) that is
// shorter was not generated by the operator: the controller replaces it and the token
// server never accepts it.
const MinClientSecretLength = 43

// DefaultSecretGracePeriod is how long a previous client secret keeps working.
const DefaultSecretGracePeriod = 24 * time.Hour

// ConditionReady is the condition type that summarises whether an object is usable.
const ConditionReady = "Ready"

// SecretOwner is the one rule of Secret ownership: the UID of the OAuthClient that
// controls a Secret (its controller owner reference names an OAuthClient of this API
// group), or "" when no OAuthClient does. Only a Secret its client controls carries
// that client's credentials; a Secret anyone else wrote, labelled or not, is never
// read as one.
// A reference whose name cannot be an object's or whose UID is longer than any UID
// the API server gives names no OAuthClient either.
func SecretOwner(secret metav1.Object) types.UID {
	ref := metav1.GetControllerOf(secret)
	if ref == nil || ref.Kind != "OAuthClient" || ref.APIVersion != GroupVersion.String() ||
		len(ref.Name) > validation.DNS1123SubdomainMaxLength || len(ref.UID) > maxUIDLength {
		return ""
	}
	return ref.UID
}

// maxUIDLength bounds a UID the API server gives (a 36-character UUID), with room.
const maxUIDLength = 64
