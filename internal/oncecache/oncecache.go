// Package oncecache remembers ids until they expire so that each is used once, in
// memory bounded so that no client, nor one tenant's clients, can take the room of
// the others. The token server keeps one for client-assertion ids and one for DPoP
// proof ids; pkg/verifier one for the DPoP proofs an API accepts.
//
// Room is shared: the pool holds maxEntries ids, of which one namespace may hold a
// sixteenth and one client a thirty-second; beyond that (the pool full, or the
// namespace's or the client's share spent) each client keeps a reserve of its own.
// An id with no room is refused (ErrNoRoom), never accepted unrecorded, until ids
// expire. At most maxEntries + reserve × (clients) ids, about 100 bytes each: a
// fixed-size digest per id with its bookkeeping.
package oncecache

import (
	"crypto/sha256"
	"errors"
	"sync"
	"time"
)

var (
	// ErrUsed: the id was used before and has not expired.
	ErrUsed = errors.New("used before")
	// ErrNoRoom: the id was not used before, but its client has no room left.
	ErrNoRoom = errors.New("no room to remember the id")
)

// Key is the digest of an id within its scope (KeyOf).
type Key [sha256.Size]byte

// KeyOf is the key of id within scope: sha256(scope, 0, id). The scope is what an id
// is unique to (an assertion's client, a proof's key).
func KeyOf(scope, id string) Key {
	h := sha256.New()
	h.Write([]byte(scope))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var k Key
	h.Sum(k[:0])
	return k
}

// Limits are a Cache's room: the pool and the shares of it.
type Limits struct {
	// MaxEntries is the pool; PerNamespace and PerClient the most one namespace and
	// one client hold of it; ReservePerClient each client's room beyond it.
	MaxEntries, PerNamespace, PerClient, ReservePerClient int
}

// Cache remembers ids; safe for concurrent use.
type Cache struct {
	limits  Limits
	gcEvery time.Duration

	mu   sync.Mutex
	seen map[Key]entry
	// pooled counts the ids in the pool, byNamespace and byClient them by namespace
	// and client; reserved counts the ids in each client's reserve.
	pooled      int
	byNamespace map[string]int
	byClient    map[string]int
	reserved    map[string]int
	nextGC      time.Time
}

type entry struct {
	until             time.Time
	namespace, client string
	// reserved: the id is in its client's reserve, not the pool.
	reserved bool
}

// New returns a Cache of a pool of maxEntries (at least 1 per namespace and client)
// and reservePerClient, which sweeps expired ids at most every gcEvery: a full cache
// refuses until then rather than scanning at every id.
func New(maxEntries, reservePerClient int, gcEvery time.Duration) *Cache {
	return &Cache{
		limits: Limits{MaxEntries: maxEntries, PerNamespace: max(maxEntries/16, 1), PerClient: max(maxEntries/32, 1),
			ReservePerClient: reservePerClient},
		gcEvery: gcEvery,
		seen:    map[Key]entry{}, byNamespace: map[string]int{}, byClient: map[string]int{}, reserved: map[string]int{},
	}
}

// Limits returns the cache's room.
func (c *Cache) Limits() Limits { return c.limits }

// Used reports whether key was used and has not expired: a read, which records
// nothing.
func (c *Cache) Used(key Key, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, ok := c.seen[key]
	return ok && now.Before(prev.until)
}

// FirstUse records key, charged to client of namespace, until until: nil when it had
// not been used, else ErrUsed, or ErrNoRoom when the client has no room for it.
func (c *Cache) FirstUse(key Key, namespace, client string, until, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.seen[key]; ok {
		if now.Before(prev.until) {
			return ErrUsed
		}
		c.forget(key, prev) // expired, not yet swept
	}
	if now.After(c.nextGC) {
		for k, e := range c.seen {
			if !now.Before(e.until) {
				c.forget(k, e)
			}
		}
		c.nextGC = now.Add(c.gcEvery)
	}
	e := entry{until: until, namespace: namespace, client: client}
	l := c.limits
	switch {
	case c.pooled < l.MaxEntries && c.byNamespace[namespace] < l.PerNamespace && c.byClient[client] < l.PerClient:
		c.pooled++
		c.byNamespace[namespace]++
		c.byClient[client]++
	case c.reserved[client] < l.ReservePerClient:
		e.reserved = true
		c.reserved[client]++
	default:
		return ErrNoRoom
	}
	c.seen[key] = e
	return nil
}

func (c *Cache) forget(k Key, e entry) {
	delete(c.seen, k)
	if e.reserved {
		decrement(c.reserved, e.client)
		return
	}
	c.pooled--
	decrement(c.byNamespace, e.namespace)
	decrement(c.byClient, e.client)
}

func decrement(m map[string]int, k string) {
	if m[k]--; m[k] <= 0 {
		delete(m, k)
	}
}

// Len is the number of ids remembered, pooled and reserved.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// Pooled is the number of ids in the pool.
func (c *Cache) Pooled() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pooled
}
