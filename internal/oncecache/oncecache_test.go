package oncecache

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestShares: one namespace fills at most its sixteenth of the pool and one client its
// thirty-second; a client of another namespace still has the pool, and once the pool
// is full, its reserve; beyond that ErrNoRoom, and expired ids make room again.
func TestShares(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	until := now.Add(time.Minute)
	c := New(320, 2, time.Second) // 20 per namespace, 10 per client, 2 reserved
	first := func(ns, client, id string, at time.Time) error {
		return c.FirstUse(KeyOf(client, id), ns, client, until, at)
	}
	if err := first("a", "a.x", "1", now); err != nil {
		t.Fatal(err)
	}
	if err := first("a", "a.x", "1", now); !errors.Is(err, ErrUsed) {
		t.Fatalf("the same id again: %v, want ErrUsed", err)
	}
	if err := first("a", "a.y", "1", now); err != nil {
		t.Fatalf("the same id of another scope: %v", err)
	}
	accepted := 0
	for cl := range 5 {
		for i := range 20 {
			if first("greedy", fmt.Sprint("greedy.", cl), fmt.Sprint(i), now) == nil {
				accepted++
			}
		}
	}
	// The namespace's 20 of the pool, then each of its 5 clients' reserve of 2.
	if accepted != 20+5*2 {
		t.Errorf("one namespace's clients got %d ids, want 30", accepted)
	}
	for ns := 0; c.Pooled() < c.Limits().MaxEntries; ns++ {
		for i := range 20 {
			_ = first(fmt.Sprint("fill", ns), fmt.Sprintf("fill%d.c%d", ns, i/10), fmt.Sprint(i), now)
		}
	}
	for i := range 2 {
		if err := first("late", "late.c", fmt.Sprint(i), now); err != nil {
			t.Fatalf("reserve id %d with the pool full: %v", i, err)
		}
	}
	if err := first("late", "late.c", "2", now); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("beyond the reserve: %v, want ErrNoRoom", err)
	}
	if c.Used(KeyOf("late.c", "2"), now) {
		t.Fatal("a refused id was recorded")
	}
	later := until.Add(time.Second)
	if err := first("late", "late.c", "2", later); err != nil {
		t.Fatalf("after every id expired: %v", err)
	}
	if n := c.Len(); n != 1 {
		t.Errorf("%d ids after the sweep, want 1", n)
	}
}
