package tokenserver

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// rssBytes is the process's resident set size (Linux), 0 when unknown.
func rssBytes() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

const mib = 1 << 20

// TestJunkClientIDsDoNotGrowMemory is the memory attack: thousands of distinct junk
// client_ids of the largest size the body limit allows, from hundreds of addresses
// (each within its failure burst, so every one is authenticated and refused). The
// heap kept afterwards must stay under 40 MiB more than before.
func TestJunkClientIDsDoNotGrowMemory(t *testing.T) {
	w := newWorld(t)
	srv, _ := w.server("", signing.ES256, nil)
	h := srv.Handler()
	const addrs, perAddr = 400, 10 // 4000 ids; the default burst is 20 failures
	idLen := int(srv.cfg.TokenServer.MaxBodyBytes) - 100
	filler := strings.Repeat("x", idLen)
	send := func(id, addr string) int {
		r := httptest.NewRequest(http.MethodPost, TokenPath, strings.NewReader(
			`{"grant_type":"client_credentials","client_id":"`+id+`","client_secret":"guess"}`))
		r.Header.Set("Content-Type", "application/json")
		r.RemoteAddr = addr
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	send("warm.up", "192.0.2.1:1") // pools and lazily built state
	heap0, rss0 := liveHeap(), rssBytes()
	for a := range addrs {
		addr := fmt.Sprintf("10.%d.%d.1:40000", a/250, a%250)
		for i := range perAddr {
			// Distinct, maximum-size ids of three kinds: no dot, too long with a dot,
			// and a namespace that is no DNS label.
			prefix := fmt.Sprintf("%d-%d", a, i)
			var id string
			switch i % 3 {
			case 0:
				id = prefix + filler
			case 1:
				id = "ns." + prefix + filler
			default:
				id = prefix + "NS." + filler
			}
			id = id[:idLen]
			if code := send(id, addr); code != http.StatusUnauthorized {
				t.Fatalf("junk client_id from %s answered %d, want 401", addr, code)
			}
		}
	}
	heap1, rss1 := liveHeap(), rssBytes()
	grew := int64(heap1) - int64(heap0)
	t.Logf("%d junk client_ids of %d bytes from %d addresses: live heap grew %.2f MiB (%.1f → %.1f MiB), RSS grew %.1f MiB (%.1f → %.1f MiB)",
		addrs*perAddr, idLen, addrs, float64(grew)/mib, float64(heap0)/mib, float64(heap1)/mib,
		float64(int64(rss1)-int64(rss0))/mib, float64(rss0)/mib, float64(rss1)/mib)
	if grew > 40*mib {
		t.Errorf("live heap grew %.1f MiB, want < 40 MiB", float64(grew)/mib)
	}
	runtime.KeepAlive(srv)
}

// TestFailureLimiterMemoryBound fills the failure limiter to its default bound with
// distinct addresses (the most an attacker with a large IPv6 prefix can make it hold)
// and checks the bound documented in the README (about 13 MiB for 100000 keys).
func TestFailureLimiterMemoryBound(t *testing.T) {
	const keys = 100_000
	t0 := time.Unix(0, 0)
	heap0 := liveHeap()
	l := newFailureLimiter(10, 20, keys)
	addr := func(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff)) }
	for i := range keys {
		l.fail(addr(i), t0)
	}
	if n := l.size(); n != keys {
		t.Fatalf("limiter holds %d keys, want %d", n, keys)
	}
	grew := int64(liveHeap()) - int64(heap0)
	for i := range keys / 2 { // past the bound: eviction keeps it there
		l.fail(addr(keys+i), t0)
		if n := l.size(); n > keys {
			t.Fatalf("limiter holds %d keys, bound is %d", n, keys)
		}
	}
	t.Logf("failure limiter with %d keys: %.1f MiB (%.0f bytes a key)", keys, float64(grew)/mib, float64(grew)/keys)
	if grew > 20*mib {
		t.Errorf("limiter takes %.1f MiB, documented about 13 MiB", float64(grew)/mib)
	}
	runtime.KeepAlive(l)
}

