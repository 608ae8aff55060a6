package tokenserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-logr/logr"
	jwtv5 "github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
	"github.com/oauth-client-operator/oauth-client-operator/internal/trust"
)

// extIssuer is an external token issuer of a test (another cluster, a CI system), with
// an OAuthTrustedIssuer that trusts it by its JWKS copied in: no network.
type extIssuer struct {
	url string
	kid string
	key *ecdsa.PrivateKey
	obj *oauthv1alpha1.OAuthTrustedIssuer
}

// trusted creates an OAuthTrustedIssuer named name-<suffix> of a new issuer, which
// admits every namespace unless mutate says otherwise.
func (w *world) trusted(name string, mutate func(*oauthv1alpha1.OAuthTrustedIssuerSpec)) *extIssuer {
	w.tb.Helper()
	return w.trustedAt("https://"+name+"-"+w.suffix+".example", name, mutate)
}

// trustedAt is trusted with the issuer URL given.
func (w *world) trustedAt(issuerURL, name string, mutate func(*oauthv1alpha1.OAuthTrustedIssuerSpec)) *extIssuer {
	w.tb.Helper()
	if w.registry == nil {
		w.registry = trust.NewRegistry(trust.Options{Log: logr.Discard()})
		w.tb.Cleanup(w.registry.Close)
		w.store.UseRegistry(w.registry)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), cryptorand.Reader)
	if err != nil {
		w.tb.Fatal(err)
	}
	e := &extIssuer{url: issuerURL, kid: name + "-key", key: key}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: e.kid, Algorithm: "ES256", Use: "sig"}}})
	e.obj = &oauthv1alpha1.OAuthTrustedIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-" + w.suffix, Generation: 1},
		Spec: oauthv1alpha1.OAuthTrustedIssuerSpec{
			Issuer:            issuerURL,
			Keys:              &oauthv1alpha1.IssuerKeys{JWKS: string(jwks)},
			AllowedNamespaces: allNS(),
		},
	}
	if mutate != nil {
		mutate(&e.obj.Spec)
	}
	w.create(e.obj)
	if p := w.registry.Get(e.obj.Name).Problem(); p != nil && mutate == nil {
		w.tb.Fatalf("trusted issuer %s: %v", e.obj.Name, p)
	}
	return e
}

// claims are the claims of a token of the issuer for sub, for this server, current.
func (e *extIssuer) claims(sub string, now time.Time) jwtv5.MapClaims {
	return jwtv5.MapClaims{
		"iss": e.url, "sub": sub, "aud": []string{"https://issuer.test"},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}
}

// sign signs claims with the issuer's key under its kid.
func (e *extIssuer) sign(t testing.TB, claims jwtv5.MapClaims) string {
	t.Helper()
	tok := jwtv5.NewWithClaims(jwtv5.SigningMethodES256, claims)
	tok.Header["kid"] = e.kid
	s, err := tok.SignedString(e.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// token is a token of the issuer for sub, edited.
func (e *extIssuer) token(t testing.TB, sub string, edit func(jwtv5.MapClaims)) string {
	t.Helper()
	c := e.claims(sub, time.Now())
	if edit != nil {
		edit(c)
	}
	return e.sign(t, c)
}

// federatedClient creates a FederatedToken client with rules, and its Secret as the
// operator writes it (no credential), and returns its client_id.
func (w *world) federatedClient(ns, name string, audiences []string, rules ...oauthv1alpha1.FederatedRule) string {
	w.tb.Helper()
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: oauthv1alpha1.OAuthClientSpec{
		Audiences: audiences,
		Authentication: &oauthv1alpha1.ClientAuthentication{
			Method: oauthv1alpha1.AuthFederatedToken, Federated: rules,
		},
	}}
	w.create(oc)
	return oc.ClientID()
}

func rule(issuer *extIssuer, sub string, claims map[string]string) oauthv1alpha1.FederatedRule {
	return oauthv1alpha1.FederatedRule{Issuer: issuer.obj.Name, Subject: sub, Claims: claims}
}

// The three request shapes of a token of a trusted issuer (or a local ServiceAccount
// token): RFC 7523 §2.2 client assertion, §2.1 JWT-bearer grant, RFC 8693 token
// exchange. clientID "" sends none.
func shapeAssertion(clientID, token string) string {
	return jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": clientID,
		"client_assertion_type": JWTBearerAssertionType, "client_assertion": token})
}

