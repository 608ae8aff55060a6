package controllers

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// clientSecretBytes is the entropy of a generated client secret: 256 bits.
const clientSecretBytes = 32

// minClientSecretLen is the length of a generated secret in URL-safe base64 (no
// padding); a stored secret shorter than this is replaced.
var minClientSecretLen = base64.RawURLEncoding.EncodedLen(clientSecretBytes)

// GenerateClientSecret returns 256 bits from crypto/rand as URL-safe base64 text.
func GenerateClientSecret() (string, error) {
	b := make([]byte, clientSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate client secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func validClientSecret(v []byte) bool { return len(v) >= minClientSecretLen }

// holdsSecret reports whether the client's method needs a generated client secret.
func holdsSecret(oc *oauthv1alpha1.OAuthClient) bool {
	return oc.AuthMethod() == oauthv1alpha1.AuthClientSecret
}

// dropClientSecret removes the client secret, the previous one and their rotation
// state from a Secret whose client no longer authenticates with a secret. It reports
// whether there was a secret to remove.
func dropClientSecret(secret *corev1.Secret) bool {
	_, had := secret.Data[oauthv1alpha1.SecretKeyClientSecret]
	_, hadPrevious := secret.Data[oauthv1alpha1.SecretKeyPreviousClientSecret]
	delete(secret.Data, oauthv1alpha1.SecretKeyClientSecret)
	delete(secret.Data, oauthv1alpha1.SecretKeyPreviousClientSecret)
	for _, a := range []string{
		oauthv1alpha1.SecretRotatedAtAnnotation,
		oauthv1alpha1.PreviousSecretExpiresAnnotation,
		oauthv1alpha1.RotationTriggerAnnotation,
	} {
		delete(secret.Annotations, a)
	}
	return had || hadPrevious
}
