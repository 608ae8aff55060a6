package tokenserver

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jwtv5 "github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// refusalCase is one request that a server refuses for one reason.
type refusalCase struct {
	reason Reason
	// config is added to the server's config file; alg is its signing algorithm
	// (ES256 when "", none with noKeys).
	config string
	noKeys bool
	// prepare changes the server before the request.
	prepare func(*Server)
	// send makes the request (and whatever must precede it) and returns the answer.
	send func(t *testing.T, h http.Handler) *httptest.ResponseRecorder
}

// TestEveryRefusalReason provokes every Reason: the audit record names it, the refusal
// counter counts it under its label, and for failed authentication the client sees
// byte for byte the answer of an unknown client.
func TestEveryRefusalReason(t *testing.T) {
	w := newWorld(t)
	label := "oauth.operator.dev/reasons-" + w.suffix
	ns := w.namespace("reasons", map[string]string{label: "yes"})
	otherNS := w.namespace("reasons-other", nil)
	api := w.api("reasons", oauthv1alpha1.OAuthAPISpec{
		Scopes: []oauthv1alpha1.Scope{"read", "write"},
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "yes"}}},
	})
	second := w.api("reasons-second", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	// Two OAuthAPIs claim one audience.
	shared := "https://shared-" + w.suffix + ".example"
	claimed := w.api("reasons-claimed", oauthv1alpha1.OAuthAPISpec{Audience: shared, AllowedNamespaces: allNS()})
	w.api("reasons-claimed-too", oauthv1alpha1.OAuthAPISpec{Audience: shared, AllowedNamespaces: allNS()})
	colliding := w.client(ns, "colliding", oauthv1alpha1.OAuthClientSpec{Audiences: []string{claimed}})
	secret := w.client(ns, "secret", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}, Scopes: []oauthv1alpha1.Scope{"read"}})
	multi := w.client(ns, "multi", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api, second}})
	tenant := w.client(otherNS, "tenant", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	disabled := w.client(ns, "off", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}, Disabled: true})
	limited := w.client(ns, "limited", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api},
		RateLimit: &oauthv1alpha1.ClientRateLimit{RequestsPerMinute: 1, Burst: 1}})
	rotated := w.client(ns, "rotated", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	orphan := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orphan"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}}}
	w.create(orphan)
	w.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orphan"},
		StringData: map[string]string{"client_secret": strings.Repeat("o", oauthv1alpha1.MinClientSecretLength)}})
	pk := w.keyPairClient(t, ns, "pk", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}}, signing.ES256)
	w.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "robot"}})
	saClient := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "robot"}, Spec: oauthv1alpha1.OAuthClientSpec{
		Audiences:      []string{api},
		Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthServiceAccountToken, ServiceAccountName: "robot"},
	}}
	w.create(saClient)
	// Clients of trusted issuers: one whose rule names no issuer, one in a namespace
	// the issuer does not admit, one whose rule does not pin the required claim, two
	// with the same rule.
	ext := w.trusted("reasons-b", func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
		s.AllowedNamespaces = oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "yes"}}}
		s.RequiredClientClaims = []string{"repository_id"}
		s.ClaimValidationRules = []oauthv1alpha1.ClaimValidationRule{{Expression: `claims.ref == "refs/heads/main"`}}
	})
	repo := map[string]string{"repository_id": "1"}
	fed := w.federatedClient(ns, "fed", []string{api}, rule(ext, "job", repo))
	fedNoIssuer := w.federatedClient(ns, "fed-no-issuer", []string{api}, oauthv1alpha1.FederatedRule{Issuer: "nonexistent", Subject: "job"})
	fedOther := w.federatedClient(otherNS, "fed-other", []string{api}, rule(ext, "job", repo))
	fedUnpinned := w.federatedClient(ns, "fed-unpinned", []string{api}, rule(ext, "job", nil))
	w.federatedClient(ns, "twin-1", []string{api}, rule(ext, "twin", repo))
	w.federatedClient(ns, "twin-2", []string{api}, rule(ext, "twin", repo))
	extToken := func(sub string, edit func(jwtv5.MapClaims)) string {
		return ext.token(t, sub, func(c jwtv5.MapClaims) {
			c["repository_id"], c["ref"] = "1", "refs/heads/main"
			if edit != nil {
				edit(c)
			}
		})
	}

	start := time.Now().Truncate(time.Second)
	clk := clocktesting.NewFakePassiveClock(start)
	// The previous secret of "rotated" was replaced two days ago: its grace period
	// (24 h by default) is over.
	s := w.secret(ns, "rotated")
	previous := "previous-" + w.secrets[rotated]
	s.Data[oauthv1alpha1.SecretKeyPreviousClientSecret] = []byte(previous)
	s.Annotations = map[string]string{
		oauthv1alpha1.SecretRotatedAtAnnotation:       start.Add(-48 * time.Hour).Format(time.RFC3339),
		oauthv1alpha1.PreviousSecretExpiresAnnotation: start.Add(time.Hour).Format(time.RFC3339),
	}
	w.update(s)

	const tokenURL = "https://issuer.test" + TokenPath
	params := func(kv ...string) string {
		m := map[string]string{"grant_type": "client_credentials"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return jsonBody(m)
	}
	postBody := func(body string, header ...string) func(*testing.T, http.Handler) *httptest.ResponseRecorder {
		return func(_ *testing.T, h http.Handler) *httptest.ResponseRecorder {
			return post(h, "application/json", body, header...)
		}
	}
	withSecret := func(id, secret string) string { return params("client_id", id, "client_secret", secret) }
	withAssertion := func(id, a string) string {
		return params("client_id", id, "client_assertion_type", JWTBearerAssertionType, "client_assertion", a)
	}
	// assertion is pk's assertion for this server, edited.
	assertion := func(edit func(jwtv5.MapClaims, map[string]any)) string {
		return pk.assert(t, tokenURL, start, edit)
	}
	other, _ := generateKeyClient(t, signing.ES256)
	other.id = pk.id
	replayed := assertion(nil)
	sa := func(ns, name string) string {
		return saToken(t, w, ns, name, []string{"https://issuer.test"}, time.Hour)
	}
	oldRobot := sa(ns, "robot")
	dpopOnly := w.client(ns, "dpop-only", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}, RequireDPoP: true})
	dk := newDPoPKey(t)
	proof := func(edit func(h, c map[string]any)) string { return dk.proof(t, tokenURL, start, edit) }
	withProof := func(p ...string) func(*testing.T, http.Handler) *httptest.ResponseRecorder {
		return func(_ *testing.T, h http.Handler) *httptest.ResponseRecorder {
			return withDPoP(h, withSecret(secret, w.secrets[secret]), p...)
		}
	}
	// podBound is minted when sent: the robot ServiceAccount is recreated by a case.
	podBound := func(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
		tok := w.kubeIssuer().boundToken(t, w, ns, "robot", "robot-7d9c", []string{"https://issuer.test"}, time.Hour)
		return post(h, "application/json", withAssertion(saClient.ClientID(), tok))
	}

	cases := []refusalCase{
		{reason: ReasonUnknownClient, send: postBody(withSecret(ns+".nobody", "whatever"))},
		{reason: ReasonNoCredential, send: postBody(params("client_id", secret))},
		{reason: ReasonMethodMismatch, send: postBody(withSecret(pk.id, w.secrets[secret]))},
		{reason: ReasonCredentialsUnavailable, send: postBody(withSecret(orphan.ClientID(), strings.Repeat("o", oauthv1alpha1.MinClientSecretLength)))},
		{reason: ReasonWrongSecret, send: postBody(withSecret(secret, "wrong"))},
		{reason: ReasonPreviousSecretExpired, send: postBody(withSecret(rotated, previous))},
		{reason: ReasonDisabled, send: postBody(withSecret(disabled, w.secrets[disabled]))},
		{reason: ReasonAssertionTooLarge, send: postBody(withAssertion(pk.id, strings.Repeat("a", maxAssertionBytes+1)))},
		{reason: ReasonAssertionMalformed, send: postBody(withAssertion(pk.id, "not.a.jwt"))},
		{reason: ReasonAssertionAlgorithm, send: postBody(withAssertion(pk.id, unsigned(t, pk.id, tokenURL, start)))},
		{reason: ReasonAssertionUnknownKey, send: postBody(withAssertion(pk.id, assertion(func(_ jwtv5.MapClaims, h map[string]any) { h["kid"] = "someone-else" })))},
		{reason: ReasonAssertionSignature, send: postBody(withAssertion(pk.id, func() string {
			a := other.assert(t, tokenURL, start, nil) // another key under pk's kid
			o := strings.Split(a, ".")
			g := strings.Split(assertion(nil), ".")
			return g[0] + "." + o[1] + "." + o[2]
		}()))},
		{reason: ReasonAssertionExpired, send: postBody(withAssertion(pk.id, assertion(func(c jwtv5.MapClaims, _ map[string]any) {
			c["iat"], c["exp"] = start.Add(-10*time.Minute).Unix(), start.Add(-5*time.Minute).Unix()
		})))},
		{reason: ReasonAssertionNotYetValid, send: postBody(withAssertion(pk.id, assertion(func(c jwtv5.MapClaims, _ map[string]any) {
			c["iat"] = start.Add(2 * time.Minute).Unix()
		})))},
		{reason: ReasonAssertionMissingClaim, send: postBody(withAssertion(pk.id, assertion(func(c jwtv5.MapClaims, _ map[string]any) { delete(c, "jti") })))},
		{reason: ReasonAssertionIssuer, send: postBody(withAssertion(pk.id, assertion(func(c jwtv5.MapClaims, _ map[string]any) { c["iss"] = secret })))},
		{reason: ReasonAssertionSubject, send: postBody(withAssertion(pk.id, assertion(func(c jwtv5.MapClaims, _ map[string]any) { c["sub"] = secret })))},
		{reason: ReasonAssertionAudience, send: postBody(withAssertion(pk.id, assertion(func(c jwtv5.MapClaims, _ map[string]any) {
			c["aud"] = []string{tokenURL, "https://elsewhere.example"}
		})))},
		{reason: ReasonAssertionLifetime, send: postBody(withAssertion(pk.id, assertion(func(c jwtv5.MapClaims, _ map[string]any) {
			c["exp"] = start.Add(time.Hour).Unix()
		})))},
		{reason: ReasonAssertionReplayed, send: func(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
			if rec := post(h, "application/json", withAssertion(pk.id, replayed)); rec.Code != http.StatusOK {
				t.Fatalf("first use: %d %s", rec.Code, rec.Body)
			}
			return post(h, "application/json", withAssertion(pk.id, replayed))
		}},
		{reason: ReasonReplayCacheFull, config: "privateKeyJWT: {replayCacheSize: 1000}\n", send: func(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
			// The client's share of the replay cache (a thirty-second of it) and its reserve
			// are full.
			for i := range 1000/32 + reservePerClient {
				if rec := post(h, "application/json", withAssertion(pk.id, assertion(nil))); rec.Code != http.StatusOK {
					t.Fatalf("assertion %d within the client's share: %d %s", i, rec.Code, rec.Body)
				}
			}
			return post(h, "application/json", withAssertion(pk.id, assertion(nil)))
		}},
		{reason: ReasonIssuerUnavailable, prepare: func(s *Server) {
			s.authenticators[oauthv1alpha1.AuthServiceAccountToken].(*serviceAccountAuthenticator).issuer = undiscovered{}
		}, send: postBody(withAssertion(saClient.ClientID(), oldRobot))},
		{reason: ReasonServiceAccountUIDMismatch, send: func(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
			if rec := post(h, "application/json", withAssertion(saClient.ClientID(), oldRobot)); rec.Code != http.StatusOK {
				t.Fatalf("before the ServiceAccount is recreated: %d %s", rec.Code, rec.Body)
			}
			w.remove(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "robot"}})
			w.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "robot"}})
			return post(h, "application/json", withAssertion(saClient.ClientID(), oldRobot))
		}},
		{reason: ReasonBoundObjectInvalidated, prepare: func(s *Server) {
			s.authenticators[oauthv1alpha1.AuthServiceAccountToken].(*serviceAccountAuthenticator).reviewer = reviewerFunc(
				func(string, time.Time) (bool, error) { return false, nil })
		}, send: podBound},
		{reason: ReasonTokenReviewUnavailable, prepare: func(s *Server) {
			s.authenticators[oauthv1alpha1.AuthServiceAccountToken].(*serviceAccountAuthenticator).reviewer = reviewerFunc(
				func(string, time.Time) (bool, error) { return false, errors.New("connection refused") })
		}, send: podBound},
		{reason: ReasonIssuerNotTrusted, send: postBody(withAssertion(fedNoIssuer, extToken("job", nil)))},
		{reason: ReasonIssuerNamespaceNotAdmitted, send: postBody(withAssertion(fedOther, extToken("job", nil)))},
		{reason: ReasonRuleMissingRequiredClaims, send: postBody(withAssertion(fedUnpinned, extToken("job", nil)))},
		{reason: ReasonClaimMismatch, send: postBody(withAssertion(fed, extToken("job", func(c jwtv5.MapClaims) { c["repository_id"] = "2" })))},
		{reason: ReasonClaimRuleFailed, send: postBody(withAssertion(fed, extToken("job", func(c jwtv5.MapClaims) { c["ref"] = "refs/heads/dev" })))},
		{reason: ReasonNoMatchingClient, send: postBody(jsonBody(map[string]string{"grant_type": GrantJWTBearer, "assertion": extToken("nobody", nil)}))},
		{reason: ReasonClientIDRequired, send: postBody(jsonBody(map[string]string{"grant_type": GrantTokenExchange,
			"subject_token": extToken("twin", nil), "subject_token_type": TokenTypeJWT}))},
		{reason: ReasonMalformedRequest, send: postBody("{not json")},
		{reason: ReasonMalformedCredentials, send: postBody(params(), "Authorization", "Bearer abc")},
		{reason: ReasonUnsupportedGrantType, send: postBody(jsonBody(map[string]string{"grant_type": "password", "client_id": secret, "client_secret": w.secrets[secret]}))},
		{reason: ReasonAddressThrottled, config: "rateLimit: {failedAuthPerMinute: 1, failedAuthBurst: 1}\n",
			send: func(_ *testing.T, h http.Handler) *httptest.ResponseRecorder {
				post(h, "application/json", withSecret(secret, "wrong"))
				return post(h, "application/json", withSecret(secret, w.secrets[secret]))
			}},
		{reason: ReasonClientRateLimited, send: func(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
			if rec := post(h, "application/json", withSecret(limited, w.secrets[limited])); rec.Code != http.StatusOK {
				t.Fatalf("first request: %d", rec.Code)
			}
			return post(h, "application/json", withSecret(limited, w.secrets[limited]))
		}},
		{reason: ReasonAudienceRequired, send: postBody(withSecret(multi, w.secrets[multi]))},
		{reason: ReasonAudienceNotGranted, send: postBody(params("client_id", secret, "client_secret", w.secrets[secret], "audience", second))},
		{reason: ReasonNamespaceNotAdmitted, send: postBody(withSecret(tenant, w.secrets[tenant]))},
		{reason: ReasonAudienceConflict, send: postBody(withSecret(colliding, w.secrets[colliding]))},
		{reason: ReasonScopeNotAllowed, send: postBody(params("client_id", secret, "client_secret", w.secrets[secret], "scope", "write"))},
		{reason: ReasonDPoPProofRequired, send: postBody(withSecret(dpopOnly, w.secrets[dpopOnly]))},
		{reason: ReasonDPoPProofMalformed, send: withProof(proof(nil), proof(nil))},
		{reason: ReasonDPoPProofAlgorithm, send: withProof(signJWS(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": dk.jwk},
			map[string]any{"jti": "n", "htm": "POST", "htu": tokenURL, "iat": start.Unix()}, nil, nil))},
		{reason: ReasonDPoPProofKey, send: withProof(proof(func(h, _ map[string]any) { delete(h, "jwk") }))},
		{reason: ReasonDPoPProofSignature, send: withProof(newDPoPKey(t).proof(t, tokenURL, start, func(h, _ map[string]any) { h["jwk"] = dk.jwk }))},
		{reason: ReasonDPoPProofMismatch, send: withProof(proof(func(_, c map[string]any) { c["htu"] = "https://issuer.test/elsewhere" }))},
		{reason: ReasonDPoPProofTime, send: withProof(proof(func(_, c map[string]any) { c["iat"] = start.Add(-time.Hour).Unix() }))},
		{reason: ReasonDPoPProofReplayed, send: func(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
			p := proof(nil)
			if rec := withProof(p)(t, h); rec.Code != http.StatusOK {
				t.Fatalf("first use: %d %s", rec.Code, rec.Body)
			}
			return withProof(p)(t, h)
		}},
		{reason: ReasonDPoPReplayCacheFull, config: "dpop: {replayCacheSize: 1000}\n", send: func(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
			// The client's share of the cache (an eighth) and its reserve are full.
			for i := range 1000/32 + reservePerClient {
				if rec := withProof(proof(nil))(t, h); rec.Code != http.StatusOK {
					t.Fatalf("proof %d within the client's share: %d %s", i, rec.Code, rec.Body)
				}
			}
			return withProof(proof(nil))(t, h)
		}},
		{reason: ReasonSigningKeyUnavailable, noKeys: true, send: postBody(withSecret(secret, w.secrets[secret]))},
		{reason: ReasonSigningFailed, prepare: func(s *Server) {
			s.sign = func(*signing.Signer, []byte) (string, error) { return "", errors.New("the HSM is unplugged") }
		}, send: postBody(withSecret(secret, w.secrets[secret]))},
	}
	// The answer to an unknown client: every failed authentication gives the same.
	reference, _ := w.server("", signing.ES256, clk)
	unknown := post(reference.Handler(), "application/json", withSecret(ns+".unknown", "whatever"))
	provoked := map[Reason]bool{}
	for _, tc := range cases {
		provoked[tc.reason] = true
		t.Run(string(tc.reason), func(t *testing.T) {
			alg := signing.ES256
			if tc.noKeys {
				alg = ""
			}
			reg := prometheus.NewRegistry()
			target, _ := w.serverWith("rateLimit: {failedAuthPerMinute: 0}\n"+tc.config, alg, Options{Clock: clk})
			reg.MustRegister(target.Collectors()...)
			if tc.prepare != nil {
				tc.prepare(target)
			}
			records := audited(t, target, allAudit())
			rec := tc.send(t, target.Handler())
			got := records()
			if len(got) == 0 {
				t.Fatalf("no audit record; answer %d %s", rec.Code, rec.Body)
			}
			if last := got[len(got)-1]; last["outcome"] != "refused" || last["reason"] != string(tc.reason) {
				t.Errorf("audit record %v, want a refusal for %s (answer %d %s)", last, tc.reason, rec.Code, rec.Body)
			}
			if n := failedCount(t, reg, tc.reason); n != 1 {
				t.Errorf("oauth_token_requests_failed_total{reason=%q} = %v, want 1", tc.reason, n)
			}
			if authenticationReason(tc.reason) {
				if rec.Code != unknown.Code || rec.Body.String() != unknown.Body.String() ||
					fmt.Sprint(rec.Header()) != fmt.Sprint(unknown.Header()) {
					t.Errorf("answer %d %v %s, want the unknown client's %d %v %s",
						rec.Code, rec.Header(), rec.Body, unknown.Code, unknown.Header(), unknown.Body)
				}
			} else if rec.Code < 400 {
				t.Errorf("answer %d, want a refusal", rec.Code)
			}
		})
	}
	for _, r := range Reasons {
		if !provoked[r] {
			t.Errorf("reason %s is never provoked", r)
		}
	}
}

