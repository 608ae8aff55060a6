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
// Only assertions whose signature verified are recorded, so its size follows the token
// requests of clients holding their keys, not an attacker's junk. Its memory is bounded
// in bytes: a fixed-size digest of (client_id, jti) per entry, at most maxEntries.
// When it is full of unexpired ids, new assertions are refused (never silently
// accepted) until ids expire. No client may hold more than perClient of its entries, so
// one tenant sending assertions at speed cannot fill it for the others.
type replayCache struct {
	maxEntries, perClient int

	mu      sync.Mutex
	seen    map[[sha256.Size]byte]seenID
	held    map[string]int // entries per client
	nextGC  time.Time
	gcEvery time.Duration
}

type seenID struct {
	until  time.Time
	client string
}

func newReplayCache(maxEntries int) *replayCache {
	return &replayCache{
		maxEntries: maxEntries, perClient: max(maxEntries/8, 1),
		seen: make(map[[sha256.Size]byte]seenID), held: map[string]int{}, gcEvery: 5 * time.Second,
	}
}

// firstUse records the assertion id of clientID, valid until exp, and returns "" when
// it had not been seen; else ReasonAssertionReplayed, or ReasonReplayCacheFull when
// there is no room for it.
func (c *replayCache) firstUse(clientID, jti string, exp, now time.Time) Reason {
	h := sha256.New()
	h.Write([]byte(clientID))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var key [sha256.Size]byte
	h.Sum(key[:0])

	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.seen[key]; ok && now.Before(prev.until) {
		return ReasonAssertionReplayed
	}
	// Expired ids are swept at most every gcEvery: a full cache (or client quota)
	// refuses until then rather than scanning on every request.
	if now.After(c.nextGC) {
		c.forgetExpired(now)
	}
	if len(c.seen) >= c.maxEntries || c.held[clientID] >= c.perClient {
		return ReasonReplayCacheFull
	}
	if prev, ok := c.seen[key]; ok { // expired, not yet forgotten
		c.held[prev.client]--
	}
	c.seen[key] = seenID{until: exp, client: clientID}
	c.held[clientID]++
	return ""
}

// forgetExpired drops the ids of expired assertions: they cannot be replayed, their
// expiry refuses them.
func (c *replayCache) forgetExpired(now time.Time) {
	for k, id := range c.seen {
		if !now.Before(id.until) {
			delete(c.seen, k)
			if c.held[id.client]--; c.held[id.client] <= 0 {
				delete(c.held, id.client)
			}
		}
	}
	c.nextGC = now.Add(c.gcEvery)
}

func (c *replayCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
