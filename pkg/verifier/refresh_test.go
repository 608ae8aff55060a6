package verifier

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRefreshDropsRemovedKey: a key the issuer stops publishing (revoked)
// is accepted from the cache until Refresh, and refused after it.
func TestRefreshDropsRemovedKey(t *testing.T) {
	revoked, kept := freshECKey("key-1"), newKey("key-2", "EdDSA")
	is := newIssuer(t, revoked, kept)
	clock := newClock()
	v := newVerifier(t, is, clock)
	verify := func(k *testKey) error {
		_, err := v.Verify(verifyCtx(t), mint(t, k, claimsAt(is, clock.Now())))
		return err
	}

	// Refresh before any token: discovery and a first fetch.
	if err := v.Refresh(verifyCtx(t)); err != nil {
		t.Fatalf("first Refresh: %v", err)
	}
	if m, j := is.metaHits.Load(), is.jwksHits.Load(); m != 1 || j != 1 {
		t.Fatalf("metadata fetched %d times, JWKS %d; want 1 and 1", m, j)
	}
	if err := verify(revoked); err != nil {
		t.Fatalf("before revocation: %v", err)
	}

	is.setKeys(kept) // the issuer removes key-1
	if err := verify(revoked); err != nil {
		t.Fatalf("removed key, cached JWKS still fresh: %v, want it accepted", err)
	}
	if err := v.Refresh(verifyCtx(t)); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if n := is.jwksHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
	err := verify(revoked)
	if !errors.Is(err, ErrInvalidToken) || err.Error() != "invalid token: unknown key id" {
		t.Fatalf("removed key after Refresh: %v, want unknown key id", err)
	}
	if err := verify(kept); err != nil {
		t.Fatalf("kept key after Refresh: %v", err)
	}

	// Refresh is not throttled by RefreshInterval, unlike unknown-kid refetches.
	if err := v.Refresh(verifyCtx(t)); err != nil {
		t.Fatalf("second Refresh: %v", err)
	}
	if n := is.jwksHits.Load(); n != 3 {
		t.Errorf("JWKS fetched %d times, want 3", n)
	}
}

// TestRemovedKeyRefusedAfterCacheExpires: without Refresh, a removed key is
// accepted until the JWKS max-age; the first token after that triggers a
// refetch (and is still checked against the expired set); once the refetch
// is done the key is refused.
func TestRemovedKeyRefusedAfterCacheExpires(t *testing.T) {
	revoked, kept := freshECKey("key-1"), newKey("key-2", "EdDSA")
	is := newIssuer(t, revoked, kept)
	is.set(func(is *testIssuer) { is.cacheControl = "public, max-age=120" })
	clock := newClock()
	v := newVerifier(t, is, clock)
	verify := func(k *testKey) error {
		_, err := v.Verify(verifyCtx(t), mint(t, k, claimsAt(is, clock.Now())))
		return err
	}
	if err := verify(revoked); err != nil {
		t.Fatal(err)
	}
	is.setKeys(kept)

	clock.Advance(119 * time.Second)
	if err := verify(revoked); err != nil || is.jwksHits.Load() != 1 {
		t.Fatalf("within max-age: %v, %d fetches; want accepted from the cache, 1 fetch", err, is.jwksHits.Load())
	}
	clock.Advance(time.Second)
	if err := verify(revoked); err != nil {
		t.Fatalf("at max-age: %v, want accepted while the JWKS is refetched", err)
	}
	waitFetch(t, v)
	if n := is.jwksHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
	err := verify(revoked)
	if !errors.Is(err, ErrInvalidToken) || err.Error() != "invalid token: unknown key id" {
		t.Fatalf("removed key after the cache expired: %v, want unknown key id", err)
	}
	if err := verify(kept); err != nil {
		t.Fatalf("kept key: %v", err)
	}
}

// waitingCtx is a context that records when someone first waits on it.
type waitingCtx struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func (c *waitingCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

// TestRefreshDoesNotReuseRunningFetch: a fetch already running when Refresh
// is called may have read the JWKS before the key was removed, so Refresh
// waits for it and fetches again.
func TestRefreshDoesNotReuseRunningFetch(t *testing.T) {
	revoked, kept := freshECKey("key-1"), newKey("key-2", "EdDSA")
	is := newIssuer(t, revoked, kept)
	gate := make(chan struct{})
	is.set(func(is *testIssuer) { is.gate = gate })
	clock := newClock()
	v := newVerifier(t, is, clock)

	verified := make(chan struct{})
	go func() { // starts a fetch that reads the JWKS with key-1, then waits for the gate
		defer close(verified)
		_, _ = v.Verify(verifyCtx(t), mint(t, revoked, claimsAt(is, clock.Now())))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for is.jwksHits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first JWKS request did not arrive")
		}
		time.Sleep(time.Millisecond)
	}
	is.setKeys(kept) // removed while that fetch is running

	ctx := &waitingCtx{Context: verifyCtx(t), waiting: make(chan struct{})}
	refreshed := make(chan error, 1)
	go func() { refreshed <- v.Refresh(ctx) }()
	<-ctx.waiting // Refresh waits for the running fetch
	close(gate)
	if err := <-refreshed; err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	<-verified
	if n := is.jwksHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
	_, err := v.Verify(verifyCtx(t), mint(t, revoked, claimsAt(is, clock.Now())))
	if !errors.Is(err, ErrInvalidToken) || err.Error() != "invalid token: unknown key id" {
		t.Fatalf("removed key after Refresh: %v, want unknown key id", err)
	}
}

// TestRefreshFailureKeepsCachedKeys: a failed Refresh is reported and the
// keys fetched before stay in use.
func TestRefreshFailureKeepsCachedKeys(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	clock := newClock()
	v := newVerifier(t, is, clock)
	token := mint(t, es, claimsAt(is, clock.Now()))
	if _, err := v.Verify(verifyCtx(t), token); err != nil {
		t.Fatal(err)
	}
	is.down.Store(true)
	err := v.Refresh(verifyCtx(t))
	if !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Refresh with the JWKS down = %v, want ErrKeysUnavailable with the status", err)
	}
	if _, err := v.Verify(verifyCtx(t), token); err != nil {
		t.Fatalf("cached key after a failed Refresh: %v", err)
	}
	is.down.Store(false)
	if err := v.Refresh(verifyCtx(t)); err != nil || is.jwksHits.Load() != 3 {
		t.Fatalf("Refresh after recovery: %v, %d fetches; want nil, 3", err, is.jwksHits.Load())
	}
}

// TestRefreshContextEnded: Refresh returns when its context ends; the fetch
// continues and its keys are used.
func TestRefreshContextEnded(t *testing.T) {
	es := newKey("es-1", "ES256")
	is := newIssuer(t, es)
	gate := make(chan struct{})
	is.set(func(is *testIssuer) { is.gate = gate })
	clock := newClock()
	v := newVerifier(t, is, clock)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := v.Refresh(ctx)
	if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Refresh with an ended context = %v, want ErrKeysUnavailable and Canceled", err)
	}
	close(gate)
	waitFetch(t, v)
	if _, err := v.Verify(verifyCtx(t), mint(t, es, claimsAt(is, clock.Now()))); err != nil || is.jwksHits.Load() != 1 {
		t.Fatalf("Verify after the fetch = %v, %d fetches; want nil, 1", err, is.jwksHits.Load())
	}
}
