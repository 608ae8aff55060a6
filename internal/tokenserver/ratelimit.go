package tokenserver

import (
	"math"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failureLimiter limits failed client authentications per source address (the
// client address, see Options.ClientAddr; canonical, so that the same client always
// has the same key; anything that is not an IP address shares the zero key) with token buckets (golang.org/x/time/rate): an
// address may fail burst times at once, then rate times a second; while its bucket is
// empty every token request from it answers 429. Successful requests spend nothing.
//
// Only addresses are keys, never client_ids: client ids are public, so a limit per
// client_id would let anyone lock out any client, and with 256-bit secrets it would
// protect nothing. Requests from one address therefore never make another address's
// requests fail.
//
// Memory is bounded in bytes: at most maxKeys buckets, each keyed by a netip.Addr
// (fixed size, whatever a request sent); about 130 bytes a key with the map's
// overhead, so the default 100000 keys take about 13 MiB
// (TestFailureLimiterMemoryBound). A full table first forgets buckets that have
// refilled (they hold no information), then arbitrary ones, down to nine tenths:
// forgetting an address only gives it a full bucket again.
type failureLimiter struct {
	limit   rate.Limit
	burst   int
	maxKeys int

	mu      sync.Mutex
	buckets map[netip.Addr]*rate.Limiter
}

func newFailureLimiter(perMinute, burst, maxKeys int) *failureLimiter {
	return &failureLimiter{
		limit: rate.Limit(float64(perMinute) / 60), burst: burst, maxKeys: maxKeys,
		buckets: make(map[netip.Addr]*rate.Limiter),
	}
}

// retryAfter reports whether addr is blocked at now, and for how long.
func (l *failureLimiter) retryAfter(addr netip.Addr, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	b := l.buckets[addr]
	l.mu.Unlock()
	if b == nil {
		return 0, false
	}
	tokens := b.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	return time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second)), true
}

// fail spends one token of addr's bucket.
func (l *failureLimiter) fail(key netip.Addr, now time.Time) {
	l.mu.Lock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.maxKeys {
			l.evict(now)
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[key] = b
	}
	l.mu.Unlock()
	b.AllowN(now, 1) // an empty bucket stays empty
}

// evict makes room: refilled buckets first, then arbitrary ones down to nine tenths.
func (l *failureLimiter) evict(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
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

// throttled refuses a request from an address that has failed to authenticate too
// often. Successful requests spend nothing.
func (s *Server) throttled(addr netip.Addr) *oauthError {
	if s.failures == nil {
		return nil
	}
	d, blocked := s.failures.retryAfter(addr, s.clock.Now())
	if !blocked {
		return nil
	}
	return &oauthError{status: http.StatusTooManyRequests, code: errTemporarilyUnavail,
		description: "too many failed authentication attempts from this address; retry later",
		retryAfter:  max(d, time.Second), reason: ReasonAddressThrottled}
}

// failed counts a failed client authentication against the address it came from.
func (s *Server) failed(addr netip.Addr) {
	if s.failures != nil {
		s.failures.fail(addr, s.clock.Now())
	}
}

// requestLimiter enforces each client's own request rate (spec.rateLimit). Its keys
// are authenticated clients only, so its size follows the number of clients; it is
// bounded all the same.
type requestLimiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	maxKeys int
}

type bucket struct {
	tokens float64
	last   time.Time
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
