package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	"time"
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
// *rsa.PublicKey or ed25519.PublicKey.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	j, err := publicJWK(pub)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	// RFC 7638 §3.2: required members only, lexicographic order, no
	// whitespace. Values are base64url strings or fixed names, so they need
	// no JSON escaping.
	var canon string
	switch j.Kty {
	case "EC":
		canon = `{"crv":"` + j.Crv + `","kty":"EC","x":"` + j.X + `","y":"` + j.Y + `"}`
	case "RSA":
		canon = `{"e":"` + j.E + `","kty":"RSA","n":"` + j.N + `"}`
	case "OKP":
		canon = `{"crv":"` + j.Crv + `","kty":"OKP","x":"` + j.X + `"}`
	}
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// jwk is the public part of a JSON Web Key (RFC 7517/7518/8037). Field order
// is the order members appear in the JWKS.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// publicJWK renders the public members of pub.
func publicJWK(pub crypto.PublicKey) (jwk, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		var crv string
		switch k.Curve {
		case elliptic.P256():
			crv = "P-256"
		case elliptic.P384():
			crv = "P-384"
		case elliptic.P521():
			crv = "P-521"
		default:
			return jwk{}, fmt.Errorf("unsupported elliptic curve %s", k.Curve.Params().Name)
		}
		// Uncompressed point 0x04 || X || Y, coordinates left-padded to the
		// field size as RFC 7518 §6.2.1.2 requires.
		pt, err := k.Bytes()
		if err != nil {
			return jwk{}, fmt.Errorf("encode EC public key: %w", err)
		}
		size := (len(pt) - 1) / 2
		return jwk{Kty: "EC", Crv: crv, X: b64(pt[1 : 1+size]), Y: b64(pt[1+size:])}, nil
	case *rsa.PublicKey:
		if k.N == nil || k.E <= 0 {
			return jwk{}, fmt.Errorf("invalid RSA public key")
		}
		// Minimal big-endian encodings (RFC 7518 §6.3.1).
		return jwk{Kty: "RSA", N: b64(k.N.Bytes()), E: b64(big.NewInt(int64(k.E)).Bytes())}, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return jwk{}, fmt.Errorf("invalid Ed25519 public key length %d", len(k))
		}
		return jwk{Kty: "OKP", Crv: "Ed25519", X: b64(k)}, nil
	default:
		return jwk{}, fmt.Errorf("unsupported public key type %T", pub)
	}
}