func shapeJWTBearer(clientID, token string) string {
	p := map[string]string{"grant_type": GrantJWTBearer, "assertion": token}
	if clientID != "" {
		p["client_id"] = clientID
	}
	return jsonBody(p)
}

func shapeExchange(clientID, token string) string {
	p := map[string]string{"grant_type": GrantTokenExchange, "subject_token": token, "subject_token_type": TokenTypeJWT}
	if clientID != "" {
		p["client_id"] = clientID
	}
	return jsonBody(p)
}

type shape struct {
	name string
	body func(clientID, token string) string
	// refusal is the status and error of every refusal of the token.
	status int
	code   string
}

var shapes = []shape{
	{"client assertion", shapeAssertion, http.StatusUnauthorized, errInvalidClient},
	{"jwt-bearer grant", shapeJWTBearer, http.StatusBadRequest, errInvalidGrant},
	{"token exchange", shapeExchange, http.StatusBadRequest, errInvalidGrant},
}

// TestFederatedTokenShapes: a token of a trusted issuer gets an access token for the
// client whose rule it matches, in each of the three shapes; the grants find the
// client without client_id; the token exchange says what it issued; a token may be
// presented again until it expires.
func TestFederatedTokenShapes(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("fed", nil)
	api := w.api("fed-api", oauthv1alpha1.OAuthAPISpec{Scopes: []oauthv1alpha1.Scope{"users:read"}, AllowedNamespaces: allNS()})
	b := w.trusted("cluster-b", nil)
	const sub = "system:serviceaccount:shop:erp-sync"
	id := w.federatedClient(ns, "erp", []string{api}, rule(b, sub, nil))
	srv, keys := w.server("", signing.ES256, nil)
	tok := b.token(t, sub, nil)
	for _, sh := range shapes {
		for _, withID := range []bool{true, false} {
			if sh.name == "client assertion" && !withID {
				continue // client_id is required there
			}
			cid := ""
			if withID {
				cid = id
			}
			rec := post(srv.Handler(), "application/json", sh.body(cid, tok))
			got := decodeOK(t, rec)
			_, claims := verify(t, got.AccessToken, keys.Load().Set.Current().Private.Public())
			if claims["sub"] != id || claims["client_id"] != id || claims["aud"] != api {
				t.Errorf("%s (client_id %v): claims %v", sh.name, withID, claims)
			}
			var raw map[string]any
			_ = json.Unmarshal(rec.Body.Bytes(), &raw)
			if want := sh.name == "token exchange"; (raw["issued_token_type"] == TokenTypeAccessToken) != want {
				t.Errorf("%s: issued_token_type %v", sh.name, raw["issued_token_type"])
			}
		}
	}

	// The exchange's other parameters.
	exchange := func(kv ...string) *httptest.ResponseRecorder {
		p := map[string]string{"grant_type": GrantTokenExchange, "subject_token": tok, "subject_token_type": TokenTypeJWT}
		for i := 0; i+1 < len(kv); i += 2 {
			p[kv[i]] = kv[i+1]
		}
		return post(srv.Handler(), "application/json", jsonBody(p))
	}
	decodeOK(t, exchange("subject_token_type", TokenTypeIDToken, "requested_token_type", TokenTypeAccessToken, "audience", api))
	form := url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {tok}, "subject_token_type": {TokenTypeJWT}}
	decodeOK(t, post(srv.Handler(), "application/x-www-form-urlencoded", form.Encode()))
	for name, kv := range map[string][]string{
		"refresh token requested": {"requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token"},
		"SAML subject token":      {"subject_token_type", "urn:ietf:params:oauth:token-type:saml2"},
		"no subject token type":   {"subject_token_type", ""},
		"no subject token":        {"subject_token", ""},
		"delegation":              {"actor_token", tok, "actor_token_type", TokenTypeJWT},
		"with a client secret":    {"client_secret", "x"},
	} {
		if rec := exchange(kv...); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), errInvalidRequest) {
			t.Errorf("%s: %d %s, want 400 invalid_request", name, rec.Code, rec.Body)
		}
	}
	if rec := post(srv.Handler(), "application/json", jsonBody(map[string]string{"grant_type": GrantJWTBearer})); rec.Code != http.StatusBadRequest {
		t.Errorf("jwt-bearer without assertion: %d", rec.Code)
	}
	if rec := post(srv.Handler(), "application/json", shapeJWTBearer("", tok), "Authorization", basic(id, "x")); rec.Code != http.StatusBadRequest {
		t.Errorf("jwt-bearer with Basic credentials: %d", rec.Code)
	}
}

