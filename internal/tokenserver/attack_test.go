package tokenserver

// Reproductions of the attack review of issue 22's fixes: each asserts the safe
// behaviour and failed before its fix. No API server needed:
//
//	go test -count=1 -run '^TestAttack' -v ./internal/tokenserver/

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	jwtv5 "github.com/golang-jwt/jwt/v5"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
	"github.com/oauth-client-operator/oauth-client-operator/internal/workloadidentity"
)

// TestAttackReplayCacheFourNamespaces: the replay cache gives one namespace a quarter of
// the pool, so a tenant with four namespaces (two PrivateKeyJWT clients in each) fills
// it. Its clients need not be admitted to any API: the id is remembered when the
// assertion verifies, before authorization, and the 400 that follows is not charged to
// the address. Every other tenant's client is then down to its reserve of 8 ids per
// assertion lifetime, per replica: a Deployment of 20 pods sharing one client, each
// asking for its token at start, gets 8 tokens and 12 refusals (503, Retry-After 5 s,
// for up to 5.5 minutes).
func TestAttackReplayCacheFourNamespaces(t *testing.T) {
	w := newWorld(t)
	clk := clocktesting.NewFakePassiveClock(time.Now().Truncate(time.Second))
	srv, _ := w.server("privateKeyJWT: {replayCacheSize: 1000}\n", signing.ES256, clk)
	const tokenURL = "https://issuer.test" + TokenPath
	// An API that admits no namespace of the attacker: its clients get no token ever.
	closed := w.api("closed", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{
		From: oauthv1alpha1.NamespacesFromSelector, Selector: nil}})
	open := w.api("open", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	var attackers []keyClient
	for ns := range 4 {
		n := w.namespace(fmt.Sprint("attacker-", ns), nil)
		for c := range 2 {
			attackers = append(attackers, w.keyPairClient(t, n, fmt.Sprint("flood-", c), oauthv1alpha1.OAuthClientSpec{Audiences: []string{closed}}, signing.ES256))
		}
	}
	victim := w.keyPairClient(t, w.namespace("victim", nil), "deployment", oauthv1alpha1.OAuthClientSpec{Audiences: []string{open}}, signing.ES256)
	send := func(c keyClient) int {
		a := c.assert(t, tokenURL, clk.Now(), func(claims jwtv5.MapClaims, _ map[string]any) {
			claims["exp"] = clk.Now().Add(5 * time.Minute).Unix()
		})
		return post(srv.Handler(), "application/json", jsonBody(map[string]string{"grant_type": "client_credentials",
			"client_id": c.id, "client_assertion_type": JWTBearerAssertionType, "client_assertion": a})).Code
	}
	codes := map[int]int{}
	for range 140 {
		for _, a := range attackers {
			codes[send(a)]++
		}
	}
	pk := srv.authenticators[oauthv1alpha1.AuthPrivateKeyJWT].(*privateKeyJWTAuthenticator)
	t.Logf("flood by 8 clients of 4 namespaces admitted nowhere: answers %v; replay cache holds %d of 1000 (+ reserves)", codes, pk.replay.size())
	victimCodes := map[int]int{}
	for range 20 { // 20 pods start, one token request each, within a few seconds
		victimCodes[send(victim)]++
		clk.SetTime(clk.Now().Add(200 * time.Millisecond))
	}
	t.Logf("victim of a fifth namespace, 20 pods: %v", victimCodes)
	if victimCodes[http.StatusOK] != 20 {
		t.Errorf("a victim client of another tenant got %d of 20 tokens during the flood (%v)", victimCodes[http.StatusOK], victimCodes)
	}
}

// TestAttackReplayCacheReserveMemory measures the ids a cache holds when many clients
// use their reserve beyond a full pool (maxEntries + 8 per PrivateKeyJWT client), and
// their memory, with client ids as long as they can be and one string each (the
// server shares the registry's). No finding: it passes, and guards the bound (the
// package says about 100 bytes an id; it fails over 200).
func TestAttackReplayCacheReserveMemory(t *testing.T) {
	now := time.Now()
	exp := now.Add(5 * time.Minute)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	// Client ids as long as they can be (63 + 1 + 253): the cache keeps the registry's
	// strings, not copies; here every id is its own string, the worst case.
	long := func(ns, i int) (string, string) {
		n := fmt.Sprintf("%063d", ns)
		return n, fmt.Sprintf("%s.%0253d", n, i)
	}
	before := heap()
	c := newReplayCache(100_000)
	const clients = 20_000
	ids := 0
	for i := range clients {
		ns, id := long(i%50, i)
		for j := range reservePerClient + 10 {
			if c.firstUse(ns, id, fmt.Sprint(j), exp, now) == "" {
				ids++
			}
		}
	}
	after := heap()
	per := float64(after-before) / float64(ids)
	t.Logf("%d clients: %d ids remembered (pool %d + reserves %d), %.1f MiB, %.0f bytes an id", clients, ids, c.pooled, ids-c.pooled,
		float64(after-before)/(1<<20), per)
	runtime.KeepAlive(c)
	if per > 200 {
		t.Errorf("%.0f bytes an id, the package says about 100", per)
	}
}

