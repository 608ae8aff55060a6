package controllers

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
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
