package controllers

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
)

// generationBurst is how many credentials a client may have generated at once before
// its budget refills (one per clients.rotateSecretMinInterval): a creation and a switch
// of method and a rotation in a row are never held back.
const generationBurst = 3

// maxBudgets bounds the clients whose budget is remembered; a full table forgets the
// budgets that have refilled (they hold no information).
const maxBudgets = 100_000

// generationBudget bounds the credentials (secrets, key pairs) generated for one client,
// whatever asks for them: rotate-secret values, a Secret deleted or a key removed by
// hand, switches of method. The rotation annotations in the Secret cannot bound that:
// the tenant who owns the client can write its Secret. The budget lives in the leader's
// memory (a new leader starts with full budgets), per client UID.
type generationBudget struct {
	every time.Duration

	mu       sync.Mutex
	limiters map[types.UID]*rate.Limiter
}

func newGenerationBudget(every time.Duration) *generationBudget {
	return &generationBudget{every: every, limiters: map[types.UID]*rate.Limiter{}}
}

// take spends one generation of uid's budget at now, or reports how long until one is
// left.
func (b *generationBudget) take(uid types.UID, now time.Time) (time.Duration, bool) {
	wait, _, ok := b.reserve(uid, now)
	return wait, ok
}

// reserve is take that also returns refund, which gives the generation back: for a
// credential that was never stored (its Secret's create found one already there).
func (b *generationBudget) reserve(uid types.UID, now time.Time) (wait time.Duration, refund func(), ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.limiters[uid]
	if l == nil {
		if len(b.limiters) >= maxBudgets {
			for k, old := range b.limiters {
				if old.TokensAt(now) >= generationBurst {
					delete(b.limiters, k)
				}
			}
		}
		l = rate.NewLimiter(rate.Every(b.every), generationBurst)
		b.limiters[uid] = l
	}
	r := l.ReserveN(now, 1)
	if r.OK() && r.DelayFrom(now) == 0 {
		// Cancelled at the time it was taken: a reservation cancelled later than
		// that restores nothing.
		return 0, func() { r.CancelAt(now) }, true
	}
	wait = r.DelayFrom(now)
	r.CancelAt(now)
	return max(wait, time.Second), nil, false
}
