package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// TestGenerationBudget: three generations at once, then one per interval, per client.
func TestGenerationBudget(t *testing.T) {
	t.Parallel()
	b := newGenerationBudget(time.Minute)
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for i := range generationBurst {
		if _, ok := b.take("a", now); !ok {
			t.Fatalf("generation %d refused within the burst", i)
		}
	}
	wait, ok := b.take("a", now)
	if ok || wait < 59*time.Second || wait > time.Minute {
		t.Fatalf("beyond the burst: ok=%v wait=%s, want refused for about a minute", ok, wait)
	}
	if _, ok := b.take("b", now); !ok {
		t.Fatal("another client's budget is its own")
	}
	if _, ok := b.take("a", now.Add(time.Minute)); !ok {
		t.Fatal("refilled after the interval")
	}
	if _, ok := b.take(types.UID("a"), now.Add(time.Minute)); ok {
		t.Fatal("one per interval after the burst")
	}
}
