package verifier

import (
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"time"
)

// ErrDPoPReplayCacheFull is returned (wrapped) by VerifyDPoP for a proof
// that is valid but cannot be remembered: the replay cache holds no room
// for the client that made it. It is a server-side condition, not a verdict
// on the proof (the Middleware answers 503 with Retry-After), and does not
// wrap ErrInvalidDPoPProof.
var ErrDPoPReplayCacheFull = errors.New("DPoP replay cache full")

// proofCache remembers the jtis of the DPoP proofs a Verifier accepted until
// they are too old to be accepted again, so each proof is used once. Only
// proofs bound to a valid access token reach it, so its size follows the
// requests of clients holding tokens for this API, never an anonymous
// caller's junk. It holds a digest of (key thumbprint, jti) per proof,
// about 100 bytes with its bookkeeping.
//
// Room is shared so that no client, nor one tenant's clients, can take it
// from the others: the pool holds maxEntries proofs, of which one namespace
// (of a client_id <namespace>.<name>, as the operator gives them; the whole
// id otherwise) may hold a sixteenth and one client a thirty-second; beyond
// that each client keeps a reserve of its own, reservePerClient proofs. When a client has no room left, its proofs are
// refused (ErrDPoPReplayCacheFull, never accepted unrecorded) until some of
// its own expire. At most maxEntries + reservePerClient × (clients with
// tokens for this API) entries.
type proofCache struct {
	maxEntries, perNamespace, perClient, reservePerClient int

	mu sync.Mutex
	// seen maps the digest of (thumbprint, jti) to its entry.
	seen        map[[sha256.Size]byte]proofEntry
	pooled      int
	byNamespace map[string]int
	byClient    map[string]int
	reserved    map[string]int
	nextGC      time.Time
}

// proofReservePerClient is each client's reserve beyond the shared pool.
const proofReservePerClient = 64

// proofGCEvery is how often expired entries are swept.
const proofGCEvery = 5 * time.Second

type proofEntry struct {
	until    time.Time
	client   string
	reserved bool
}

func newProofCache(maxEntries int) *proofCache {
	return &proofCache{
		maxEntries: maxEntries, perNamespace: max(maxEntries/16, 1), perClient: max(maxEntries/32, 1),
		reservePerClient: proofReservePerClient,
		seen:             map[[sha256.Size]byte]proofEntry{}, byNamespace: map[string]int{}, byClient: map[string]int{},
		reserved: map[string]int{},
	}
}

// firstUse records the proof jti of the key thumbprint, used by client,
// until until; it returns nil when the proof had not been seen, else a
// *DPoPProofError (replay) or ErrDPoPReplayCacheFull.
func (c *proofCache) firstUse(client, thumbprint, jti string, until, now time.Time) error {
	h := sha256.New()
	h.Write([]byte(thumbprint))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var key [sha256.Size]byte
	h.Sum(key[:0])

	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.seen[key]; ok {
		if now.Before(prev.until) {
			return proofError(DPoPCheckReplay, "the proof was used before: make one for each request")
		}
		c.forget(key, prev)
	}
	if now.After(c.nextGC) {
		for k, e := range c.seen {
			if !now.Before(e.until) {
				c.forget(k, e)
			}
		}
		c.nextGC = now.Add(proofGCEvery)
	}
	ns, _, _ := strings.Cut(client, ".")
	e := proofEntry{until: until, client: client}
	switch {
	case c.pooled < c.maxEntries && c.byNamespace[ns] < c.perNamespace && c.byClient[client] < c.perClient:
		c.pooled++
		c.byNamespace[ns]++
		c.byClient[client]++
	case c.reserved[client] < c.reservePerClient:
		e.reserved = true
		c.reserved[client]++
	default:
		return ErrDPoPReplayCacheFull
	}
	c.seen[key] = e
	return nil
}

func (c *proofCache) forget(k [sha256.Size]byte, e proofEntry) {
	delete(c.seen, k)
	if e.reserved {
		decrement(c.reserved, e.client)
		return
	}
	c.pooled--
	ns, _, _ := strings.Cut(e.client, ".")
	decrement(c.byNamespace, ns)
	decrement(c.byClient, e.client)
}

func decrement(m map[string]int, k string) {
	if m[k]--; m[k] <= 0 {
		delete(m, k)
	}
}

// size is the number of proofs remembered.
func (c *proofCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
