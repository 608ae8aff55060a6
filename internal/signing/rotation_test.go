package signing

import (
	"strings"
	"testing"
	"time"
)

func TestRotateLifecycle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	first, err := GenerateKey(ES256, t0)
	if err != nil {
		t.Fatal(err)
	}
	ks := &KeySet{CurrentID: first.ID, Keys: []*Key{first}}
	p := Policy{Algorithm: ES256, Interval: 24 * time.Hour, PropagationDelay: 10 * time.Minute, RetireAfter: 2 * time.Hour}

	step := func(at time.Duration, force bool) ([]string, time.Time) {
		t.Helper()
		changes, next, err := ks.Rotate(p, t0.Add(at), force)
		if err != nil {
			t.Fatalf("Rotate at +%s: %v", at, err)
		}
		if err := ks.Validate(); err != nil {
			t.Fatalf("invalid key set after Rotate at +%s: %v", at, err)
		}
		return changes, next
	}

	// Before the interval: nothing; next look at the interval.
	changes, next := step(23*time.Hour, false)
	if len(changes) != 0 || !next.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("early: changes %v next %s", changes, next)
	}
	// Interval passed: a second key is published, not yet signing.
	changes, next = step(24*time.Hour, false)
	if len(ks.Keys) != 2 || ks.CurrentID != first.ID || len(changes) != 1 || !strings.Contains(changes[0], "published") {
		t.Fatalf("publish: current %s keys %d changes %v", ks.CurrentID, len(ks.Keys), changes)
	}
	second := ks.Keys[1]
	if !second.ActivatesAt.Equal(t0.Add(24*time.Hour+10*time.Minute)) || !next.Equal(second.ActivatesAt) {
		t.Fatalf("second key activates %s, next %s", second.ActivatesAt, next)
	}
	// Still propagating: repeated calls publish nothing more.
	if changes, _ = step(24*time.Hour+9*time.Minute, false); len(changes) != 0 || len(ks.Keys) != 2 {
		t.Fatalf("during propagation: %v", changes)
	}
	// Forcing during propagation does not stack keys.
	if changes, _ = step(24*time.Hour+9*time.Minute, true); len(ks.Keys) != 2 {
		t.Fatalf("forced during propagation published another key: %v", changes)
	}
	// Propagation over: the second key signs, the first is retired until +2h.
	_, next = step(24*time.Hour+10*time.Minute, false)
	if ks.CurrentID != second.ID || first.RetiredAt.IsZero() || !first.ExpiresAt.Equal(t0.Add(26*time.Hour+10*time.Minute)) {
		t.Fatalf("activate: current %s first %+v", ks.CurrentID, first)
	}
	if !next.Equal(first.ExpiresAt) {
		t.Fatalf("next = %s, want the retired key's removal %s", next, first.ExpiresAt)
	}
	jwks, err := ks.JWKS(t0.Add(25 * time.Hour))
	if err != nil || !strings.Contains(string(jwks), first.ID) {
		t.Fatalf("retired key must stay in the JWKS until it expires: %s %v", jwks, err)
	}
	// Retired key expired: removed.
	changes, next = step(26*time.Hour+10*time.Minute, false)
	if len(ks.Keys) != 1 || ks.CurrentID != second.ID || len(changes) != 1 {
		t.Fatalf("removal: keys %d changes %v", len(ks.Keys), changes)
	}
	if !next.Equal(second.ActivatesAt.Add(24 * time.Hour)) {
		t.Fatalf("next = %s, want the next interval from activation", next)
	}
}

func TestRotateOnAlgorithmChangeAndForce(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k, _ := GenerateKey(ES256, t0)
	ks := &KeySet{CurrentID: k.ID, Keys: []*Key{k}}
	p := Policy{Algorithm: EdDSA, PropagationDelay: time.Minute, RetireAfter: time.Hour}
	changes, _, err := ks.Rotate(p, t0.Add(time.Second), false)
	if err != nil || len(ks.Keys) != 2 || ks.Keys[1].Algorithm != EdDSA || !strings.Contains(changes[0], "algorithm changed") {
		t.Fatalf("algorithm change: %v %v", changes, err)
	}
	if _, _, err := ks.Rotate(p, t0.Add(time.Minute+time.Second), false); err != nil || ks.Current().Algorithm != EdDSA {
		t.Fatalf("EdDSA key did not become current: %v", err)
	}

	// No interval: only force rotates.
	p.Algorithm = EdDSA
	if changes, _, _ := ks.Rotate(p, t0.Add(30*24*time.Hour), false); strings.Contains(strings.Join(changes, ","), "published") {
		t.Fatalf("rotated without interval or force: %v", changes)
	}
	changes, _, _ = ks.Rotate(p, t0.Add(30*24*time.Hour), true)
	if !strings.Contains(strings.Join(changes, ","), "rotation requested") {
		t.Fatalf("force did not publish a key: %v", changes)
	}
}
