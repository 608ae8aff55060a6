package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// Keys of PrivateKeyJWT clients: the public keys a client names, and the key pairs the
// operator generates for clients that name none. The rule of which public keys are
// usable is written here once, for the controller (which reports a bad key) and the
// token server (which verifies assertions).

const publicKeyPEMType = "PUBLIC KEY"

// MaxClientRSABits is the largest RSA client key accepted.
const MaxClientRSABits = 4096

// ErrUnusableClientKey reports a client public key of a type or size not accepted.
var ErrUnusableClientKey = errors.New("unusable client key")

// ParsePublicKeyPEM decodes exactly one PEM "PUBLIC KEY" (PKIX) block and checks that
// the key may verify client assertions: EC P-256, RSA of at least MinRSABits, or
// Ed25519. Errors never quote the input.
func ParsePublicKeyPEM(s string) (crypto.PublicKey, error) {
	block, rest := pem.Decode(bytes.TrimSpace([]byte(s)))
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrMalformed)
	}
	if block.Type != publicKeyPEMType {
		return nil, fmt.Errorf("%w: PEM block type %q, want %q", ErrMalformed, block.Type, publicKeyPEMType)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: trailing data after the PEM block", ErrMalformed)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid PKIX public key", ErrMalformed)
	}
	if err := CheckClientKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// CheckClientKey reports whether pub may verify client assertions.
func CheckClientKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("%w: EC keys must use curve P-256, not %s", ErrUnusableClientKey, k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < MinRSABits || bits > MaxClientRSABits {
			return fmt.Errorf("%w: RSA keys need %d to %d bits, not %d", ErrUnusableClientKey, MinRSABits, MaxClientRSABits, bits)
		}
		// A huge modulus or exponent makes every verification expensive: a CPU lever
		// for a tenant against every other tenant of the token server.
		if k.E != 65537 {
			return fmt.Errorf("%w: RSA keys must use the public exponent 65537", ErrUnusableClientKey)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: %T is not EC P-256, RSA or Ed25519", ErrUnusableClientKey, pub)
	}
	return nil
}

// EncodePublicKeyPEM encodes a public key as a PEM "PUBLIC KEY" (PKIX) block.
func EncodePublicKeyPEM(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: publicKeyPEMType, Bytes: der})), nil
}

// ClientKeyPair is a generated key pair of a PrivateKeyJWT client, as its Secret holds it.
type ClientKeyPair struct {
	// PrivateKeyPEM is the PKCS#8 PEM private key.
	PrivateKeyPEM string
	// KeyID is the RFC 7638 thumbprint of the public key: the assertions' kid.
	KeyID string
}

// GenerateClientKey generates a key pair of the family of alg (ES256: P-256, RS256:
// RSA 2048, EdDSA: Ed25519) for a PrivateKeyJWT client.
func GenerateClientKey(alg Algorithm) (*ClientKeyPair, error) {
	k, err := GenerateKey(alg, time.Now())
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, fmt.Errorf("generate client key: %w", err)
	}
	return &ClientKeyPair{PrivateKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})), KeyID: k.ID}, nil
}

// ParseClientPrivateKey decodes a generated client key pair's private key and returns
// its public key and kid (the RFC 7638 thumbprint).
func ParseClientPrivateKey(privatePEM string) (crypto.PublicKey, string, error) {
	priv, err := parsePrivateKeyPEM(privatePEM)
	if err != nil {
		return nil, "", err
	}
	pub := priv.Public()
	if err := CheckClientKey(pub); err != nil {
		return nil, "", err
	}
	kid, err := Thumbprint(pub)
	if err != nil {
		return nil, "", err
	}
	return pub, kid, nil
}
