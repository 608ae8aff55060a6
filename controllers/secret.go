package controllers

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

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

// credentialFor is the credential the operator generates for the client, a key pair of
// keyAlg's family for PrivateKeyJWT; nil when its method needs none in the Secret
// (ServiceAccountToken, PrivateKeyJWT with publicKeys).
func credentialFor(oc *oauthv1alpha1.OAuthClient, keyAlg signing.Algorithm) *credential {
	switch {
	case oc.AuthMethod() == oauthv1alpha1.AuthClientSecret:
		return clientSecretCredential
	case oc.GeneratesKey():
		return keyPairCredential(keyAlg)
	}
	return nil
}

// credentialKeys are every Secret key that holds a credential, of any kind.
var credentialKeys = []string{
	oauthv1alpha1.SecretKeyClientSecret, oauthv1alpha1.SecretKeyPreviousClientSecret,
	oauthv1alpha1.SecretKeyPrivateKey, oauthv1alpha1.SecretKeyKeyID, oauthv1alpha1.SecretKeyPreviousPublicKey,
}
