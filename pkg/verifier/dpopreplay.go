package verifier

import (
	"errors"
	"strings"
	"time"

	"github.com/oauth-client-operator/oauth-client-operator/internal/oncecache"
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
// from the others (package oncecache); a client's namespace is the first
// part of a client_id <namespace>.<name>, as the operator gives them (the
// whole id otherwise). When a client has no room left, its proofs are
// refused (ErrDPoPReplayCacheFull, never accepted unrecorded) until some of
// its own expire.
type proofCache struct{ *oncecache.Cache }

// proofReservePerClient is each client's reserve beyond the shared pool.
const proofReservePerClient = 64

// proofGCEvery is how often expired entries are swept.
const proofGCEvery = 5 * time.Second

func newProofCache(maxEntries int) *proofCache {
	return &proofCache{oncecache.New(maxEntries, proofReservePerClient, proofGCEvery)}
}

// firstUse records the proof jti of the key thumbprint, used by client,
// until until; it returns nil when the proof had not been seen, else a
// *DPoPProofError (replay) or ErrDPoPReplayCacheFull.
func (c *proofCache) firstUse(client, thumbprint, jti string, until, now time.Time) error {
	ns, _, _ := strings.Cut(client, ".")
	switch err := c.FirstUse(oncecache.KeyOf(thumbprint, jti), ns, client, until, now); {
	case err == nil:
		return nil
	case errors.Is(err, oncecache.ErrUsed):
		return proofError(DPoPCheckReplay, "the proof was used before: make one for each request")
	default:
		return ErrDPoPReplayCacheFull
	}
}
