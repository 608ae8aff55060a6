package client

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// AssertionType is the client_assertion_type of RFC 7523 client authentication, sent
// with a private_key_jwt assertion and with a ServiceAccount token.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLifetime is how long a private_key_jwt assertion is valid (exp - iat). The
// token server refuses assertions valid for more than 5 minutes, and one is made for
// each token request.
const assertionLifetime = time.Minute

// signingKey is a private key and the JWS algorithm it signs with.
type signingKey struct {
	key    crypto.Signer
	method jwt.SigningMethod
}

// newSigningKey picks the algorithm of key: ES256 for EC P-256, RS256 for RSA, EdDSA
// for Ed25519, the algorithms the token server accepts.
func newSigningKey(key crypto.Signer) (signingKey, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return signingKey{}, fmt.Errorf("EC key on curve %s: only P-256 (ES256) is accepted", k.Curve.Params().Name)
		}
		return signingKey{key: k, method: jwt.SigningMethodES256}, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return signingKey{}, fmt.Errorf("RSA key of %d bits: at least 2048 are needed", k.N.BitLen())
		}
		return signingKey{key: k, method: jwt.SigningMethodRS256}, nil
	case ed25519.PrivateKey:
		return signingKey{key: k, method: jwt.SigningMethodEdDSA}, nil
	case *ed25519.PrivateKey:
		return signingKey{key: *k, method: jwt.SigningMethodEdDSA}, nil
	case nil:
		return signingKey{}, errors.New("no private key")
	default:
		return signingKey{}, fmt.Errorf("private key of type %T: want *ecdsa.PrivateKey (P-256), *rsa.PrivateKey or ed25519.PrivateKey", key)
	}
}

// parsePrivateKey reads a PEM private key: PKCS#8 ("PRIVATE KEY", as the operator
// writes it), or PKCS#1 ("RSA PRIVATE KEY") and SEC 1 ("EC PRIVATE KEY") as older
// tools write them.
func parsePrivateKey(pemBytes []byte) (signingKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return signingKey{}, errors.New("private key: no PEM block")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return signingKey{}, fmt.Errorf("private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return signingKey{}, fmt.Errorf("private key of type %T cannot sign", key)
	}
	sk, err := newSigningKey(signer)
	if err != nil {
		return signingKey{}, fmt.Errorf("private key: %w", err)
	}
	return sk, nil
}

// sign makes an RFC 7523 client assertion: iss = sub = clientID, aud = the token
// endpoint, valid from now for assertionLifetime, with a random jti (128 bits) that
// makes each assertion single-use. keyID, when set, is the header's kid.
func (k signingKey) sign(clientID, tokenURL, keyID string, now time.Time) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(k.method, jwt.RegisteredClaims{
		Issuer:    clientID,
		Subject:   clientID,
		Audience:  jwt.ClaimStrings{tokenURL},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(assertionLifetime)),
		ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
	})
	if keyID != "" {
		t.Header["kid"] = keyID
	}
	s, err := t.SignedString(k.key)
	if err != nil {
		return "", fmt.Errorf("sign the client assertion: %w", err)
	}
	return s, nil
}
