package tokenserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"k8s.io/apimachinery/pkg/types"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/trust"
	"github.com/oauth-client-operator/oauth-client-operator/pkg/verifier"
)

// One rule model. A client of method FederatedToken lists token rules {issuer,
// subject, claims}; a client of method ServiceAccountToken has one, against the local
// cluster's ServiceAccount issuer, for its ServiceAccount's subject. A token satisfies
// a rule when:
//
//   - the rule's issuer exists and is usable (issuer_not_trusted), and is the token's
//     `iss` (assertion_issuer);
//   - a trusted issuer admits the client's namespace (issuer_namespace_not_admitted)
//     and the rule pins its requiredClientClaims (rule_missing_required_claims);
//   - the token verifies with the issuer's keys, under a pinned algorithm, is current,
//     has an `iat`, lives at most the issuer's maximum and every value of its `aud` is
//     one of the issuer's audiences (the assertion_* reasons);
//   - its `sub` is the rule's subject (assertion_subject) and its claims are the rule's
//     (claim_mismatch);
//   - a trusted issuer's claimValidationRules hold for the client (claim_rule_failed);
//   - a local token was issued for the ServiceAccount that exists now
//     (service_account_uid_mismatch) and, when bound to a pod, the API server still
//     holds it valid (bound_object_invalidated, token_review_unavailable).
//
// The same token is accepted in three shapes: a client assertion of the
// client-credentials grant (client_id required), the JWT-bearer grant and the token
// exchange (grants.go; client_id optional: resolveClient finds the client).

// tokenIssuer is an issuer of tokens that authenticate clients, as one verification
// sees it: the local cluster's ServiceAccount issuer or an OAuthTrustedIssuer.
type tokenIssuer struct {
	// url is the `iss` of its tokens.
	url         string
	keyfunc     jwt.Keyfunc
	audiences   []string
	maxLifetime time.Duration
	// trusted is the OAuthTrustedIssuer (claim rules, required client claims,
	// namespace admission); nil for the local issuer.
	trusted *trust.Issuer
}

// ruleVerifier verifies tokens against clients' token rules: the one verification
// path of ServiceAccountToken and FederatedToken clients.
type ruleVerifier struct {
	state State
	// audiences are the `aud` values accepted when an issuer names none: this
	// server's issuer URL and its token endpoint URL.
	audiences []string
	// local is the cluster's ServiceAccount issuer, and what confirms its tokens.
	local *serviceAccountAuthenticator
}

// federatedAuthenticator authenticates FederatedToken clients.
type federatedAuthenticator struct{ rules *ruleVerifier }

func (a *federatedAuthenticator) authenticate(c *Client, _ *Credentials, cred *credential, now time.Time) Reason {
	if !cred.isToken() || len(c.rules) == 0 {
		return ReasonMethodMismatch
	}
	return a.rules.verify(c, cred, now, true)
}

// isToken reports whether the credential is a JWT: a client assertion or a grant's
// token.
func (c *credential) isToken() bool { return c.kind == credAssertion || c.kind == credGrant }

// issuerOf returns the issuer a rule names, or why it has none.
func (v *ruleVerifier) issuerOf(r *tokenRule) (*tokenIssuer, Reason) {
	if r.issuer == localIssuer {
		sa := v.local
		if sa.issuer == nil || sa.issuer.Issuer() == "" {
			return nil, ReasonIssuerUnavailable
		}
		return &tokenIssuer{url: sa.issuer.Issuer(), keyfunc: sa.issuer.Keyfunc, audiences: v.audiences, maxLifetime: sa.maxLifetime}, ""
	}
	ti := v.state.TrustedIssuer(r.issuer)
	if ti == nil || ti.Problem() != nil {
		return nil, ReasonIssuerNotTrusted
	}
	aud := ti.Audiences
	if len(aud) == 0 {
		aud = v.audiences
	}
	return &tokenIssuer{url: ti.URL, keyfunc: ti.Keyfunc, audiences: aud, maxLifetime: ti.MaxLifetime, trusted: ti}, ""
}

// admitted says why a trusted issuer does not let client c use rule r ("" when it
// does): its namespace is not admitted, or the rule does not pin a required claim.
// The OAuthClient controller reports the same with the same rules.
func (v *ruleVerifier) admitted(ti *tokenIssuer, c *Client, r *tokenRule) Reason {
	switch {
	case ti.trusted == nil:
		return ""
	case !v.state.AdmitsToIssuer(ti.trusted, c.namespace):
		return ReasonIssuerNamespaceNotAdmitted
	case len(oauthv1alpha1.MissingClientClaims(ti.trusted.RequiredClientClaims, r.claims)) > 0:
		return ReasonRuleMissingRequiredClaims
	}
	return ""
}

// verdict is how far a token got with one rule: the reason it failed, ranked by the
// stage of the failure, so a client with several rules is refused for the rule the
// token came closest to.
type verdict struct {
	reason Reason
	stage  int
}

