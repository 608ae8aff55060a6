package signing

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// SecretKey is the entry of the Secret's Data that holds the key set.
const SecretKey = "keys.json"

// FormatVersion is the version of the keys.json document written by Encode.
const FormatVersion = 1

const pemType = "PRIVATE KEY"

// KeySet is every key known to the token server plus which one signs.
type KeySet struct {
	// CurrentID is the id of the key that signs new tokens.
	CurrentID string
	// Keys holds all keys: current, published-but-not-yet-active and
	// retired-but-unexpired ones. Order is preserved by Encode/Decode.
	Keys []*Key
	// Revoked lists the keys revoked in an emergency (Revoke): none of them may be
	// in Keys again. Order is preserved by Encode/Decode.
	Revoked []RevokedKey
}

// Current returns the key named by CurrentID, or nil if there is none.
func (ks *KeySet) Current() *Key {
	if ks == nil || ks.CurrentID == "" {
		return nil
	}
	return ks.Find(ks.CurrentID)
}

// Find returns the key with id kid, or nil if there is none.
func (ks *KeySet) Find(kid string) *Key {
	if ks == nil {
		return nil
	}
	for _, k := range ks.Keys {
		if k != nil && k.ID == kid {
			return k
		}
	}
	return nil
}

// Validate checks that the current key exists, that every key has a valid
// algorithm and a private key of the matching type, and that key ids are
// unique and equal to the keys' RFC 7638 thumbprints.
func (ks *KeySet) Validate() error {
	if ks == nil {
		return fmt.Errorf("%w: nil key set", ErrInvalidKeySet)
	}
	seen := make(map[string]bool, len(ks.Keys))
	for i, k := range ks.Keys {
		if k == nil {
			return fmt.Errorf("key %d: %w: nil key", i, ErrInvalidKeySet)
		}
		if err := validateKey(k); err != nil {
			return fmt.Errorf("key %d (kid %q): %w", i, k.ID, err)
		}
		if seen[k.ID] {
			return fmt.Errorf("key %d: %w: duplicate kid %q", i, ErrInvalidKeySet, k.ID)
		}
		seen[k.ID] = true
	}
	for _, r := range ks.Revoked {
		if seen[r.ID] {
			return fmt.Errorf("%w: key %q is listed as revoked", ErrRevokedKey, r.ID)
		}
	}
	if ks.CurrentID == "" {
		return fmt.Errorf("%w: no current key", ErrInvalidKeySet)
	}
	if !seen[ks.CurrentID] {
		return fmt.Errorf("%w: current key %q not found", ErrInvalidKeySet, ks.CurrentID)
	}
	return nil
}

// validateKey checks one key's algorithm, key type and id.
func validateKey(k *Key) error {
	if !k.Algorithm.Valid() {
		return fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, string(k.Algorithm))
	}
	if err := checkKeyType(k.Algorithm, k.Private); err != nil {
		return err
	}
	tp, err := Thumbprint(k.Private.Public())
	if err != nil {
		return err
	}
	if k.ID != tp {
		return fmt.Errorf("%w: want %q", ErrKeyIDMismatch, tp)
	}
	return nil
}

// document is the JSON stored under SecretKey.
type document struct {
	Version int           `json:"version"`
	Current string        `json:"current"`
	Keys    []documentKey `json:"keys"`
	// Revoked is optional (absent in documents written before revocation existed).
	Revoked []documentRevoked `json:"revoked,omitempty"`
}

type documentRevoked struct {
	Kid       string `json:"kid"`
	RevokedAt string `json:"revokedAt,omitempty"`
}

type documentKey struct {
	Kid         string `json:"kid"`
	Alg         string `json:"alg"`
	CreatedAt   string `json:"createdAt,omitempty"`
	ActivatesAt string `json:"activatesAt,omitempty"`
	RetiredAt   string `json:"retiredAt,omitempty"`
	ExpiresAt   string `json:"expiresAt,omitempty"`
	PrivateKey  string `json:"privateKey"`
}

// Encode validates the key set and renders it as Secret data: a single
// SecretKey entry holding a versioned JSON document with each private key as
// PKCS#8 PEM and lifecycle times as RFC 3339 UTC seconds (zero times omitted).
func (ks *KeySet) Encode() (map[string][]byte, error) {
	if err := ks.Validate(); err != nil {
		return nil, fmt.Errorf("encode key set: %w", err)
	}
	doc := document{Version: FormatVersion, Current: ks.CurrentID, Keys: make([]documentKey, 0, len(ks.Keys))}
	for i, k := range ks.Keys {
		der, err := x509.MarshalPKCS8PrivateKey(k.Private)
		if err != nil {
			return nil, fmt.Errorf("encode key set: key %d (kid %q): marshal private key: %w", i, k.ID, err)
		}
		doc.Keys = append(doc.Keys, documentKey{
			Kid:         k.ID,
			Alg:         string(k.Algorithm),
			CreatedAt:   formatTime(k.CreatedAt),
			ActivatesAt: formatTime(k.ActivatesAt),
			RetiredAt:   formatTime(k.RetiredAt),
			ExpiresAt:   formatTime(k.ExpiresAt),
			PrivateKey:  string(pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})),
		})
	}
	for _, r := range ks.Revoked {
		doc.Revoked = append(doc.Revoked, documentRevoked{Kid: r.ID, RevokedAt: formatTime(r.RevokedAt)})
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode key set: %w", err)
	}
	return map[string][]byte{SecretKey: b}, nil
}

