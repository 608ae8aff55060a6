package signing

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// RevokedKey is a key revoked in an emergency: it is never published, loaded or used
// to sign again.
type RevokedKey struct {
	// ID is the revoked key's id (kid).
	ID string
	// RevokedAt is when it was revoked (UTC, seconds).
	RevokedAt time.Time
}

// RevokeAll in a revocation request names every key of the set.
const RevokeAll = "all"

// ParseRevokeRequest splits a revocation request: key ids separated by commas or
// white space, or RevokeAll. Duplicates are dropped; order is kept.
func ParseRevokeRequest(s string) []string {
	var kids []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if !slices.Contains(kids, f) {
			kids = append(kids, f)
		}
	}
	return kids
}

// IsRevoked reports whether kid is in the set's revoked list.
func (ks *KeySet) IsRevoked(kid string) bool {
	return slices.ContainsFunc(ks.Revoked, func(r RevokedKey) bool { return r.ID == kid })
}

// Revoke revokes the keys named by kids (RevokeAll: every key) at once: they leave
// the set, and so the JWKS, with no grace, and are listed in Revoked so that they are
// never loaded again. A new key of algorithm alg is generated and signs from now, with
// no propagation delay (a verifier that does not know it yet fetches the JWKS again
// on its unknown kid); the previous current key, when it is not revoked, is retired as
// in a rotation and stays published for retireAfter, so the tokens it signed keep
// verifying.
//
// unknown lists the requested ids that are neither in the set nor revoked already;
// ids revoked already are ignored. When no key of the set is named, nothing changes.
// changes describes what changed, for logs and events (key ids only).
func (ks *KeySet) Revoke(kids []string, alg Algorithm, retireAfter time.Duration, now time.Time) (changes, unknown []string, err error) {
	now = now.UTC().Truncate(time.Second)
	if ks.Current() == nil {
		return nil, nil, fmt.Errorf("%w: no current key", ErrInvalidKeySet)
	}
	var revoke []string
	for _, kid := range kids {
		switch {
		case kid == RevokeAll:
			for _, k := range ks.Keys {
				if !slices.Contains(revoke, k.ID) {
					revoke = append(revoke, k.ID)
				}
			}
		case ks.Find(kid) != nil:
			if !slices.Contains(revoke, kid) {
				revoke = append(revoke, kid)
			}
		case ks.IsRevoked(kid):
		default:
			unknown = append(unknown, kid)
		}
	}
	if len(revoke) == 0 {
		return nil, unknown, nil
	}

	key, err := GenerateKey(alg, now)
	if err != nil {
		return nil, unknown, err
	}
	kept := make([]*Key, 0, len(ks.Keys)+1)
	for _, k := range ks.Keys {
		if slices.Contains(revoke, k.ID) {
			ks.Revoked = append(ks.Revoked, RevokedKey{ID: k.ID, RevokedAt: now})
			changes = append(changes, "revoked key "+k.ID+": removed from the JWKS")
			continue
		}
		if k.ID == ks.CurrentID {
			k.RetiredAt = now
			k.ExpiresAt = now.Add(retireAfter)
			changes = append(changes, fmt.Sprintf("retired key %s stays published until %s", k.ID, k.ExpiresAt.Format(time.RFC3339)))
		}
		kept = append(kept, k)
	}
	ks.Keys = append(kept, key)
	ks.CurrentID = key.ID
	changes = append(changes, fmt.Sprintf("key %s (%s) signs now", key.ID, key.Algorithm))
	return changes, unknown, nil
}

// WithoutRevoked returns the set without the keys revoked per its own list or per
// also (a process's memory of revocations); dropped names them. It fails with
// ErrRevokedKey when the current key is revoked: such a set must not be loaded, and
// only a new revocation (Revoke) can make it usable again.
func (ks *KeySet) WithoutRevoked(also *Revocations) (clean *KeySet, dropped []string, err error) {
	revoked := func(kid string) bool { return ks.IsRevoked(kid) || also.Has(kid) }
	if revoked(ks.CurrentID) {
		return nil, nil, fmt.Errorf("%w: the current key %s is revoked", ErrRevokedKey, ks.CurrentID)
	}
	clean = &KeySet{CurrentID: ks.CurrentID, Revoked: slices.Clone(ks.Revoked)}
	for _, k := range ks.Keys {
		if revoked(k.ID) {
			dropped = append(dropped, k.ID)
			continue
		}
		clean.Keys = append(clean.Keys, k)
	}
	for _, r := range also.List() {
		if !clean.IsRevoked(r.ID) {
			clean.Revoked = append(clean.Revoked, r)
		}
	}
	return clean, dropped, nil
}

// Revocations remembers every key revocation a process has seen, in any version of
// the key Secret or by its own action, so a later version that brings a revoked key
// back (a restored backup, a stale write) is not loaded. Safe for concurrent use; the
// nil value is an empty set that ignores Add.
type Revocations struct {
	mu  sync.Mutex
	ids []RevokedKey
}

// Add records revocations.
func (r *Revocations) Add(keys ...RevokedKey) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if !slices.ContainsFunc(r.ids, func(x RevokedKey) bool { return x.ID == k.ID }) {
			r.ids = append(r.ids, k)
		}
	}
}

// Has reports whether kid was revoked.
func (r *Revocations) Has(kid string) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.ids, func(x RevokedKey) bool { return x.ID == kid })
}

// List returns the revocations recorded, oldest first.
func (r *Revocations) List() []RevokedKey {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}