// stageOf ranks a refusal reason of the rule model: the later the check, the higher.
func stageOf(r Reason) int {
	switch r {
	case ReasonIssuerNotTrusted, ReasonIssuerUnavailable, ReasonAssertionIssuer:
		return 1
	case ReasonIssuerNamespaceNotAdmitted, ReasonRuleMissingRequiredClaims:
		return 2
	case ReasonAssertionSubject:
		return 4
	case ReasonClaimMismatch:
		return 5
	case ReasonClaimRuleFailed:
		return 6
	case ReasonServiceAccountUIDMismatch, ReasonBoundObjectInvalidated, ReasonTokenReviewUnavailable:
		return 7
	}
	return 3 // the token's own checks: signature, times, audience
}

// parsedToken is a token as one issuer verified it: its claims, or why not.
type parsedToken struct {
	claims jwt.MapClaims
	reason Reason
}

// verify reports whether the token cred presents satisfies one of c's rules ("") or
// why not. When it does, cred.expiresAt is the token's exp. review false skips the
// one check that may ask the API server (a local token bound to a pod).
func (v *ruleVerifier) verify(c *Client, cred *credential, now time.Time, review bool) Reason {
	return v.verifyWith(c, cred, now, review, make(map[string]parsedToken, 1))
}

// verifyWith is verify with the tokens already verified, by issuer, which it adds to.
func (v *ruleVerifier) verifyWith(c *Client, cred *credential, now time.Time, review bool, parsed map[string]parsedToken) Reason {
	unverified := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(cred.assertion, unverified); err != nil {
		return ReasonAssertionMalformed
	}
	iss, _ := unverified["iss"].(string)
	best := verdict{reason: ReasonMethodMismatch}
	for i := range c.rules {
		r := &c.rules[i]
		claims, reason := v.verifyRule(c, r, iss, cred.assertion, parsed, now, review)
		if reason == "" {
			exp, _ := claims.GetExpirationTime()
			cred.expiresAt = exp.Time
			return ""
		}
		if s := stageOf(reason); s > best.stage {
			best = verdict{reason: reason, stage: s}
		}
	}
	return best.reason
}

// verifyRule checks the token against one rule; see the package's rule model.
func (v *ruleVerifier) verifyRule(c *Client, r *tokenRule, iss, token string, parsed map[string]parsedToken, now time.Time, review bool) (jwt.MapClaims, Reason) {
	ti, reason := v.issuerOf(r)
	switch {
	case reason != "":
		return nil, reason
	case ti.url != iss:
		return nil, ReasonAssertionIssuer
	}
	if reason := v.admitted(ti, c, r); reason != "" {
		return nil, reason
	}
	p, ok := parsed[r.issuer]
	if !ok {
		p.claims, p.reason = parseToken(ti, token, now)
		parsed[r.issuer] = p
	}
	if p.reason != "" {
		return nil, p.reason
	}
	claims := p.claims
	if sub, _ := claims["sub"].(string); sub != r.subject {
		return nil, ReasonAssertionSubject
	}
	if !claimsMatch(claims, r.claims) {
		return nil, ReasonClaimMismatch
	}
	if ti.trusted != nil {
		if err := ti.trusted.CheckClaims(claims, c.namespace, c.name); err != nil {
			return nil, ReasonClaimRuleFailed
		}
		return claims, ""
	}
	return claims, v.local.confirm(c, claims, token, review)
}

// parseToken verifies a token with an issuer's keys: signature under a pinned
// algorithm, iss, exp (required), iat (required, not ahead), nbf, each with the
// assertion leeway, every audience one of the issuer's, lifetime at most its maximum.
func parseToken(ti *tokenIssuer, token string, now time.Time) (jwt.MapClaims, Reason) {
	claims := jwt.MapClaims{}
	t, err := jwt.NewParser(
		jwt.WithValidMethods(AssertionAlgorithms),
		jwt.WithIssuer(ti.url),
		jwt.WithAudience(ti.audiences...),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(assertionLeeway),
		// One spelling per token: a signature's unused base64 bits must be zero, so a
		// token cannot be presented (and reviewed, remembered) as sixteen others.
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	).ParseWithClaims(token, claims, ti.keyfunc)
	if err != nil {
		return nil, tokenReason(t, err)
	}
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	aud, _ := claims.GetAudience()
	switch {
	case iat == nil:
		return nil, ReasonAssertionMissingClaim
	case !onlyFor(aud, ti.audiences):
		// Only for this server: a token that is also good for the Kubernetes API (or
		// any other audience) would give its bearer more than a token request.
		return nil, ReasonAssertionAudience
	case exp.Sub(iat.Time) > ti.maxLifetime:
		// A token that lives long is a secret again.
		return nil, ReasonAssertionLifetime
	}
	return claims, ""
}