func TestImpossibleClientIDs(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	for id, want := range map[string]bool{
		"shop.erp-sync":            true,
		"shop.erp.sync":            true, // names may hold dots
		long(63) + "." + long(253): true,
		long(64) + "." + long(10):  false, // namespace longer than a label
		long(63) + "." + long(254): false,
		"shop":                     false,
		".name":                    false,
		"shop.":                    false,
		"Shop.erp":                 false,
		"shop.Erp":                 false,
		"shop.erp sync":            false,
		"sh_op.erp":                false,
		"shop.-erp":                false,
		"shop." + long(100_000):    false,
	} {
		if _, _, ok := possibleClientID(id); ok != want {
			t.Errorf("possibleClientID(%.40q…) = %v, want %v", id, ok, want)
		}
	}
	// An impossible id is refused like an unknown client: 401 invalid_client.
	w := newWorld(t)
	ns := w.namespace("impossible", nil)
	api := w.api("impossible", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	c := w.client(ns, "c", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	srv, _ := w.server("", signing.ES256, nil)
	for _, id := range []string{c + strings.Repeat("x", 400), "NoDot", c} {
		rec := post(srv.Handler(), "application/json", jsonBody(map[string]string{
			"grant_type": "client_credentials", "client_id": id, "client_secret": "wrong"}))
		if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `"invalid_client"`) {
			t.Errorf("client_id %.20q…: %d %s", id, rec.Code, rec.Body)
		}
	}
}

// TestTrustedProxyLimitsClientsSeparately: behind a trusted proxy, two clients with
// different forwarded addresses are limited separately; a forged X-Forwarded-For from
// an untrusted peer changes nothing.
func TestTrustedProxyLimitsClientsSeparately(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("proxied", nil)
	api := w.api("proxied", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	good := w.client(ns, "good", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	srv, _ := w.server("tokenServer: {trustedProxies: [10.64.0.0/16]}\nrateLimit: {failedAuthPerMinute: 1, failedAuthBurst: 3}", signing.ES256, nil)
	request := func(secret, peer, xff string) int {
		r := httptest.NewRequest(http.MethodPost, TokenPath, strings.NewReader(jsonBody(map[string]string{
			"grant_type": "client_credentials", "client_id": good, "client_secret": secret})))
		r.Header.Set("Content-Type", "application/json")
		r.RemoteAddr = peer
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, r)
		return rec.Code
	}
	const proxy = "10.64.3.4:50000"
	// A client behind the proxy fails until it is limited...
	for range 3 {
		if code := request("wrong", proxy, "198.51.100.1"); code != http.StatusUnauthorized {
			t.Fatalf("failure within the burst: %d", code)
		}
	}
	if code := request("wrong", proxy, "198.51.100.1"); code != http.StatusTooManyRequests {
		t.Fatalf("beyond the burst: %d", code)
	}
	// ...while another client behind the same proxy still gets tokens,
	if code := request(w.secrets[good], proxy, "198.51.100.2"); code != http.StatusOK {
		t.Errorf("another forwarded address behind the same proxy: %d", code)
	}
	// and the limited one, through the proxy, stays limited.
	if code := request(w.secrets[good], proxy, "198.51.100.1"); code != http.StatusTooManyRequests {
		t.Errorf("limited forwarded address: %d", code)
	}

	// From an untrusted peer, X-Forwarded-For is ignored: claiming to be the other
	// client (whose address is 198.51.100.2) on every try neither escapes the limit
	// nor limits that client.
	const attacker = "192.0.2.66:40000"
	for i := range 10 {
		want := http.StatusUnauthorized
		if i >= 3 {
			want = http.StatusTooManyRequests
		}
		if code := request("wrong", attacker, "198.51.100.2"); code != want {
			t.Fatalf("forged XFF try %d: %d, want %d", i, code, want)
		}
	}
	if code := request(w.secrets[good], "198.51.100.2:1234", ""); code != http.StatusOK {
		t.Errorf("the client whose address the attacker forged, directly: %d", code)
	}
	if code := request(w.secrets[good], proxy, "198.51.100.2"); code != http.StatusOK {
		t.Errorf("the client whose address the attacker forged, through the proxy: %d", code)
	}
}