// authenticationReason reports whether r is a failed client authentication, answered
// like an unknown client.
func authenticationReason(r Reason) bool {
	switch r {
	case ReasonMalformedRequest, ReasonMalformedCredentials, ReasonUnsupportedGrantType, ReasonAddressThrottled, ReasonReplayCacheFull,
		ReasonTokenReviewUnavailable, ReasonNoMatchingClient, ReasonClientIDRequired,
		ReasonClientRateLimited, ReasonAudienceRequired, ReasonAudienceNotGranted, ReasonNamespaceNotAdmitted, ReasonAudienceConflict,
		ReasonScopeNotAllowed, ReasonSigningKeyUnavailable, ReasonSigningFailed,
		ReasonDPoPProofRequired, ReasonDPoPProofMalformed, ReasonDPoPProofAlgorithm, ReasonDPoPProofKey, ReasonDPoPProofSignature,
		ReasonDPoPProofMismatch, ReasonDPoPProofTime, ReasonDPoPProofReplayed, ReasonDPoPReplayCacheFull:
		return false
	}
	return true
}

// failedCount is the value of oauth_token_requests_failed_total for reason in reg.
func failedCount(t *testing.T, reg *prometheus.Registry, reason Reason) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "oauth_token_requests_failed_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelValue(m, "reason") == string(reason) {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// reviewerFunc is a BoundTokenReviewer.
type reviewerFunc func(string, time.Time) (bool, error)

func (f reviewerFunc) Review(token string, exp time.Time) (bool, error) { return f(token, exp) }

// undiscovered is a ServiceAccount issuer not known yet.
type undiscovered struct{}

func (undiscovered) Issuer() string                    { return "" }
func (undiscovered) Keyfunc(*jwtv5.Token) (any, error) { return nil, errors.New("not discovered") }

// unsigned is an assertion of id with alg none.
func unsigned(t *testing.T, id, aud string, now time.Time) string {
	t.Helper()
	s, err := jwtv5.NewWithClaims(jwtv5.SigningMethodNone, jwtv5.MapClaims{
		"iss": id, "sub": id, "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": "none-1",
	}).SignedString(jwtv5.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