// fakeTokenReviews stands in for the API server's TokenReview endpoint: every token is
// valid, each answer takes delay (an API server under load), and it counts the reviews,
// the distinct tokens and the most in flight at once.
type fakeTokenReviews struct {
	delay                      time.Duration
	mu                         sync.Mutex
	total, inFlight, maxFlight int
	tokens                     map[string]bool
}

func (f *fakeTokenReviews) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var tr authenticationv1.TokenReview
	if err := json.NewDecoder(r.Body).Decode(&tr); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.total++
	f.tokens[tr.Spec.Token] = true
	f.inFlight++
	f.maxFlight = max(f.maxFlight, f.inFlight)
	f.mu.Unlock()
	time.Sleep(f.delay)
	f.mu.Lock()
	f.inFlight--
	f.mu.Unlock()
	tr.Status.Authenticated = true
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&tr)
}

func (f *fakeTokenReviews) counts() (total, distinct, maxFlight int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total, len(f.tokens), f.maxFlight
}

// signatureVariants returns the spellings of a compact JWS that differ only in the
// unused low bits of the signature's last base64url character: golang-jwt decodes
// base64url without Strict by default, so each verifies, and each has its own digest.
func signatureVariants(token string) []string {
	dot := strings.LastIndexByte(token, '.')
	sig := token[dot+1:]
	unused := map[int]int{2: 4, 3: 2}[len(sig)%4] // bits of the last character that carry nothing
	if unused == 0 {
		return []string{token}
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	base := last &^ (1<<unused - 1)
	var out []string
	for low := range 1 << unused {
		out = append(out, token[:len(token)-1]+string(alphabet[base|low]))
	}
	return out
}

// TestAttackTokenReviewAmplification: a tenant's pod-bound ServiceAccount tokens each
// cost every replica one TokenReview per minute, all at once and without bound (no
// limit on reviews in flight, per client or per namespace; controller-runtime's
// rest.Config has no client-side rate limit), and each token has 16 spellings (the
// signature's last base64url character) that the token server accepts and reviews
// separately. The tenant needs only real tokens of its own ServiceAccount (pods with
// projected volumes, or TokenRequest); its requests succeed, so nothing is charged to
// its address.
func TestAttackTokenReviewAmplification(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("reviews", nil)
	api := w.api("reviews", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	w.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "robot"}})
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "robot"}, Spec: oauthv1alpha1.OAuthClientSpec{
		Audiences:      []string{api},
		Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthServiceAccountToken, ServiceAccountName: "robot"},
	}}
	w.create(oc)
	fake := &fakeTokenReviews{delay: 100 * time.Millisecond, tokens: map[string]bool{}}
	apiServer := httptest.NewServer(fake)
	defer apiServer.Close()
	clk := clocktesting.NewFakePassiveClock(time.Now())
	reviewer, err := workloadidentity.NewReviewer(workloadidentity.ReviewerOptions{
		Config: &rest.Config{Host: apiServer.URL, QPS: -1, ContentConfig: rest.ContentConfig{ContentType: "application/json"}}, Audiences: []string{"https://issuer.test"}, Clock: clk, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := w.serverWith("", signing.ES256, Options{Clock: clk, BoundTokenReviewer: reviewer})
	kube := w.kubeIssuer()
	request := func(token string) int {
		return post(srv.Handler(), "application/json", jsonBody(map[string]string{"grant_type": "client_credentials",
			"client_id": oc.ClientID(), "client_assertion_type": JWTBearerAssertionType, "client_assertion": token})).Code
	}

	// 200 tokens of the tenant's pods (one per projected volume), presented at once.
	const k = 200
	tokens := make([]string, k)
	for i := range tokens {
		tokens[i] = kube.boundToken(t, w, ns, "robot", fmt.Sprint("pod-", i%20), []string{"https://issuer.test"}, time.Hour)
	}
	presentAll := func() map[int]int {
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for _, tok := range tokens {
			wg.Go(func() {
				code := request(tok)
				mu.Lock()
				codes[code]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return codes
	}
	codes := presentAll()
	total, _, maxFlight := fake.counts()
	t.Logf("%d distinct tokens presented at once: answers %v, %d TokenReviews, %d in flight at most", k, codes, total, maxFlight)
	clk.SetTime(clk.Now().Add(workloadidentity.DefaultReviewTTL + time.Second))
	codes = presentAll()
	total2, _, _ := fake.counts()
	t.Logf("the same %d tokens a minute later: answers %v, %d more TokenReviews", k, codes, total2-total)

	// One token, its 16 spellings.
	variants := signatureVariants(tokens[0])
	accepted := 0
	for _, v := range variants {
		if request(v) == http.StatusOK {
			accepted++
		}
	}
	total3, _, _ := fake.counts()
	t.Logf("one token's %d spellings: %d accepted, %d TokenReviews", len(variants), accepted, total3-total2)

	if maxFlight > 32 {
		t.Errorf("%d TokenReviews in flight at once from one tenant's tokens: want a bound", maxFlight)
	}
	if total3-total2 > 1 {
		t.Errorf("one token spelled %d ways cost %d TokenReviews, want 1", len(variants), total3-total2)
	}
}

// TestAttackAudienceConflictWindow (no finding: it passes): a cluster administrator
// moves OAuthAPI B, which admits only the tenant's namespace, between an audience of its
// own and the audience of API A, which admits only another namespace, while the
// tenant's client of B asks for tokens as fast as it can, naming the audience, the
// resource, or neither. No token may ever carry A's audience: each API entry is rebuilt
// with its conflicts at once.
func TestAttackAudienceConflictWindow(t *testing.T) {
	w := newWorld(t)
	label := "oauth.operator.dev/conflict-" + w.suffix
	tenantNS := w.namespace("tenant", map[string]string{label: "tenant"})
	w.namespace("other", map[string]string{label: "other"})
	shared := "https://a-" + w.suffix + ".example"
	sel := func(v string) oauthv1alpha1.AllowedNamespaces {
		return oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{label: v}}}
	}
	w.api("a", oauthv1alpha1.OAuthAPISpec{Audience: shared, AllowedNamespaces: sel("other")})
	b := w.api("b", oauthv1alpha1.OAuthAPISpec{Audience: "https://b-" + w.suffix + ".example", AllowedNamespaces: sel("tenant")})
	id := w.client(tenantNS, "c", oauthv1alpha1.OAuthClientSpec{Audiences: []string{b}})
	srv, _ := w.server("", signing.ES256, nil)
	done := make(chan struct{})
	var flips atomic.Int64
	go func() {
		defer close(done)
		api := w.objects[objectKey(&oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: b}})].(*oauthv1alpha1.OAuthAPI)
		own := api.Spec.Audience
		for i := range 20000 {
			next := api.DeepCopy()
			next.Spec.Audience = own
			if i%2 == 0 {
				next.Spec.Audience = shared
			}
			w.store.Set(next)
			flips.Add(1)
		}
	}()
	leaked, issued := 0, 0
	for _, extra := range []map[string]string{{}, {"audience": shared}, {"resource": shared}} {
		for range 2000 {
			params := map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]}
			for k, v := range extra {
				params[k] = v
			}
			rec := post(srv.Handler(), "application/json", jsonBody(params))
			if rec.Code != http.StatusOK {
				continue
			}
			issued++
			var tok tokenJSON
			_ = json.Unmarshal(rec.Body.Bytes(), &tok)
			parsed, _, err := jwtv5.NewParser().ParseUnverified(tok.AccessToken, jwtv5.MapClaims{})
			if err != nil {
				t.Fatal(err)
			}
			if aud, _ := parsed.Claims.GetAudience(); len(aud) == 1 && aud[0] == shared {
				leaked++
			}
		}
	}
	<-done
	t.Logf("%d audience flips; %d tokens issued to B's client, %d with A's audience", flips.Load(), issued, leaked)
	if leaked > 0 {
		t.Errorf("%d tokens with another API's audience", leaked)
	}
}
