package controllers

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// clientSecretBytes is the entropy of a generated client secret: 256 bits.
const clientSecretBytes = 32

// minClientSecretLen is the length of a generated secret; a stored secret shorter than
// this is replaced.
var minClientSecretLen = oauthv1alpha1.MinClientSecretLength

func init() {
	if base64.RawURLEncoding.EncodedLen(clientSecretBytes) != minClientSecretLen {
		panic("MinClientSecretLength does not match the generated secret's length")
	}
}

// GenerateClientSecret returns 256 bits from crypto/rand as URL-safe base64 text.
func GenerateClientSecret() (string, error) {
	b := make([]byte, clientSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate client secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// credential is a kind of credential the operator generates into a client's Secret and
// rotates: a client secret, or a PrivateKeyJWT key pair. Rotation moves what verifies
// the current credential to the previous key, for the grace period.
type credential struct {
	// name says what it is, in events and logs.
	name string
	// current are the Secret keys of the current credential; previous the key of what
	// verifies the one before.
	current  []string
	previous string
	// valid reports whether the Secret holds a usable current credential.
	valid func(data map[string][]byte) bool
	// generate returns a new current credential.
	generate func() (map[string][]byte, error)
	// verifier returns what verifies the current credential, kept as previous.
	verifier func(data map[string][]byte) ([]byte, error)
}

var clientSecretCredential = &credential{
	name:     "client secret",
	current:  []string{oauthv1alpha1.SecretKeyClientSecret},
	previous: oauthv1alpha1.SecretKeyPreviousClientSecret,
	valid: func(data map[string][]byte) bool {
		return len(data[oauthv1alpha1.SecretKeyClientSecret]) >= minClientSecretLen
	},
	generate: func() (map[string][]byte, error) {
		s, err := GenerateClientSecret()
		return map[string][]byte{oauthv1alpha1.SecretKeyClientSecret: []byte(s)}, err
	},
	verifier: func(data map[string][]byte) ([]byte, error) { return data[oauthv1alpha1.SecretKeyClientSecret], nil },
}

// keyPairCredential is the generated key pair of a PrivateKeyJWT client, of the family
// of the operator's signing algorithm.
func keyPairCredential(alg signing.Algorithm) *credential {
	return &credential{
		name:     "private key",
		current:  []string{oauthv1alpha1.SecretKeyPrivateKey, oauthv1alpha1.SecretKeyKeyID},
		previous: oauthv1alpha1.SecretKeyPreviousPublicKey,
		valid: func(data map[string][]byte) bool {
			_, kid, err := signing.ParseClientPrivateKey(string(data[oauthv1alpha1.SecretKeyPrivateKey]))
			return err == nil && kid == string(data[oauthv1alpha1.SecretKeyKeyID])
		},
		generate: func() (map[string][]byte, error) {
			k, err := signing.GenerateClientKey(alg)
			if err != nil {
				return nil, fmt.Errorf("generate client key: %w", err)
			}
			return map[string][]byte{
				oauthv1alpha1.SecretKeyPrivateKey: []byte(k.PrivateKeyPEM),
				oauthv1alpha1.SecretKeyKeyID:      []byte(k.KeyID),
			}, nil
		},
		verifier: func(data map[string][]byte) ([]byte, error) {
			pub, _, err := signing.ParseClientPrivateKey(string(data[oauthv1alpha1.SecretKeyPrivateKey]))
			if err != nil {
				return nil, fmt.Errorf("read the current private key: %w", err)
			}
			pemText, err := signing.EncodePublicKeyPEM(pub)
			return []byte(pemText), err
		},
	}
}

// credentialFor is the credential the operator generates for the client; nil when its
// method needs none in the Secret (ServiceAccountToken, PrivateKeyJWT with publicKeys).
func (r *OAuthClientReconciler) credentialFor(oc *oauthv1alpha1.OAuthClient) *credential {
	switch {
	case oc.AuthMethod() == oauthv1alpha1.AuthClientSecret:
		return clientSecretCredential
	case oc.GeneratesKey():
		return keyPairCredential(r.keyAlgorithm())
	}
	return nil
}

// credentialKeys are every Secret key that holds a credential, of any kind.
var credentialKeys = []string{
	oauthv1alpha1.SecretKeyClientSecret, oauthv1alpha1.SecretKeyPreviousClientSecret,
	oauthv1alpha1.SecretKeyPrivateKey, oauthv1alpha1.SecretKeyKeyID, oauthv1alpha1.SecretKeyPreviousPublicKey,
}

// dropOtherCredentials removes from a Secret every credential that is not of kind c
// (all of them when c is nil), with the rotation state when nothing is left to rotate.
// It reports whether it removed any.
func dropOtherCredentials(secret *corev1.Secret, c *credential) bool {
	keep := map[string]bool{}
	if c != nil {
		for _, k := range c.current {
			keep[k] = true
		}
		keep[c.previous] = true
	}
	dropped := false
	for _, k := range credentialKeys {
		if _, ok := secret.Data[k]; ok && !keep[k] {
			delete(secret.Data, k)
			dropped = true
		}
	}
	if c == nil {
		for _, a := range []string{
			oauthv1alpha1.SecretRotatedAtAnnotation,
			oauthv1alpha1.PreviousSecretExpiresAnnotation,
			oauthv1alpha1.RotationTriggerAnnotation,
		} {
			delete(secret.Annotations, a)
		}
	}
	return dropped
}

// install writes a newly generated credential into data.
func install(data, generated map[string][]byte) {
	for k, v := range generated {
		data[k] = v
	}
}

// keepPrevious keeps what verifies the current credential as the previous one for the
// grace period; with no grace period the previous one is dropped at once.
func keepPrevious(secret *corev1.Secret, c *credential, grace time.Duration, now time.Time) error {
	if grace <= 0 {
		delete(secret.Data, c.previous)
		delete(secret.Annotations, oauthv1alpha1.PreviousSecretExpiresAnnotation)
		return nil
	}
	v, err := c.verifier(secret.Data)
	if err != nil {
		return err
	}
	secret.Data[c.previous] = v
	setAnnotation(secret, oauthv1alpha1.PreviousSecretExpiresAnnotation, formatTime(now.Add(grace)))
	return nil
}

// expirePrevious drops the previous credential once its grace period is over (or when
// its expiry is unreadable). It reports whether it did.
func expirePrevious(secret *corev1.Secret, c *credential, now time.Time) bool {
	if _, ok := secret.Data[c.previous]; !ok {
		delete(secret.Annotations, oauthv1alpha1.PreviousSecretExpiresAnnotation)
		return false
	}
	if until := annotationTime(secret, oauthv1alpha1.PreviousSecretExpiresAnnotation); until != nil && now.Before(until.Time) {
		return false
	}
	delete(secret.Data, c.previous)
	delete(secret.Annotations, oauthv1alpha1.PreviousSecretExpiresAnnotation)
	return true
}
