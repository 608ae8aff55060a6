package signing

import (
	"fmt"
	"time"
)

// Policy says when keys rotate.
type Policy struct {
	// Algorithm of new keys; a current key of another algorithm is rotated out.
	Algorithm Algorithm
	// Interval is how long a key signs before the next one is published.
	Interval time.Duration
	// PropagationDelay is how long a new key is published in the JWKS before it signs,
	// so every verifier's cached JWKS holds it first.
	PropagationDelay time.Duration
	// RetireAfter is how long a retired key stays in the JWKS: the longest token
	// lifetime plus leeway, so every token it signed still verifies.
	RetireAfter time.Duration
}

// Rotate moves the key set through its lifecycle at time now: it removes keys whose
// tokens have all expired, makes a published key current once its propagation delay
// has passed (retiring the old one), and publishes a new key when the current one is
// due (interval, algorithm change, or force). It reports what it changed, for logs and
// events, and when to look again (zero: nothing pending).
func (ks *KeySet) Rotate(p Policy, now time.Time, force bool) (changes []string, next time.Time, err error) {
	now = now.UTC().Truncate(time.Second)
	cur := ks.Current()
	if cur == nil {
		return nil, time.Time{}, fmt.Errorf("%w: no current key", ErrInvalidKeySet)
	}

	// 1. Drop keys whose tokens have all expired.
	kept := ks.Keys[:0]
	for _, k := range ks.Keys {
		if k.ID != ks.CurrentID && !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
			changes = append(changes, "removed expired key "+k.ID)
			continue
		}
		kept = append(kept, k)
	}
	ks.Keys = kept

	// 2. A published key whose propagation delay has passed starts signing.
	pending := ks.pending()
	if pending != nil && !now.Before(pending.ActivatesAt) {
		cur.RetiredAt = now
		cur.ExpiresAt = now.Add(p.RetireAfter)
		ks.CurrentID = pending.ID
		changes = append(changes, fmt.Sprintf("key %s signs now; retired key %s stays published until %s", pending.ID, cur.ID, cur.ExpiresAt.Format(time.RFC3339)))
		cur, pending = pending, nil
	}

	// 3. Publish the next key when the current one is due.
	if pending == nil {
		reason := ""
		switch {
		case force:
			reason = "rotation requested"
		case cur.Algorithm != p.Algorithm:
			reason = fmt.Sprintf("algorithm changed from %s to %s", cur.Algorithm, p.Algorithm)
		case p.Interval > 0 && !now.Before(activeSince(cur).Add(p.Interval)):
			reason = "rotation interval passed"
		}
		if reason != "" {
			key, err := GenerateKey(p.Algorithm, now)
			if err != nil {
				return changes, time.Time{}, err
			}
			key.ActivatesAt = now.Add(p.PropagationDelay)
			ks.Keys = append(ks.Keys, key)
			pending = key
			changes = append(changes, fmt.Sprintf("published key %s (%s, %s); it signs from %s", key.ID, key.Algorithm, reason, key.ActivatesAt.Format(time.RFC3339)))
		}
	}

	// When to look again: the next activation, rotation or removal.
	consider := func(t time.Time) {
		if !t.IsZero() && t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if pending != nil {
		consider(pending.ActivatesAt)
	} else if p.Interval > 0 {
		consider(activeSince(cur).Add(p.Interval))
	}
	for _, k := range ks.Keys {
		if k.ID != ks.CurrentID {
			consider(k.ExpiresAt)
		}
	}
	return changes, next, nil
}

// pending is the published key waiting to sign, if any.
func (ks *KeySet) pending() *Key {
	for _, k := range ks.Keys {
		if k.ID != ks.CurrentID && k.RetiredAt.IsZero() {
			return k
		}
	}
	return nil
}

// activeSince is when a key started signing.
func activeSince(k *Key) time.Time {
	if !k.ActivatesAt.IsZero() {
		return k.ActivatesAt
	}
	return k.CreatedAt
}
