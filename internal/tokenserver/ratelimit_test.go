package tokenserver

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

func TestFailureLimiterRefillsAndStaysBounded(t *testing.T) {
	t0 := time.Unix(0, 0)
	l := newFailureLimiter(6, 3, 1000) // one token per 10 s, burst 3
	for i := range 3 {
		if _, blocked := l.retryAfter(netip.MustParseAddr("192.0.2.1"), t0); blocked {
			t.Fatalf("blocked after %d failures, burst is 3", i)
		}
		l.fail(netip.MustParseAddr("192.0.2.1"), t0)
	}
	d, blocked := l.retryAfter(netip.MustParseAddr("192.0.2.1"), t0)
	if !blocked || d != 10*time.Second {
		t.Fatalf("after the burst: blocked=%v retry after %s, want 10s", blocked, d)
	}
	if _, blocked := l.retryAfter(netip.MustParseAddr("192.0.2.1"), t0.Add(10*time.Second)); blocked {
		t.Fatal("still blocked after one refill interval")
	}
	if _, blocked := l.retryAfter(netip.MustParseAddr("192.0.2.2"), t0); blocked {
		t.Fatal("another key is blocked")
	}

	// A flood of distinct keys never grows the table past its bound.
	for i := range 50_000 {
		l.fail(netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i)), t0.Add(time.Duration(i)*time.Millisecond))
		if l.size() > 1000 {
			t.Fatalf("limiter holds %d keys, bound is 1000", l.size())
		}
	}
}

func TestFailedAuthenticationIsRateLimited(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("limits", nil)
	api := w.api("limits", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	victim := w.client(ns, "victim", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	bystander := w.client(ns, "bystander", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	now := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	srv, _ := w.server("rateLimit: {failedAuthPerMinute: 6, failedAuthBurst: 3}", signing.ES256, now)

	// Requests are handled in-process; the addresses are labels, nothing is dialled.
	request := func(id, secret, addr string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, TokenPath, strings.NewReader(jsonBody(map[string]string{
			"grant_type": "client_credentials", "client_id": id, "client_secret": secret})))
		r.Header.Set("Content-Type", "application/json")
		r.RemoteAddr = addr + ":40000"
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, r)
		return rec
	}
	const attacker, other, third = "192.0.2.66", "198.51.100.7", "203.0.113.9"

	for i := range 3 {
		if rec := request(victim, "guess", attacker); rec.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, rec.Code)
		}
	}
	rec := request(victim, "guess", attacker)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "10" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("after the burst: %d Retry-After %q Cache-Control %q", rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("Cache-Control"))
	}
	// Even the right secret waits while the attacker's address is blocked...
	if rec := request(bystander, w.secrets[bystander], attacker); rec.Code != http.StatusTooManyRequests {
		t.Errorf("blocked address got %d", rec.Code)
	}
	// ...but another client from another address is unaffected, and so is the
	// hammered client itself from its own address: client ids are not keys.
	if rec := request(bystander, w.secrets[bystander], other); rec.Code != http.StatusOK {
		t.Errorf("bystander from another address: %d %s", rec.Code, rec.Body)
	}
	if rec := request(victim, w.secrets[victim], third); rec.Code != http.StatusOK {
		t.Errorf("hammered client_id from its own address: %d %s", rec.Code, rec.Body)
	}
	now.SetTime(now.Now().Add(10 * time.Second))
	if rec := request(bystander, w.secrets[bystander], attacker); rec.Code != http.StatusOK {
		t.Errorf("after refill, the right secret from the attacker's address: %d %s", rec.Code, rec.Body)
	}
	// Successes spend nothing: many in a row stay 200.
	for i := range 20 {
		if rec := request(bystander, w.secrets[bystander], other); rec.Code != http.StatusOK {
			t.Fatalf("success %d: %d", i, rec.Code)
		}
	}
}

func TestClientRateLimit(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("client-limit", nil)
	api := w.api("client-limit", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	limited := w.client(ns, "limited", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api},
		RateLimit: &oauthv1alpha1.ClientRateLimit{RequestsPerMinute: 30, Burst: 2}})
	free := w.client(ns, "free", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	now := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	srv, _ := w.server("", signing.ES256, now)
	request := func(id string) *httptest.ResponseRecorder {
		return post(srv.Handler(), "application/json", jsonBody(map[string]string{
			"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]}))
	}
	for i := range 2 {
		if rec := request(limited); rec.Code != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i, rec.Code)
		}
	}
	rec := request(limited)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("beyond the burst: %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	for range 10 {
		if rec := request(free); rec.Code != http.StatusOK {
			t.Fatalf("a client without a limit: %d", rec.Code)
		}
	}
	now.SetTime(now.Now().Add(2 * time.Second)) // 30/min: one request every 2 s
	if rec := request(limited); rec.Code != http.StatusOK {
		t.Fatalf("after 2 s: %d", rec.Code)
	}
}

// TestHammeredClientKeepsGettingTokens is the lockout attack: many addresses send wrong
// secrets for a victim's (public) client_id, faster than the limit allows, for ten
// simulated minutes, while the victim asks for a token from its own address every
// ten seconds. Every one of the victim's requests succeeds; the attackers get 429.
func TestHammeredClientKeepsGettingTokens(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("hammer", nil)
	api := w.api("hammer", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	victim := w.client(ns, "victim", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	now := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	srv, _ := w.server("", signing.ES256, now) // defaults: 10/min, burst 20
	request := func(secret, addr string) int {
		r := httptest.NewRequest(http.MethodPost, TokenPath, strings.NewReader(jsonBody(map[string]string{
			"grant_type": "client_credentials", "client_id": victim, "client_secret": secret})))
		r.Header.Set("Content-Type", "application/json")
		r.RemoteAddr = addr
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, r)
		return rec.Code
	}
	const victimAddr = "10.1.2.3:51000"
	attackers := []string{"192.0.2.66:40000", "198.51.100.7:40001", "[2001:db8::66]:40002", "203.0.113.9:40003"}
	var victimOK, victimTries, attackerLimited, attackerTries int
	for step := range 60 { // ten minutes in steps of 10 s
		for _, a := range attackers {
			for range 10 { // 60 wrong secrets a minute from each address
				attackerTries++
				switch code := request("wrong-guess", a); code {
				case http.StatusTooManyRequests:
					attackerLimited++
				case http.StatusUnauthorized:
				default:
					t.Fatalf("attacker got %d", code)
				}
			}
		}
		victimTries++
		if code := request(w.secrets[victim], victimAddr); code == http.StatusOK {
			victimOK++
		} else {
			t.Errorf("step %d: the victim's own request answered %d", step, code)
		}
		now.SetTime(now.Now().Add(10 * time.Second))
	}
	t.Logf("victim: %d of %d requests got a token; attackers: %d of %d requests answered 429",
		victimOK, victimTries, attackerLimited, attackerTries)
	// Per address: 20 at once, then 10 a minute; 600 tries each in ten minutes.
	if want := attackerTries - len(attackers)*(20+100); attackerLimited < want {
		t.Errorf("attackers limited %d times, want at least %d", attackerLimited, want)
	}
}