// Decode parses Secret data written by Encode and validates the result (see
// KeySet.Validate). Unknown JSON members are ignored so that later writers of
// the same version can add optional fields. Errors wrap the sentinel errors
// of this package and never contain key material.
func Decode(data map[string][]byte) (*KeySet, error) {
	raw := data[SecretKey]
	if len(raw) == 0 {
		return nil, fmt.Errorf("decode key set: %w", ErrMissingData)
	}
	// Check the version before interpreting anything else, since another
	// version may shape the rest of the document differently.
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("decode key set: %w", jsonError(err))
	}
	if head.Version != FormatVersion {
		return nil, fmt.Errorf("decode key set: %w: %d (want %d)", ErrUnsupportedVersion, head.Version, FormatVersion)
	}
	var doc document
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decode key set: %w", jsonError(err))
	}
	ks := &KeySet{CurrentID: doc.Current, Keys: make([]*Key, 0, len(doc.Keys))}
	for i, dk := range doc.Keys {
		k, err := decodeKey(dk)
		if err != nil {
			return nil, fmt.Errorf("decode key set: key %d (kid %q): %w", i, dk.Kid, err)
		}
		ks.Keys = append(ks.Keys, k)
	}
	for i, dr := range doc.Revoked {
		at, err := parseTime(dr.RevokedAt)
		if err != nil {
			return nil, fmt.Errorf("decode key set: revoked key %d (kid %q): revokedAt: %w", i, dr.Kid, err)
		}
		ks.Revoked = append(ks.Revoked, RevokedKey{ID: dr.Kid, RevokedAt: at})
	}
	if err := ks.Validate(); err != nil {
		return nil, fmt.Errorf("decode key set: %w", err)
	}
	return ks, nil
}

func decodeKey(dk documentKey) (*Key, error) {
	alg, err := ParseAlgorithm(dk.Alg)
	if err != nil {
		return nil, err
	}
	priv, err := parsePrivateKeyPEM(dk.PrivateKey)
	if err != nil {
		return nil, err
	}
	k := &Key{ID: dk.Kid, Algorithm: alg, Private: priv}
	for _, f := range []struct {
		name string
		in   string
		out  *time.Time
	}{
		{"createdAt", dk.CreatedAt, &k.CreatedAt},
		{"activatesAt", dk.ActivatesAt, &k.ActivatesAt},
		{"retiredAt", dk.RetiredAt, &k.RetiredAt},
		{"expiresAt", dk.ExpiresAt, &k.ExpiresAt},
	} {
		if *f.out, err = parseTime(f.in); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return k, nil
}

// parsePrivateKeyPEM decodes exactly one PKCS#8 "PRIVATE KEY" PEM block.
// Its errors deliberately omit the input and the x509 error text.
func parsePrivateKeyPEM(s string) (crypto.Signer, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, fmt.Errorf("%w: private key: no PEM block", ErrMalformed)
	}
	if block.Type != pemType {
		return nil, fmt.Errorf("%w: private key: PEM block type %q, want %q", ErrMalformed, block.Type, pemType)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: private key: trailing data after PEM block", ErrMalformed)
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: private key: invalid PKCS#8 data", ErrMalformed)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: private key: unsupported key type %T", ErrMalformed, priv)
	}
	return signer, nil
}

// jsonError converts a JSON decoding error into an ErrMalformed error that
// carries position/field information but none of the document's content
// (a *json.SyntaxError message quotes the offending character).
func jsonError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: invalid JSON at offset %d", ErrMalformed, se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("%w: JSON field %q: unexpected %s", ErrMalformed, te.Field, te.Value)
	}
	return fmt.Errorf("%w: invalid JSON", ErrMalformed)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return normTime(t).Format(time.RFC3339)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: timestamp is not RFC 3339", ErrMalformed)
	}
	return normTime(t), nil
}

// JWKS returns the RFC 7517 JSON Web Key Set to publish at time now: the
// public members (kty, kid, alg, use "sig", and crv/x/y, n/e or crv/x) of
// every key whose ExpiresAt is zero or after now, including keys that are not
// active yet and retired keys that have not expired. The current key is
// always included. Order is deterministic: current first, then by CreatedAt
// and kid.
func (ks *KeySet) JWKS(now time.Time) ([]byte, error) {
	keys := make([]*Key, 0, len(ks.Keys))
	for _, k := range ks.Keys {
		if k == nil {
			continue
		}
		if k.ID == ks.CurrentID || k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt) {
			keys = append(keys, k)
		}
	}
	slices.SortStableFunc(keys, func(a, b *Key) int {
		if ac, bc := a.ID == ks.CurrentID, b.ID == ks.CurrentID; ac != bc {
			if ac {
				return -1
			}
			return 1
		}
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		if k.Private == nil {
			return nil, fmt.Errorf("jwks: key %q: %w: no private key", k.ID, ErrInvalidKeySet)
		}
		j, err := publicJWK(k.Private.Public())
		if err != nil {
			return nil, fmt.Errorf("jwks: key %q: %w", k.ID, err)
		}
		j.KeyID, j.Use, j.Algorithm = k.ID, "sig", string(k.Algorithm)
		set.Keys = append(set.Keys, j)
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return b, nil
}
