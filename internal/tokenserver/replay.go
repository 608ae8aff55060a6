package tokenserver

import (
	"errors"
	"time"

	"github.com/oauth-client-operator/oauth-client-operator/internal/oncecache"
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
// Room is shared so that no tenant can take it from the others (package oncecache):
// a tenant sending assertions at speed from many clients of one namespace fills at
// most a sixteenth of the pool, and a client whose neighbours filled everything keeps
// its reserve of reservePerClient ids.
type replayCache struct{ *oncecache.Cache }

// reservePerClient is each client's reserve beyond the shared pool: enough for a client
// that asks for a token every 40 seconds with assertions of the longest lifetime.
const reservePerClient = 8

// pendingUse is an id checked as unused, to be recorded once its request is granted a
// token.
type pendingUse struct {
	cache             *replayCache
	namespace, client string
	key               oncecache.Key
	until             time.Time
}

// record records the id: "" when it is still unused, else why not (replayed by a
// request that got there first, or no room).
func (p *pendingUse) record(now time.Time) Reason {
	return p.cache.firstUseOf(p.namespace, p.client, p.key, p.until, now)
}

func newReplayCache(maxEntries int) *replayCache {
	return &replayCache{oncecache.New(maxEntries, reservePerClient, 5*time.Second)}
}

// firstUse records the assertion id of clientID (of namespace), valid until exp, and
// returns "" when it had not been seen; else ReasonAssertionReplayed, or
// ReasonReplayCacheFull when there is no room for it.
func (c *replayCache) firstUse(namespace, clientID, jti string, exp, now time.Time) Reason {
	return c.firstUseOf(namespace, clientID, oncecache.KeyOf(clientID, jti), exp, now)
}

// firstUseOf is firstUse of an id already digested, within the scope the caller
// chose (an assertion id is the client's; a DPoP proof id is its key's), charged to
// clientID's shares.
func (c *replayCache) firstUseOf(namespace, clientID string, key oncecache.Key, exp, now time.Time) Reason {
	switch err := c.FirstUse(key, namespace, clientID, exp, now); {
	case err == nil:
		return ""
	case errors.Is(err, oncecache.ErrUsed):
		return ReasonAssertionReplayed
	default:
		return ReasonReplayCacheFull
	}
}
