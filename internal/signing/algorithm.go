// Package signing holds the key material used by the token server to sign
// RFC 9068 JWT access tokens: key generation, RFC 7638 key ids, the encoding
// of a key set into (and out of) the data of a Kubernetes Secret, the public
// JWKS document, and a low-allocation token signer. JWKs and their RFC 7638
// thumbprints are rendered by github.com/go-jose/go-jose/v4.
//
// The key logic is pure; only SecretSource (secret.go) talks to the API
// server, to keep a Keyring in step with the signing-key Secret.
package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
)

// Algorithm is a JWS signing algorithm ("alg" header value, RFC 7518/8037).
type Algorithm string

// Supported signing algorithms.
const (
	// ES256 is ECDSA using P-256 and SHA-256. It is the default.
	ES256 Algorithm = "ES256"
	// RS256 is RSASSA-PKCS1-v1_5 using SHA-256 (RSA 2048 bits by default).
	RS256 Algorithm = "RS256"
	// EdDSA is the Edwards-curve signature algorithm with Ed25519 (RFC 8037).
	EdDSA Algorithm = "EdDSA"
)

// DefaultAlgorithm is the algorithm used when none is configured.
const DefaultAlgorithm = ES256

// MinRSABits is the smallest RSA modulus size accepted for RS256 keys.
const MinRSABits = 2048

// Sentinel errors; every error returned by this package that falls into one
// of these classes wraps the matching sentinel, so callers can use errors.Is.
var (
	// ErrUnsupportedAlgorithm reports an algorithm name this package does not support.
	ErrUnsupportedAlgorithm = errors.New("unsupported signing algorithm")
	// ErrAlgorithmMismatch reports a private key whose type does not fit its algorithm.
	ErrAlgorithmMismatch = errors.New("key type does not match algorithm")
	// ErrKeyIDMismatch reports a key id that is not the key's RFC 7638 thumbprint.
	ErrKeyIDMismatch = errors.New("key id does not match key thumbprint")
	// ErrInvalidKeySet reports a structurally invalid key set (no current key,
	// duplicate ids, missing private key, ...).
	ErrInvalidKeySet = errors.New("invalid key set")
	// ErrMissingData reports Secret data without the SecretKey entry.
	ErrMissingData = errors.New("missing " + SecretKey + " in secret data")
	// ErrUnsupportedVersion reports a Secret document with an unknown format version.
	ErrUnsupportedVersion = errors.New("unsupported key set format version")
	// ErrMalformed reports Secret data that cannot be parsed (JSON, PEM,
	// PKCS#8 or timestamps).
	ErrMalformed = errors.New("malformed key set data")
	// ErrRevokedKey reports a revoked key where it must not be: in a key set to load
	// or sign with.
	ErrRevokedKey = errors.New("revoked signing key")
)

// ParseAlgorithm returns the Algorithm named s (case-sensitive, as in JOSE).
func ParseAlgorithm(s string) (Algorithm, error) {
	a := Algorithm(s)
	if !a.Valid() {
		return "", fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, s)
	}
	return a, nil
}

// Valid reports whether a is one of the supported algorithms.
func (a Algorithm) Valid() bool {
	switch a {
	case ES256, RS256, EdDSA:
		return true
	}
	return false
}

// String returns the JOSE name of the algorithm.
func (a Algorithm) String() string { return string(a) }

// checkKeyType verifies that priv is usable with alg.
func checkKeyType(alg Algorithm, priv crypto.Signer) error {
	if priv == nil {
		return fmt.Errorf("%w: no private key", ErrInvalidKeySet)
	}
	switch alg {
	case ES256:
		k, ok := priv.(*ecdsa.PrivateKey)
		if !ok {
			return fmt.Errorf("%w: %s requires an ECDSA key, got %T", ErrAlgorithmMismatch, alg, priv)
		}
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("%w: %s requires curve P-256, got %s", ErrAlgorithmMismatch, alg, k.Curve.Params().Name)
		}
	case RS256:
		k, ok := priv.(*rsa.PrivateKey)
		if !ok {
			return fmt.Errorf("%w: %s requires an RSA key, got %T", ErrAlgorithmMismatch, alg, priv)
		}
		if bits := k.N.BitLen(); bits < MinRSABits {
			return fmt.Errorf("%w: %s requires at least %d bits, got %d", ErrAlgorithmMismatch, alg, MinRSABits, bits)
		}
	case EdDSA:
		if _, ok := priv.(ed25519.PrivateKey); !ok {
			return fmt.Errorf("%w: %s requires an Ed25519 key, got %T", ErrAlgorithmMismatch, alg, priv)
		}
	default:
		return fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, string(alg))
	}
	return nil
}
