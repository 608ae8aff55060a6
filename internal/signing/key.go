package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Key is one signing key and its lifecycle.
//
// Lifecycle of a key during rotation: it is created and published in the
// JWKS (CreatedAt), may start signing at ActivatesAt, stops signing at
// RetiredAt, and is dropped from the JWKS at ExpiresAt, once every token it
// signed has expired. All times are UTC with second precision once a key has
// gone through GenerateKey or Decode.
type Key struct {
	// ID is the key id ("kid"): the RFC 7638 SHA-256 JWK thumbprint of the
	// public key, base64url without padding.
	ID string
	// Algorithm is the JWS algorithm the key signs with.
	Algorithm Algorithm
	// Private is the private key: *ecdsa.PrivateKey (P-256) for ES256,
	// *rsa.PrivateKey for RS256, ed25519.PrivateKey for EdDSA.
	Private crypto.Signer
	// CreatedAt is when the key was generated (and may first be published).
	CreatedAt time.Time
	// ActivatesAt is when the key may start signing; zero means immediately.
	// It lets a new key be published in the JWKS before any token uses it.
	ActivatesAt time.Time
	// RetiredAt is when the key stopped signing; zero means not retired.
	RetiredAt time.Time
	// ExpiresAt is when the key may be removed from the JWKS (no unexpired
	// token signed by it remains); zero means never.
	ExpiresAt time.Time
}

// GenerateOption customises GenerateKey.
type GenerateOption func(*generateOptions)

type generateOptions struct {
	rsaBits int
}

// WithRSABits sets the RSA modulus size for RS256 keys: 2048 (default), 3072
// or 4096. It is ignored for other algorithms.
func WithRSABits(bits int) GenerateOption {
	return func(o *generateOptions) { o.rsaBits = bits }
}

// GenerateKey creates a new key for alg using crypto/rand. CreatedAt is now
// (UTC, truncated to the second); the other lifecycle times are zero. The ID
// is the key's RFC 7638 thumbprint.
func GenerateKey(alg Algorithm, now time.Time, opts ...GenerateOption) (*Key, error) {
	o := generateOptions{rsaBits: MinRSABits}
	for _, opt := range opts {
		opt(&o)
	}
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		switch o.rsaBits {
		case 2048, 3072, 4096:
		default:
			return nil, fmt.Errorf("generate %s key: unsupported RSA size %d (want 2048, 3072 or 4096)", alg, o.rsaBits)
		}
		priv, err = rsa.GenerateKey(rand.Reader, o.rsaBits)
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("generate key: %w: %q", ErrUnsupportedAlgorithm, string(alg))
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	kid, err := Thumbprint(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	return &Key{
		ID:        kid,
		Algorithm: alg,
		Private:   priv,
		CreatedAt: normTime(now),
	}, nil
}

// normTime is the canonical form of a lifecycle time: UTC, whole seconds.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Second)
}

// Thumbprint returns the RFC 7638 JWK thumbprint (SHA-256, base64url without
// padding) of pub, which must be *ecdsa.PublicKey (P-256, P-384 or P-521),
// *rsa.PublicKey or ed25519.PublicKey. go-jose computes it.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	j, err := publicJWK(pub)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	sum, err := j.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// publicJWK is the go-jose JWK of pub, a public key of one of the types Thumbprint
// names (go-jose also renders private and symmetric keys: never publish those).
func publicJWK(pub crypto.PublicKey) (jose.JSONWebKey, error) {
	switch pub.(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
		return jose.JSONWebKey{Key: pub}, nil
	}
	return jose.JSONWebKey{}, fmt.Errorf("unsupported public key type %T", pub)
}
