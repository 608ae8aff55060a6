package verifier

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"slices"

	"github.com/go-jose/go-jose/v4"
)

// minRSABits is the smallest RSA modulus accepted in a JWKS.
const minRSABits = 2048

// publicKey is one usable verification key of the issuer's JWKS.
type publicKey struct {
	alg string // the JWK's "alg", or "" when it has none
	key crypto.PublicKey
}

// accepts reports whether the key may verify a JWS with algorithm alg: the
// key type must be the one alg uses, and the JWK's own "alg", if any, must
// be alg. This prevents algorithm/key confusion.
func (k *publicKey) accepts(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch k.key.(type) {
	case *ecdsa.PublicKey:
		return alg == "ES256" // usable() admits P-256 keys only
	case *rsa.PublicKey:
		return slices.Contains(rsaAlgorithms, alg)
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// rsaAlgorithms are the JWS algorithms an RSA key serves.
var rsaAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}

// parseJWKS parses a JWK Set document into usable keys by kid. Each key is
// decoded by go-jose (which checks EC points are on their curve, Ed25519
// keys are well formed and not of low order, RSA exponents are in range).
// Keys that cannot be used here (malformed, no kid, "use" other than "sig",
// or not usable(): a symmetric key, another curve, a weak RSA key) are
// skipped without failing the set, as RFC 7517 §5 advises; when two keys
// share a kid the first wins; at most maxJWKSKeys are kept. Only a document
// that is not a JWK Set is an error.
//
// The "keys" array is split with encoding/json rather than decoded as a
// jose.JSONWebKeySet because go-jose fails a whole set on one key it cannot
// decode, and one unusable key must not hide the others.
func parseJWKS(data []byte) (map[string]*publicKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, errors.New("JWKS is not a JSON object with a keys array")
	}
	if set.Keys == nil {
		return nil, errors.New("JWKS has no keys member")
	}
	keys := make(map[string]*publicKey, len(set.Keys))
	for _, raw := range set.Keys {
		var jwk jose.JSONWebKey
		if jwk.UnmarshalJSON(raw) != nil || jwk.KeyID == "" || (jwk.Use != "" && jwk.Use != "sig") {
			continue
		}
		if _, dup := keys[jwk.KeyID]; dup {
			continue
		}
		if pub := jwk.Public(); usable(pub.Key) { // Public drops private parts, if any
			keys[jwk.KeyID] = &publicKey{alg: jwk.Algorithm, key: pub.Key}
		}
		if len(keys) == maxJWKSKeys {
			// A token without kid is tried with every key: a set of thousands (a
			// megabyte holds 6,000) would make each such token cost as many
			// verifications.
			break
		}
	}
	return keys, nil
}

// maxJWKSKeys bounds the keys kept of a JWK Set (the first usable ones): issuers
// publish a few, the current ones and those retiring.
const maxJWKSKeys = 64

// maxRSABits bounds an RSA key's modulus: verifying with a larger one only costs time.
const maxRSABits = 8192

// usable reports whether key is a public key of the supported algorithms:
// P-256, RSA of minRSABits to maxRSABits with an odd exponent, or Ed25519.
func usable(key any) bool {
	switch key := key.(type) {
	case *ecdsa.PublicKey:
		return key.Curve == elliptic.P256()
	case *rsa.PublicKey:
		return key.N.BitLen() >= minRSABits && key.N.BitLen() <= maxRSABits && key.E%2 == 1
	case ed25519.PublicKey:
		return true
	}
	return false
}
