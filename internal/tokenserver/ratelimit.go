package tokenserver

import (
	"math"
	"sync"
	"time"
)

// failureLimiter limits failed client authentications per key (a client_id, a source
// address) with token buckets: each key may fail burst times at once, then rate times
// a second. Successful requests spend nothing, so a client that knows its secret is
// only ever held back while its own id or address is being hammered.
//
// Memory is bounded: at most maxKeys buckets are kept; a full table first forgets
// buckets that have refilled (they hold no information), then arbitrary ones.
type failureLimiter struct {
	rate    float64 // tokens per second
	burst   float64
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newFailureLimiter(perMinute, burst, maxKeys int) *failureLimiter {
	return &failureLimiter{
		rate: float64(perMinute) / 60, burst: float64(burst), maxKeys: maxKeys,
		buckets: make(map[string]*bucket),
	}
}

// refill brings b up to date at now.
func (l *failureLimiter) refill(b *bucket, now time.Time) {
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
}

// retryAfter reports whether key is blocked at now, and for how long.
func (l *failureLimiter) retryAfter(key string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		return 0, false
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		return 0, false
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), true
}

// fail spends one token of key.
func (l *failureLimiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.maxKeys {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	b.tokens = math.Max(0, b.tokens-1)
}

// evict makes room: refilled buckets first, else a tenth of the table.
func (l *failureLimiter) evict(now time.Time) {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.maxKeys*9/10 {
			break
		}
		delete(l.buckets, k)
	}
}

func (l *failureLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// requestLimiter enforces each client's own request rate (spec.rateLimit). Its keys
// are authenticated clients only, so its size follows the number of clients; it is
// bounded all the same.
type requestLimiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	maxKeys int
}

func newRequestLimiter(maxKeys int) *requestLimiter {
	return &requestLimiter{buckets: make(map[string]*bucket), maxKeys: maxKeys}
}

// take spends one request of key's bucket (perMinute, burst); when none is left it
// reports how long until one is.
func (l *requestLimiter) take(key string, perMinute, burst int, now time.Time) (time.Duration, bool) {
	rate := float64(perMinute) / 60
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.maxKeys {
			for k := range l.buckets { // forget an arbitrary client: it merely gets a full bucket
				delete(l.buckets, k)
				break
			}
		}
		b = &bucket{tokens: float64(burst), last: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / rate * float64(time.Second)), false
	}
	b.tokens--
	return 0, true
}