// TestFederatedTokenRefusals: every way a token fails a rule, each with its reason, in
// every shape: 401 invalid_client for a client assertion, 400 invalid_grant for the
// grants, byte for byte the same whatever the reason.
func TestFederatedTokenRefusals(t *testing.T) {
	w := newWorld(t)
	label := "oauth.operator.dev/fed-" + w.suffix
	ns := w.namespace("fed", map[string]string{label: "yes"})
	evil := w.namespace("evil", nil)
	api := w.api("fed-api", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	const sub = "system:serviceaccount:shop:erp-sync"
	admitting := oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "yes"}}}
	b := w.trusted("cluster-b", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
		s.AllowedNamespaces = admitting
		s.MaxTokenLifetime = &metav1.Duration{Duration: 30 * time.Minute}
		s.RequiredClientClaims = []string{"repository_id"}
		s.ClaimValidationRules = []oauthv1alpha1.ClaimValidationRule{
			{Claim: "repository_owner_id", RequiredValue: "42"},
			{Expression: `claims.sub.startsWith("system:serviceaccount:" + client.namespace.replace("fed-", "") + ":") || client.namespace == "` + ns + `"`},
			{Expression: `!has(claims.env) || claims.env != "forbidden"`, Message: "no forbidden environment"},
		}
	})
	// Another issuer with the same subjects: a token of it is no token of b.
	c := w.trusted("cluster-c", nil)
	// Same iss as b, other keys: issuer confusion.
	twin := w.trustedAt(b.url, "twin", nil)
	pinned := map[string]string{"repository_id": "7"}
	id := w.federatedClient(ns, "erp", []string{api}, rule(b, sub, pinned))
	unpinned := w.federatedClient(ns, "unpinned", []string{api}, rule(b, sub, nil))
	tenant := w.federatedClient(evil, "tenant", []string{api}, rule(b, sub, pinned))
	gone := w.federatedClient(ns, "gone", []string{api}, oauthv1alpha1.FederatedRule{Issuer: "no-such-issuer", Subject: sub})
	secretClient := w.client(ns, "classic", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	clk := clocktesting.NewFakePassiveClock(time.Now())
	srv, _ := w.server("rateLimit: {failedAuthPerMinute: 0}\n", signing.ES256, clk)

	good := func(edit func(jwtv5.MapClaims)) string {
		return b.token(t, sub, func(c jwtv5.MapClaims) {
			c["repository_id"], c["repository_owner_id"] = "7", "42"
			if edit != nil {
				edit(c)
			}
		})
	}
	for _, sh := range shapes {
		decodeOK(t, post(srv.Handler(), "application/json", sh.body(id, good(nil))))
	}
	tampered := func() string {
		p := strings.Split(good(nil), ".")
		other := strings.Split(good(func(c jwtv5.MapClaims) { c["sub"] = "system:serviceaccount:shop:admin" }), ".")
		return p[0] + "." + other[1] + "." + p[2]
	}()
	hs256 := func() string {
		tok := jwtv5.NewWithClaims(jwtv5.SigningMethodHS256, jwtv5.MapClaims(maps.Clone(unverifiedMap(t, good(nil)))))
		tok.Header["kid"] = b.kid
		s, err := tok.SignedString([]byte("the public key is no secret"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	none := func() string {
		tok := jwtv5.NewWithClaims(jwtv5.SigningMethodNone, jwtv5.MapClaims(unverifiedMap(t, good(nil))))
		tok.Header["kid"] = b.kid
		s, err := tok.SignedString(jwtv5.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	cases := []struct {
		name     string
		clientID string
		token    string
		ahead    time.Duration
		reason   Reason
	}{
		{"untrusted issuer, right subject", id, c.token(t, sub, func(m jwtv5.MapClaims) { m["repository_id"], m["repository_owner_id"] = "7", "42" }), 0, ReasonAssertionIssuer},
		{"same iss, another issuer's keys", id, twin.sign(t, unverifiedMap(t, good(nil))), 0, ReasonAssertionUnknownKey},
		{"other subject", id, good(func(m jwtv5.MapClaims) { m["sub"] = "system:serviceaccount:shop:other" }), 0, ReasonAssertionSubject},
		{"pinned claim differs", id, good(func(m jwtv5.MapClaims) { m["repository_id"] = "8" }), 0, ReasonClaimMismatch},
		{"pinned claim a number", id, good(func(m jwtv5.MapClaims) { m["repository_id"] = 7 }), 0, ReasonClaimMismatch},
		{"namespace not admitted", tenant, good(nil), 0, ReasonIssuerNamespaceNotAdmitted},
		{"rule without the required claims", unpinned, good(nil), 0, ReasonRuleMissingRequiredClaims},
		{"issuer does not exist", gone, good(nil), 0, ReasonIssuerNotTrusted},
		{"static claim rule", id, good(func(m jwtv5.MapClaims) { m["repository_owner_id"] = "43" }), 0, ReasonClaimRuleFailed},
		{"CEL claim rule", id, good(func(m jwtv5.MapClaims) { m["env"] = "forbidden" }), 0, ReasonClaimRuleFailed},
		{"over maxTokenLifetime", id, good(func(m jwtv5.MapClaims) { m["exp"] = time.Now().Add(31 * time.Minute).Unix() }), 0, ReasonAssertionLifetime},
		{"no iat", id, good(func(m jwtv5.MapClaims) { delete(m, "iat") }), 0, ReasonAssertionMissingClaim},
		{"no exp", id, good(func(m jwtv5.MapClaims) { delete(m, "exp") }), 0, ReasonAssertionMissingClaim},
		{"wrong audience", id, good(func(m jwtv5.MapClaims) { m["aud"] = []string{"https://elsewhere.example"} }), 0, ReasonAssertionAudience},
		{"audience names another party too", id, good(func(m jwtv5.MapClaims) { m["aud"] = []string{"https://issuer.test", "https://elsewhere.example"} }), 0, ReasonAssertionAudience},
		{"expired", id, good(nil), 11 * time.Minute, ReasonAssertionExpired},
		{"not yet valid", id, good(nil), -2 * time.Minute, ReasonAssertionNotYetValid},
		{"tampered", id, tampered, 0, ReasonAssertionSignature},
		{"HS256 under the real kid", id, hs256, 0, ReasonAssertionAlgorithm},
		{"alg none", id, none, 0, ReasonAssertionAlgorithm},
		{"not a JWT", id, "not.a.jwt", 0, ReasonAssertionMalformed},
		{"for a ClientSecret client", secretClient, good(nil), 0, ReasonMethodMismatch},
	}
	for _, sh := range shapes {
		reference := post(srv.Handler(), "application/json", sh.body(ns+".nobody", good(nil)))
		if reference.Code != sh.status || !strings.Contains(reference.Body.String(), `"`+sh.code+`"`) {
			t.Fatalf("%s: an unknown client: %d %s, want %d %s", sh.name, reference.Code, reference.Body, sh.status, sh.code)
		}
		for _, tc := range cases {
			t.Run(sh.name+"/"+tc.name, func(t *testing.T) {
				clk.SetTime(time.Now().Add(tc.ahead))
				defer clk.SetTime(time.Now())
				records := audited(t, srv, allAudit())
				rec := post(srv.Handler(), "application/json", sh.body(tc.clientID, tc.token))
				if rec.Code != reference.Code || rec.Body.String() != reference.Body.String() {
					t.Errorf("answer %d %s, want the unknown client's %d %s", rec.Code, rec.Body, reference.Code, reference.Body)
				}
				if got := records(); len(got) == 0 || got[len(got)-1]["reason"] != string(tc.reason) {
					t.Errorf("audit %v, want reason %s", got, tc.reason)
				}
			})
		}
	}
	// And the right token still works after all that.
	decodeOK(t, post(srv.Handler(), "application/json", shapeExchange("", good(nil))))
}

func unverifiedMap(t *testing.T, token string) jwtv5.MapClaims {
	t.Helper()
	m := jwtv5.MapClaims{}
	if _, _, err := jwtv5.NewParser().ParseUnverified(token, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFederatedClientResolution: a grant's token without client_id authenticates the
// one client whose rule it matches. Several: 400 invalid_request asking for client_id,
// unless all but one are excluded by their issuer's rules for their namespace, so a
// tenant who copies another namespace's rule cannot lock its clients out. A disabled
// client does not count.
func TestFederatedClientResolution(t *testing.T) {
	w := newWorld(t)
	shop := w.namespace("shop", nil)
	evil := w.namespace("evil", nil)
	api := w.api("res-api", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	sub := "system:serviceaccount:" + shop + ":erp"
	// The administrator's rule: a client may only name ServiceAccounts of its own
	// namespace.
	b := w.trusted("cluster-b", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
		s.ClaimValidationRules = []oauthv1alpha1.ClaimValidationRule{
			{Expression: `claims.sub.startsWith("system:serviceaccount:" + client.namespace + ":")`, Message: "own namespace only"},
		}
	})
	open := w.trusted("open", nil) // no such rule
	victim := w.federatedClient(shop, "erp", []string{api}, rule(b, sub, nil))
	w.federatedClient(evil, "copycat", []string{api}, rule(b, sub, nil))
	srv, _ := w.server("", signing.ES256, nil)
	tok := b.token(t, sub, nil)
	records := audited(t, srv, allAudit())
	for _, body := range []string{shapeJWTBearer("", tok), shapeExchange("", tok)} {
		decodeOK(t, post(srv.Handler(), "application/json", body))
		if last := records(); last[len(last)-1]["client_id"] != victim {
			t.Errorf("resolved %v, want %s", last[len(last)-1]["client_id"], victim)
		}
	}
	// The copycat, with client_id, is refused by the rule.
	if rec := post(srv.Handler(), "application/json", shapeExchange(evil+".copycat", tok)); rec.Code != http.StatusBadRequest {
		t.Errorf("the copycat: %d %s", rec.Code, rec.Body)
	}

	// Without such a rule, two clients of the subject: the request must name one.
	osub := "system:serviceaccount:" + shop + ":other"
	first := w.federatedClient(shop, "first", []string{api}, rule(open, osub, nil))
	second := w.federatedClient(evil, "second", []string{api}, rule(open, osub, nil))
	otok := open.token(t, osub, nil)
	rec := post(srv.Handler(), "application/json", shapeJWTBearer("", otok))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"invalid_request"`) || !strings.Contains(rec.Body.String(), "client_id") {
		t.Errorf("two matching clients: %d %s, want 400 invalid_request naming client_id", rec.Code, rec.Body)
	}
	if last := records(); last[len(last)-1]["reason"] != string(ReasonClientIDRequired) {
		t.Errorf("reason %v", last[len(last)-1]["reason"])
	}
	for _, id := range []string{first, second} {
		decodeOK(t, post(srv.Handler(), "application/json", shapeJWTBearer(id, otok)))
	}
	// A forged token stating that subject: it authenticates neither, so it is a refused
	// grant (and a failed authentication), not a request for client_id.
	forger := w.trustedAt(open.url, "forger", nil)
	w.remove(forger.obj)
	forged := forger.sign(t, unverifiedMap(t, otok))
	rec = post(srv.Handler(), "application/json", shapeJWTBearer("", forged))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"invalid_grant"`) {
		t.Errorf("a forged token matching two clients: %d %s, want 400 invalid_grant", rec.Code, rec.Body)
	}
	// One disabled: the other is the client.
	oc := w.objects[objectKey(&oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: evil, Name: "second"}})].(*oauthv1alpha1.OAuthClient)
	oc.Spec.Disabled = true
	w.update(oc)
	decodeOK(t, post(srv.Handler(), "application/json", shapeJWTBearer("", otok)))

	// A claim the rule pins tells two clients of one subject apart.
	csub := "repo:example/app:ref:refs/heads/main"
	w.federatedClient(shop, "app-main", []string{api}, rule(open, csub, map[string]string{"repository_id": "1"}))
	w.federatedClient(shop, "fork", []string{api}, rule(open, csub, map[string]string{"repository_id": "2"}))
	decodeOK(t, post(srv.Handler(), "application/json", shapeJWTBearer("", open.token(t, csub, func(c jwtv5.MapClaims) { c["repository_id"] = "2" }))))
	if last := records(); last[len(last)-1]["client_id"] != shop+".fork" {
		t.Errorf("resolved %v, want %s.fork", last[len(last)-1]["client_id"], shop)
	}
	// No client matches.
	rec = post(srv.Handler(), "application/json", shapeJWTBearer("", open.token(t, "nobody", nil)))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"invalid_grant"`) {
		t.Errorf("no matching client: %d %s", rec.Code, rec.Body)
	}
}

// TestFederatedRuleNeverLocal: a FederatedToken rule that names no issuer (which the
// CRD refuses) is dropped, never taken for a rule of the local ServiceAccount issuer:
// such a rule would let a tenant name any ServiceAccount of the cluster.
func TestFederatedRuleNeverLocal(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("never-local", nil)
	victim := w.namespace("victim", nil)
	api := w.api("never-local", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	w.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: victim, Name: "erp"}})
	sub := oauthv1alpha1.ServiceAccountSubject(victim, "erp")
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "thief"}, Spec: oauthv1alpha1.OAuthClientSpec{
		Audiences: []string{api},
		Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthFederatedToken,
			Federated: []oauthv1alpha1.FederatedRule{{Issuer: "", Subject: sub}}},
	}}
	if c := newClient(oc); len(c.rules) != 0 {
		t.Fatalf("rules %+v, want none", c.rules)
	}
	w.create(oc)
	srv, _ := w.server("", signing.ES256, nil)
	tok := saToken(t, w, victim, "erp", []string{"https://issuer.test"}, time.Hour)
	for _, body := range []string{shapeAssertion(oc.ClientID(), tok), shapeExchange(oc.ClientID(), tok), shapeExchange("", tok)} {
		if rec := post(srv.Handler(), "application/json", body); rec.Code == http.StatusOK {
			t.Fatalf("another namespace's ServiceAccount token authenticated the client: %s", rec.Body)
		}
	}
}

// TestFederatedChangesApplyAtOnce: an issuer deleted, a namespace relabelled out of
// its allowedNamespaces, a rule edited: the next request is refused.
func TestFederatedChangesApplyAtOnce(t *testing.T) {
	w := newWorld(t)
	label := "oauth.operator.dev/fed-" + w.suffix
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "relabel-" + w.suffix, Labels: map[string]string{label: "yes"}}}
	w.create(nsObj)
	api := w.api("chg-api", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	b := w.trusted("cluster-b", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
		s.AllowedNamespaces = oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "yes"}}}
	})
	id := w.federatedClient(nsObj.Name, "erp", []string{api}, rule(b, "sub-1", nil))
	srv, _ := w.server("", signing.ES256, nil)
	tok := b.token(t, "sub-1", nil)
	records := audited(t, srv, allAudit())
	refusedFor := func(want Reason) {
		t.Helper()
		rec := post(srv.Handler(), "application/json", shapeAssertion(id, tok))
		if got := records(); rec.Code != http.StatusUnauthorized || got[len(got)-1]["reason"] != string(want) {
			t.Errorf("%d, reason %v, want 401 for %s", rec.Code, got[len(got)-1]["reason"], want)
		}
	}
	decodeOK(t, post(srv.Handler(), "application/json", shapeAssertion(id, tok)))
	nsObj.Labels = nil
	w.update(nsObj)
	refusedFor(ReasonIssuerNamespaceNotAdmitted)
	nsObj.Labels = map[string]string{label: "yes"}
	w.update(nsObj)
	decodeOK(t, post(srv.Handler(), "application/json", shapeAssertion(id, tok)))

	// The issuer now requires a claim the rule does not pin.
	edited := b.obj.DeepCopy()
	edited.Generation = 2
	edited.Spec.RequiredClientClaims = []string{"repository_id"}
	w.update(edited)
	refusedFor(ReasonRuleMissingRequiredClaims)
	edited = edited.DeepCopy()
	edited.Generation = 3
	edited.Spec.RequiredClientClaims = nil
	edited.Spec.ClaimValidationRules = []oauthv1alpha1.ClaimValidationRule{{Expression: `claims.sub.startsWith(`}}
	w.update(edited)
	refusedFor(ReasonIssuerNotTrusted) // a rule that does not compile: no token of the issuer
	edited = edited.DeepCopy()
	edited.Generation = 4
	edited.Spec.ClaimValidationRules = nil
	w.update(edited)
	decodeOK(t, post(srv.Handler(), "application/json", shapeAssertion(id, tok)))

	w.remove(edited)
	refusedFor(ReasonIssuerNotTrusted)
	if w.registry.Len() != 0 {
		t.Errorf("the registry still holds %d issuers", w.registry.Len())
	}
}

// TestFederatedAccessTokenExpiry: the access token never outlives the presented token
// by more than its own lifetime: a token accepted within the expiry leeway yields an
// access token that expires its lifetime after the presented one, not after now.
func TestFederatedAccessTokenExpiry(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("exp", nil)
	api := w.api("exp-api", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS(), AccessTokenTTL: dur("10m")})
	b := w.trusted("cluster-b", nil)
	id := w.federatedClient(ns, "erp", []string{api}, rule(b, "s", nil))
	start := time.Now().Truncate(time.Second)
	clk := clocktesting.NewFakePassiveClock(start)
	srv, keys := w.server("", signing.ES256, clk)
	tok := b.sign(t, jwtv5.MapClaims{"iss": b.url, "sub": "s", "aud": "https://issuer.test",
		"iat": start.Add(-10 * time.Minute).Unix(), "exp": start.Add(-20 * time.Second).Unix()})
	got := decodeOK(t, post(srv.Handler(), "application/json", shapeExchange(id, tok)))
	_, claims := verify(t, got.AccessToken, keys.Load().Set.Current().Private.Public())
	wantExp := start.Add(-20*time.Second + 10*time.Minute).Unix()
	if exp := int64(claims["exp"].(float64)); exp != wantExp || got.ExpiresIn != 600-20 {
		t.Errorf("exp %d (expires_in %d), want %d (%d)", exp, got.ExpiresIn, wantExp, 600-20)
	}
	// A current token: the API's lifetime.
	fresh := b.token(t, "s", func(c jwtv5.MapClaims) { c["iat"], c["exp"] = start.Unix(), start.Add(5*time.Minute).Unix() })
	if got := decodeOK(t, post(srv.Handler(), "application/json", shapeExchange(id, fresh))); got.ExpiresIn != 600 {
		t.Errorf("expires_in %d, want 600", got.ExpiresIn)
	}
}

// TestServiceAccountTokenGrants: a local ServiceAccount token, the special case of one
// rule against the cluster's own issuer, is accepted in the two grant shapes too, with
// or without client_id, and refused there with 400 invalid_grant.
func TestServiceAccountTokenGrants(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("sa-grant", nil)
	api := w.api("sa-grant", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	w.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erp"}})
	w.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"}})
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "erp"}, Spec: oauthv1alpha1.OAuthClientSpec{
		Audiences:      []string{api},
		Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthServiceAccountToken, ServiceAccountName: "erp"},
	}}
	w.create(oc)
	srv, _ := w.server("", signing.ES256, nil)
	tok := saToken(t, w, ns, "erp", []string{"https://issuer.test"}, time.Hour)
	for _, body := range []string{shapeJWTBearer("", tok), shapeExchange("", tok), shapeJWTBearer(oc.ClientID(), tok), shapeExchange(oc.ClientID(), tok)} {
		decodeOK(t, post(srv.Handler(), "application/json", body))
	}
	other := saToken(t, w, ns, "other", []string{"https://issuer.test"}, time.Hour)
	for _, body := range []string{shapeJWTBearer(oc.ClientID(), other), shapeExchange("", other)} {
		if rec := post(srv.Handler(), "application/json", body); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"invalid_grant"`) {
			t.Errorf("another ServiceAccount's token: %d %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkFederatedToken measures a token exchange of a trusted issuer's token, whole
// (parse, verify, rules, sign with ES256), without claim rules, with a claim rule, and
// with the claim rule and the README's namespace CEL rule; the differences are the
// rules' per-request cost:
//
//	go test -run '^$' -bench BenchmarkFederatedToken -benchmem ./internal/tokenserver/
func BenchmarkFederatedToken(b *testing.B) {
	w := newWorld(b)
	ns := w.namespace("bench", nil)
	api := w.api("bench", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	sub := "system:serviceaccount:" + ns + ":erp"
	for _, tc := range []struct {
		name  string
		rules []oauthv1alpha1.ClaimValidationRule
	}{
		{"no-rules", nil},
		{"claim-rule", []oauthv1alpha1.ClaimValidationRule{{Claim: "repository_owner_id", RequiredValue: "42"}}},
		{"claim-and-cel-rule", []oauthv1alpha1.ClaimValidationRule{
			{Claim: "repository_owner_id", RequiredValue: "42"},
			{Expression: `claims.sub.startsWith("system:serviceaccount:" + client.namespace + ":")`},
		}},
	} {
		e := w.trusted("bench-"+tc.name, func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) { s.ClaimValidationRules = tc.rules })
		id := w.federatedClient(ns, tc.name, []string{api}, rule(e, sub, nil))
		tok := e.token(b, sub, func(c jwtv5.MapClaims) {
			c["repository_owner_id"] = "42"
			c["exp"] = time.Now().Add(time.Hour).Unix()
		})
		srv, _ := w.server("", signing.ES256, nil)
		srv.audit.enabled = false
		body := shapeExchange(id, tok)
		b.Run(tc.name, func(b *testing.B) { benchmarkHandler(b, srv.Handler(), body) })
	}
}
