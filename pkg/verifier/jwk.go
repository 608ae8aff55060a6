package verifier

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
)

// minRSABits is the smallest RSA modulus accepted in a JWKS.
const minRSABits = 2048

// publicKey is one usable verification key of the issuer's JWKS.
type publicKey struct {
	alg string // the JWK's "alg", or "" when it has none
	key crypto.PublicKey
}

// accepts reports whether the key may verify a JWS with algorithm alg: the
// key type (and curve) must be the one alg uses, and the JWK's own "alg",
// if any, must be alg. This prevents algorithm/key confusion.
func (k *publicKey) accepts(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch key := k.key.(type) {
	case *ecdsa.PublicKey:
		return alg == "ES256" && key.Curve == elliptic.P256()
	case *rsa.PublicKey:
		return alg == "RS256"
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// jsonWebKey holds the JWK members (RFC 7517, RFC 7518 §6, RFC 8037) this
// package reads.
type jsonWebKey struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// parseJWKS parses a JWK Set document into usable keys by kid. Keys that
// cannot be used here (no kid, "use" other than "sig", unknown "kty" or
// curve, malformed or weak) are skipped without failing the set; when two
// keys share a kid the first wins. Only a document that is not a JWK Set is
// an error.
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
		var j jsonWebKey
		if json.Unmarshal(raw, &j) != nil || j.Kid == "" || (j.Use != "" && j.Use != "sig") {
			continue
		}
		if _, dup := keys[j.Kid]; dup {
			continue
		}
		key, err := j.publicKey()
		if err != nil {
			continue
		}
		keys[j.Kid] = &publicKey{alg: j.Alg, key: key}
	}
	return keys, nil
}

// publicKey decodes the key material of j.
func (j *jsonWebKey) publicKey() (crypto.PublicKey, error) {
	switch j.Kty {
	case "EC":
		if j.Crv != "P-256" {
			return nil, errors.New("unsupported curve")
		}
		x, errX := decodeFixed(j.X, 32)
		y, errY := decodeFixed(j.Y, 32)
		if errX != nil || errY != nil {
			return nil, errors.New("invalid EC coordinates")
		}
		point := append(append([]byte{4}, x...), y...)
		return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	case "RSA":
		n, errN := base64.RawURLEncoding.DecodeString(j.N)
		e, errE := base64.RawURLEncoding.DecodeString(j.E)
		if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("invalid RSA key")
		}
		key := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if key.N.BitLen() < minRSABits || key.E < 3 || key.E%2 == 0 {
			return nil, errors.New("weak or invalid RSA key")
		}
		return key, nil
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, errors.New("unsupported curve")
		}
		x, err := decodeFixed(j.X, ed25519.PublicKeySize)
		if err != nil {
			return nil, err
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, errors.New("unsupported key type")
}

// decodeFixed decodes base64url (no padding) s, which must encode n bytes.
func decodeFixed(s string, n int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != n {
		return nil, errors.New("invalid key parameter")
	}
	return b, nil
}
