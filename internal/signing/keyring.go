package signing

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// Loaded is one immutable generation of the key set as the token server uses it: the
// signer of the current key and the JWKS document, both prepared once per change.
type Loaded struct {
	// Set is the decoded key set.
	Set *KeySet
	// Signer signs with Set's current key.
	Signer *Signer
	// JWKS is the public JWK Set document (RFC 7517).
	JWKS []byte
	// Algorithms lists the algorithms of the published keys, current first.
	Algorithms []string
	// Version identifies the source (the Secret's resourceVersion).
	Version string
}

// Keyring holds the key set currently in force. Readers never block: Load returns the
// latest generation, replaced atomically by Store.
type Keyring struct {
	loaded atomic.Pointer[Loaded]
}

// Load returns the keys in force, or nil before the first Store.
func (k *Keyring) Load() *Loaded { return k.loaded.Load() }

// Store prepares ks (signer, JWKS) and puts it in force.
func (k *Keyring) Store(ks *KeySet, version string, now time.Time) (*Loaded, error) {
	if err := ks.Validate(); err != nil {
		return nil, err
	}
	signer, err := NewSigner(ks.Current())
	if err != nil {
		return nil, fmt.Errorf("prepare signer: %w", err)
	}
	jwks, err := ks.JWKS(now)
	if err != nil {
		return nil, fmt.Errorf("build JWKS: %w", err)
	}
	algs := []string{string(ks.Current().Algorithm)}
	for _, key := range ks.Keys {
		a := string(key.Algorithm)
		if !slices.Contains(algs, a) && (key.ExpiresAt.IsZero() || now.Before(key.ExpiresAt)) {
			algs = append(algs, a)
		}
	}
	l := &Loaded{Set: ks, Signer: signer, JWKS: jwks, Algorithms: algs, Version: version}
	k.loaded.Store(l)
	return l, nil
}