// tokenReason is assertionReason, and issuer_unavailable when the issuer's keys could
// not be obtained.
func tokenReason(t *jwt.Token, err error) Reason {
	if errors.Is(err, verifier.ErrKeysUnavailable) && !errors.Is(err, jwt.ErrTokenMalformed) {
		return ReasonIssuerUnavailable
	}
	return assertionReason(t, err)
}

// claimsMatch reports whether every claim a rule pins is a string of the token with
// that value.
func claimsMatch(claims jwt.MapClaims, want map[string]string) bool {
	for k, v := range want {
		if got, ok := claims[k].(string); !ok || got != v {
			return false
		}
	}
	return true
}

// confirm makes the checks of a local token that only the cluster can answer: issued
// for the ServiceAccount that exists now, and, when bound to a pod (a Secret, a node)
// and review is set, still valid for the API server. Last: the only check that may
// ask the API server.
func (a *serviceAccountAuthenticator) confirm(c *Client, claims jwt.MapClaims, token string, review bool) Reason {
	k := kubernetesClaimsOf(claims)
	uid, ok := a.state.ServiceAccountUID(c.namespace, c.serviceAccount)
	if !ok || k.ServiceAccount.UID == "" || types.UID(k.ServiceAccount.UID) != uid {
		return ReasonServiceAccountUIDMismatch
	}
	if !review || a.reviewer == nil || !k.bound() {
		return ""
	}
	exp, _ := claims.GetExpirationTime()
	valid, err := a.reviewer.Review(token, exp.Time)
	switch {
	case err != nil:
		return ReasonTokenReviewUnavailable
	case !valid:
		return ReasonBoundObjectInvalidated
	}
	return ""
}

// kubernetesClaimsOf reads the kubernetes.io claims of a ServiceAccount token.
func kubernetesClaimsOf(claims jwt.MapClaims) kubernetesClaims {
	var k kubernetesClaims
	if raw, ok := claims["kubernetes.io"]; ok {
		if b, err := json.Marshal(raw); err == nil {
			_ = json.Unmarshal(b, &k)
		}
	}
	return k
}

// maxAmbiguousClients bounds the clients a token without client_id is verified for
// when several match it: more than that, and the request must name its client.
const maxAmbiguousClients = 8

// resolveClient finds the client a grant's token authenticates when the request names
// none: the one whose rule matches the token's issuer, subject and claims (as the token
// states them), whose issuer admits its namespace. When several do, those the token
// really authenticates (verified with each one's issuer, the API server not asked)
// are kept; if still not one, the request must send client_id.
func (s *Server) resolveClient(req *tokenRequest, now time.Time) (string, *oauthError) {
	unverified := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(req.cred.assertion, unverified); err != nil {
		return "", grantFailed(ReasonAssertionMalformed)
	}
	iss, _ := unverified["iss"].(string)
	sub, _ := unverified["sub"].(string)
	var matches []*Client
	for _, c := range s.state.ClientsWithSubject(sub) {
		if !c.disabled && s.tokenRules.matches(c, iss, sub, unverified) {
			if matches = append(matches, c); len(matches) > maxAmbiguousClients {
				return "", clientIDRequired()
			}
		}
	}
	slices.SortFunc(matches, func(a, b *Client) int { return strings.Compare(a.clientID, b.clientID) })
	switch len(matches) {
	case 0:
		return "", grantFailed(ReasonNoMatchingClient)
	case 1:
		return matches[0].clientID, nil
	}
	// The token is verified once per issuer, whatever the number of clients.
	parsed := map[string]parsedToken{}
	var authenticated []*Client
	for _, c := range matches {
		cred := req.cred
		if s.tokenRules.verifyWith(c, &cred, now, false, parsed) == "" {
			authenticated = append(authenticated, c)
		}
	}
	switch len(authenticated) {
	case 0:
		// A token that authenticates none of them: refused as the first one's, a
		// failed authentication like any other (and counted as one).
		return matches[0].clientID, nil
	case 1:
		return authenticated[0].clientID, nil
	}
	return "", clientIDRequired()
}

func clientIDRequired() *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: errInvalidRequest,
		description: "the token matches the rules of several clients: send client_id", reason: ReasonClientIDRequired}
}

// matches reports whether one of c's rules matches a token by what the token states of
// itself (issuer, subject, claims), and its issuer lets c use the rule, its claim
// rules included: a client a tenant copied another namespace's rule into, which the
// issuer's rules keep to its own namespace, is no candidate (it could otherwise crowd
// the real client out of the candidates). Verification follows for the candidates.
func (v *ruleVerifier) matches(c *Client, iss, sub string, claims jwt.MapClaims) bool {
	for i := range c.rules {
		r := &c.rules[i]
		if r.subject != sub || !claimsMatch(claims, r.claims) {
			continue
		}
		ti, reason := v.issuerOf(r)
		if reason != "" || ti.url != iss || v.admitted(ti, c, r) != "" {
			continue
		}
		if ti.trusted == nil || ti.trusted.CheckClaims(claims, c.namespace, c.name) == nil {
			return true
		}
	}
	return false
}
