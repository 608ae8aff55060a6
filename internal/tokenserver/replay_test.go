package tokenserver

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	jwtv5 "github.com/golang-jwt/jwt/v5"
	clocktesting "k8s.io/utils/clock/testing"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// TestReplayCache: an id is accepted once until it expires; a full cache refuses rather
// than forgets, and expired ids make room again.
func TestReplayCache(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	c := newReplayCache(1000) // 62 per namespace, 31 per client, 8 reserved per client
	exp := now.Add(5 * time.Minute)
	if !use(c, "a", "a.one", "j1", exp, now) || use(c, "a", "a.one", "j1", exp, now.Add(time.Minute)) {
		t.Fatal("an id must be accepted once")
	}
	if !use(c, "a", "a.two", "j1", exp, now) {
		t.Fatal("the same jti of another client is another assertion")
	}
	accepted := 0
	for i := range 500 {
		if use(c, "g", "g.greedy", fmt.Sprint("g", i), exp, now) {
			accepted++
		}
	}
	if want := c.perClient + c.reservePerClient; accepted != want {
		t.Errorf("a greedy client got %d entries, want its share and reserve %d", accepted, want)
	}
	// Namespaces of two clients fill the pool (each namespace its sixteenth's worth).
	for ns := 0; c.pooled < c.maxEntries && ns < 100; ns++ {
		for cl := range 2 {
			for j := range c.perClient {
				use(c, fmt.Sprint("b", ns), fmt.Sprintf("b%d.c%d", ns, cl), fmt.Sprint(j), exp, now)
			}
		}
	}
	if c.pooled != c.maxEntries {
		t.Fatalf("pool holds %d, want it full (%d)", c.pooled, c.maxEntries)
	}
	// A late client still has its reserve, and then is refused, never forgotten.
	for i := range c.reservePerClient {
		if !use(c, "late", "late.c", fmt.Sprint("x", i), exp, now) {
			t.Fatalf("reserved id %d refused", i)
		}
	}
	if got := c.firstUse("late", "late.c", "y", exp, now); got != ReasonReplayCacheFull {
		t.Fatalf("beyond the reserve: %q, want %q", got, ReasonReplayCacheFull)
	}
	if !use(c, "late", "late.c", "y", exp, exp.Add(time.Second)) {
		t.Fatal("expired ids must make room")
	}
	later := exp.Add(time.Second)
	if !use(c, "a", "a.one", "j2", later.Add(time.Minute), later) || use(c, "a", "a.one", "j2", later.Add(time.Minute), later.Add(30*time.Second)) {
		t.Fatal("after a sweep, ids are still accepted once")
	}
	if n := c.size(); n != 2 {
		t.Errorf("%d ids after every other expired, want 2", n)
	}
}

// use reports whether the cache accepted the id.
func use(c *replayCache, namespace, clientID, jti string, exp, now time.Time) bool {
	return c.firstUse(namespace, clientID, jti, exp, now) == ""
}

// TestReplayCacheFloodOfOneTenant is the lockout of issue 22: one tenant's nine
// PrivateKeyJWT clients of one namespace send fresh assertions as fast as they can to
// fill the replay cache. Another namespace's PrivateKeyJWT client must keep getting
// tokens, and a ClientSecret client sharing the flooded address must never be
// throttled; a client that does run out of room gets 503 temporarily_unavailable, not
// 401, and its address is not charged for it.
func TestReplayCacheFloodOfOneTenant(t *testing.T) {
	w := newWorld(t)
	attackerNS := w.namespace("attacker", nil)
	victimNS := w.namespace("victim", nil)
	api := w.api("replay", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	clk := clocktesting.NewFakePassiveClock(time.Now().Truncate(time.Second))
	// Default failed-authentication limit: 20 failures, then 10 a minute.
	srv, _ := w.server("privateKeyJWT: {replayCacheSize: 1000}\n", signing.ES256, clk)
	var attackers []keyClient
	for i := range 9 {
		attackers = append(attackers, w.keyPairClient(t, attackerNS, fmt.Sprintf("flood-%d", i), oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}}, signing.ES256))
	}
	victim := w.keyPairClient(t, victimNS, "victim", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}}, signing.ES256)
	neighbour := w.client(victimNS, "neighbour", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	const tokenURL = "https://issuer.test" + TokenPath
	send := func(c keyClient) int {
		a := c.assert(t, tokenURL, clk.Now(), func(claims jwtv5.MapClaims, _ map[string]any) {
			claims["exp"] = clk.Now().Add(5 * time.Minute).Unix() // as long-lived as allowed
		})
		return post(srv.Handler(), "application/json", jsonBody(map[string]string{"grant_type": "client_credentials",
			"client_id": c.id, "client_assertion_type": JWTBearerAssertionType, "client_assertion": a})).Code
	}
	// Everyone shares one address (httptest's 192.0.2.1), the worst case.
	codes := map[int]int{}
	for range 150 {
		for _, a := range attackers {
			codes[send(a)]++
		}
	}
	t.Logf("flood: %v", codes)
	if codes[http.StatusServiceUnavailable] == 0 {
		t.Fatal("the flood never ran out of room: the test tests nothing")
	}
	if codes[http.StatusUnauthorized] != 0 || codes[http.StatusTooManyRequests] != 0 {
		t.Errorf("a full replay cache answered 401 or 429 (%v): it must be 503, never charged to the address", codes)
	}
	for i := range 20 {
		if code := send(victim); code != http.StatusOK {
			t.Fatalf("victim of another namespace, request %d during the flood: %d, want 200", i, code)
		}
		clk.SetTime(clk.Now().Add(10 * time.Second))
		if code := post(srv.Handler(), "application/json", jsonBody(map[string]string{"grant_type": "client_credentials",
			"client_id": neighbour, "client_secret": w.secrets[neighbour]})).Code; code != http.StatusOK {
			t.Fatalf("ClientSecret client at the flooded address: %d, want 200", code)
		}
	}
	if n := srv.authenticators[oauthv1alpha1.AuthPrivateKeyJWT].(*privateKeyJWTAuthenticator).replay.size(); n > 1000+10*reservePerClient {
		t.Errorf("replay cache holds %d ids, over its bound", n)
	}
}
