package tokenserver

import (
	"fmt"
	"testing"
	"time"
)

// TestReplayCache: an id is accepted once until it expires; one client cannot take
// more than its share of the cache, so others keep authenticating; a full cache
// refuses rather than forgets, and expired ids make room again.
func TestReplayCache(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	c := newReplayCache(1000) // 125 per client
	exp := now.Add(5 * time.Minute)
	if !use(c, "a.one", "j1", exp, now) || use(c, "a.one", "j1", exp, now.Add(time.Minute)) {
		t.Fatal("an id must be accepted once")
	}
	if !use(c, "a.two", "j1", exp, now) {
		t.Fatal("the same jti of another client is another assertion")
	}
	accepted := 1
	for i := range 500 {
		if use(c, "a.greedy", fmt.Sprint("g", i), exp, now) {
			accepted++
		}
	}
	if accepted != c.perClient+1 {
		t.Errorf("a greedy client got %d entries, want its quota %d", accepted-1, c.perClient)
	}
	for i := range 7 {
		for j := range 125 {
			use(c, fmt.Sprintf("b.client%d", i), fmt.Sprint(j), exp, now)
		}
	}
	if c.size() > 1000 {
		t.Fatalf("size %d over the bound", c.size())
	}
	if use(c, "c.late", "x", exp, now) {
		t.Fatal("a full cache must refuse, not forget unexpired ids")
	}
	if !use(c, "c.late", "x", exp, exp.Add(time.Second)) {
		t.Fatal("expired ids must make room")
	}
	later := exp.Add(time.Second)
	if !use(c, "a.one", "j2", later.Add(time.Minute), later) || use(c, "a.one", "j2", later.Add(time.Minute), later.Add(30*time.Second)) {
		t.Fatal("after a sweep, ids are still accepted once")
	}
}

// use reports whether the cache accepted the id.
func use(c *replayCache, clientID, jti string, exp, now time.Time) bool {
	return c.firstUse(clientID, jti, exp, now) == ""
}
