package signing

import (
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// AccessTokenType is the "typ" header of RFC 9068 JWT access tokens.
const AccessTokenType = "at+jwt"

// Signer produces compact JWS access tokens with one key. It is immutable
// and safe for concurrent use. It does not look at the key's lifecycle
// times: choosing which key signs is the caller's job.
type Signer struct {
	kid    string
	alg    Algorithm
	method jwt.SigningMethod
	key    crypto.Signer
	header string // base64url of {"alg":…,"kid":…,"typ":"at+jwt"}
	sigLen int    // base64url length of a signature
}

// NewSigner returns a Signer for k after checking that k's algorithm, key
// type and id (thumbprint) agree. The protected header is encoded once here.
func NewSigner(k *Key) (*Signer, error) {
	if k == nil {
		return nil, errors.New("new signer: nil key")
	}
	if err := validateKey(k); err != nil {
		return nil, fmt.Errorf("new signer: key %q: %w", k.ID, err)
	}
	var (
		method jwt.SigningMethod
		rawSig int
	)
	switch k.Algorithm {
	case ES256:
		method, rawSig = jwt.SigningMethodES256, 64
	case RS256:
		method, rawSig = jwt.SigningMethodRS256, k.Private.(*rsa.PrivateKey).Size()
	case EdDSA:
		method, rawSig = jwt.SigningMethodEdDSA, 64
	}
	h, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{string(k.Algorithm), k.ID, AccessTokenType})
	if err != nil {
		return nil, fmt.Errorf("new signer: encode header: %w", err)
	}
	return &Signer{
		kid:    k.ID,
		alg:    k.Algorithm,
		method: method,
		key:    k.Private,
		header: base64.RawURLEncoding.EncodeToString(h),
		sigLen: base64.RawURLEncoding.EncodedLen(rawSig),
	}, nil
}

// KeyID returns the kid of the signing key.
func (s *Signer) KeyID() string { return s.kid }

// Algorithm returns the JWS algorithm of the signing key.
func (s *Signer) Algorithm() Algorithm { return s.alg }

// Sign returns the compact JWS header.payload.signature over claims, which
// must already be the JSON encoding of the token's claims set (it is not
// re-validated here).
func (s *Signer) Sign(claims []byte) (string, error) {
	if len(claims) == 0 {
		return "", errors.New("sign token: empty claims")
	}
	enc := base64.RawURLEncoding
	// One buffer sized for the whole token; the signature is appended into
	// its spare capacity.
	buf := make([]byte, 0, len(s.header)+1+enc.EncodedLen(len(claims))+1+s.sigLen)
	buf = append(buf, s.header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, claims)
	sig, err := s.method.Sign(string(buf), s.key)
	if err != nil {
		return "", fmt.Errorf("sign token with key %q: %w", s.kid, err)
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}
