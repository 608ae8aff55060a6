package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
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
	var sig []byte
	var err error
	if k, ok := s.key.(*ecdsa.PrivateKey); ok && s.alg == ES256 {
		sig, err = signES256(k, buf)
	} else {
		sig, err = s.method.Sign(string(buf), s.key)
	}
	if err != nil {
		return "", fmt.Errorf("sign token with key %q: %w", s.kid, err)
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}

// signES256 signs as golang-jwt's ES256 does (RFC 7518 §3.4: SHA-256, then r and s as
// 32 bytes each), from crypto/ecdsa's ASN.1 signature: golang-jwt goes through
// ecdsa.Sign, which parses that same signature into big integers it then writes out
// again, about ten allocations and a kilobyte of every token request's garbage
// (issue 21, BenchmarkToken/ES256/sign-only).
func signES256(key *ecdsa.PrivateKey, signingInput []byte) ([]byte, error) {
	digest := sha256.Sum256(signingInput)
	der, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return nil, err
	}
	return rawSignature(der, 32)
}

// rawSignature turns an ASN.1 ECDSA signature, SEQUENCE { INTEGER r, INTEGER s } in DER,
// into r and s as size big-endian bytes each. The DER is read with cryptobyte (the parser
// crypto/ecdsa itself uses), whose *[]byte integers point into der: no big integers.
// FuzzRawSignature checks it against encoding/asn1 into big.Int.
func rawSignature(der []byte, size int) ([]byte, error) {
	var seq cryptobyte.String
	var r, s []byte
	input := cryptobyte.String(der)
	if !input.ReadASN1(&seq, cbasn1.SEQUENCE) || !input.Empty() ||
		!seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) || !seq.Empty() ||
		len(r) > size || len(s) > size {
		return nil, errors.New("malformed ECDSA signature")
	}
	out := make([]byte, 2*size)
	copy(out[size-len(r):size], r)
	copy(out[2*size-len(s):], s)
	return out, nil
}
