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
// accepted) until ids expire.
type replayCache struct {
	maxEntries int

	mu      sync.Mutex
	seen    map[[sha256.Size]byte]time.Time
	nextGC  time.Time
	gcEvery time.Duration
}

func newReplayCache(maxEntries int) *replayCache {
	return &replayCache{maxEntries: maxEntries, seen: make(map[[sha256.Size]byte]time.Time), gcEvery: time.Minute}
}

// firstUse records the assertion id of clientID, valid until exp, and reports whether
// it had not been seen: false for a replay, and when the cache is full.
func (c *replayCache) firstUse(clientID, jti string, exp, now time.Time) bool {
	h := sha256.New()
	h.Write([]byte(clientID))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var key [sha256.Size]byte
	h.Sum(key[:0])

	c.mu.Lock()
	defer c.mu.Unlock()
	if until, ok := c.seen[key]; ok && now.Before(until) {
		return false
	}
	if now.After(c.nextGC) || len(c.seen) >= c.maxEntries {
		c.forgetExpired(now)
	}
	if len(c.seen) >= c.maxEntries {
		return false
	}
	c.seen[key] = exp
	return true
}

// forgetExpired drops the ids of expired assertions: they cannot be replayed, their
// expiry refuses them.
func (c *replayCache) forgetExpired(now time.Time) {
	for k, until := range c.seen {
		if !now.Before(until) {
			delete(c.seen, k)
		}
	}
	c.nextGC = now.Add(c.gcEvery)
}

func (c *replayCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
