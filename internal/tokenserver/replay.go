package tokenserver

import (
	"crypto/sha256"
	"sync"
	"time"
)

// replayCache remembers the ids (jti) of accepted client assertions until they expire,
// so each assertion is used once. It is per replica: another replica does not know
// what this one accepted. An assertion lives at most privateKeyJWT.maxAssertionLifetime
// (5 minutes by default), which bounds both the window of a cross-replica replay and
// how long an id is remembered.
//
// Only assertions whose signature verified, of requests that are granted a token, are
// recorded (the check before then only reads), so its size follows the tokens issued to
// clients holding their keys, not an attacker's junk or requests refused later. Its memory is bounded
// in bytes: a fixed-size digest of (client_id, jti) per entry. When it has no room for
// an id, the assertion is refused (never silently accepted) until ids expire.
//
// Room is shared so that no tenant can take it from the others: the shared pool holds
// maxEntries ids, of which one namespace may hold a sixteenth and one client a
// thirty-second;
// beyond that (the pool full, or its namespace's or its own share spent), each client
// still has a reserve of its own, reservePerClient ids. A tenant sending assertions at
// speed from many clients of one namespace thus fills at most a sixteenth of the pool,
// and a client whose neighbours filled everything keeps its reserve: at most
// maxEntries + reservePerClient × (PrivateKeyJWT clients) ids, about 100 bytes each.
type replayCache struct {
	maxEntries, perNamespace, perClient, reservePerClient int

	mu sync.Mutex
	// seen maps the digest of (client_id, jti) to when the id may be forgotten.
	seen map[[sha256.Size]byte]seenID
	// pooled counts the ids in the shared pool; byNamespace and byClient count them
	// by namespace and by client, reserved the ids in each client's reserve.
	pooled      int
	byNamespace map[string]int
	byClient    map[string]int
	reserved    map[string]int
	nextGC      time.Time
	gcEvery     time.Duration
}

// reservePerClient is each client's reserve beyond the shared pool: enough for a client
// that asks for a token every 40 seconds with assertions of the longest lifetime.
const reservePerClient = 8

// pendingUse is an id checked as unused, to be recorded once its request is granted a
// token.
type pendingUse struct {
	cache             *replayCache
	namespace, client string
	key               [sha256.Size]byte
	until             time.Time
}

// record records the id: "" when it is still unused, else why not (replayed by a
// request that got there first, or no room).
func (p *pendingUse) record(now time.Time) Reason {
	return p.cache.firstUseOf(p.namespace, p.client, p.key, p.until, now)
}

type seenID struct {
	until             time.Time
	namespace, client string
	// reserved: the id is in the client's reserve, not the pool.
	reserved bool
}

func newReplayCache(maxEntries int) *replayCache {
	return &replayCache{
		maxEntries: maxEntries, perNamespace: max(maxEntries/16, 1), perClient: max(maxEntries/32, 1),
		reservePerClient: reservePerClient,
		seen:             make(map[[sha256.Size]byte]seenID), byNamespace: map[string]int{}, byClient: map[string]int{},
		reserved: map[string]int{}, gcEvery: 5 * time.Second,
	}
}

// firstUse records the assertion id of clientID (of namespace), valid until exp, and
// returns "" when it had not been seen; else ReasonAssertionReplayed, or
// ReasonReplayCacheFull when there is no room for it.
func (c *replayCache) firstUse(namespace, clientID, jti string, exp, now time.Time) Reason {
	return c.firstUseOf(namespace, clientID, idDigest(clientID, jti), exp, now)
}

// used reports whether the id key was used before and has not expired: a read, which
// records nothing (firstUseOf records).
func (c *replayCache) used(key [sha256.Size]byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, ok := c.seen[key]
	return ok && now.Before(prev.until)
}

// idDigest is the key of an id within scope: sha256(scope, 0, id).
func idDigest(scope, id string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(scope))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

// firstUseOf is firstUse of an id already digested, within the scope the caller
// chose (an assertion id is the client's; a DPoP proof id is its key's), charged to
// clientID's shares.
func (c *replayCache) firstUseOf(namespace, clientID string, key [sha256.Size]byte, exp, now time.Time) Reason {
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.seen[key]; ok {
		if now.Before(prev.until) {
			return ReasonAssertionReplayed
		}
		c.forget(key, prev) // expired, not yet swept
	}
	// Expired ids are swept at most every gcEvery: a full cache refuses until then
	// rather than scanning on every request.
	if now.After(c.nextGC) {
		c.forgetExpired(now)
	}
	id := seenID{until: exp, namespace: namespace, client: clientID}
	switch {
	case c.pooled < c.maxEntries && c.byNamespace[namespace] < c.perNamespace && c.byClient[clientID] < c.perClient:
		c.pooled++
		c.byNamespace[namespace]++
		c.byClient[clientID]++
	case c.reserved[clientID] < c.reservePerClient:
		id.reserved = true
		c.reserved[clientID]++
	default:
		return ReasonReplayCacheFull
	}
	c.seen[key] = id
	return ""
}

// forgetExpired drops the ids of expired assertions: they cannot be replayed, their
// expiry refuses them.
func (c *replayCache) forgetExpired(now time.Time) {
	for k, id := range c.seen {
		if !now.Before(id.until) {
			c.forget(k, id)
		}
	}
	c.nextGC = now.Add(c.gcEvery)
}

func (c *replayCache) forget(k [sha256.Size]byte, id seenID) {
	delete(c.seen, k)
	if id.reserved {
		decrement(c.reserved, id.client)
		return
	}
	c.pooled--
	decrement(c.byNamespace, id.namespace)
	decrement(c.byClient, id.client)
}

func decrement(m map[string]int, k string) {
	if m[k]--; m[k] <= 0 {
		delete(m, k)
	}
}

// size is the number of ids remembered, pooled and reserved.
func (c *replayCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
