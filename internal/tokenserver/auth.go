package tokenserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"k8s.io/apimachinery/pkg/util/validation"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// Client authentication is one step of the token handler. Parsing extracts what the
// request presented (a credential) without knowing methods; the client's State entry
// names its method and holds its verification material; one authenticator per method
// decides. Adding a method means adding an authenticator and its material, not editing
// the handler. Every refusal is the same 401 invalid_client (authFailed); the Reason
// says why, to the audit trail and the metrics only.

// authenticator verifies a presented credential for one authentication method.
type authenticator interface {
	// authenticate returns "" when cred proves that the request comes from the client
	// c, else why it does not. stored is the material of the Secret that c should
	// control (nil when it has none).
	authenticate(c *Client, stored *Credentials, cred *credential, now time.Time) Reason
}

// AuthMethodsSupported are the token_endpoint_auth_methods_supported of the metadata
// (RFC 8414): the client secret in the body or by Basic, an assertion signed with the
// client's own key (private_key_jwt, RFC 7523), a Kubernetes ServiceAccount token and a
// JWT of a trusted external issuer (OAuthTrustedIssuer) as a JWT-bearer client
// assertion. The last two have no registered name; the names say what they are.
var AuthMethodsSupported = []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "kubernetes_service_account_token", "federated_jwt"}

// AssertionAlgorithms is the one list of JWS algorithms accepted in client
// assertions; "none" and HMAC are never among them.
var AssertionAlgorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}

// assertionLeeway is the clock skew tolerated on the times of a client assertion.
const assertionLeeway = 30 * time.Second

// authenticate finds the client a client_id names and lets the authenticator of its
// method judge the credential. x learns the method of a client that exists, for its
// audit record.
func (s *Server) authenticate(req *tokenRequest, x *exchange) (*Client, *oauthError) {
	now := s.clock.Now()
	// A refused client assertion or secret is 401 invalid_client; a refused grant's
	// token, 400 invalid_grant.
	refuse := authFailed
	if req.cred.kind == credGrant {
		refuse = grantFailed
		if req.clientID == "" {
			id, oerr := s.resolveClient(req, now)
			if oerr != nil {
				return nil, oerr
			}
			req.clientID, x.clientID = id, id
		}
	}
	var c *Client
	var stored *Credentials
	if ns, name, ok := possibleClientID(req.clientID); ok {
		c, stored = s.state.Client(ns, name)
	}
	if c == nil {
		// The same work as a wrong secret, so timing does not tell the two apart.
		s.authenticators[oauthv1alpha1.AuthClientSecret].authenticate(nil, nil, &req.cred, now)
		return nil, refuse(ReasonUnknownClient)
	}
	x.method = c.method
	reason := ReasonMethodMismatch // a method this server does not know
	if a := s.authenticators[c.method]; a != nil {
		reason = a.authenticate(c, stored, &req.cred, now)
	}
	switch {
	case reason == "" && c.disabled:
		return nil, refuse(ReasonDisabled)
	case reason == ReasonTokenReviewUnavailable:
		// The token may be good; the API server cannot say now.
		return nil, &oauthError{status: http.StatusServiceUnavailable, code: errTemporarilyUnavail,
			description: "the API server could not confirm the ServiceAccount token; retry later", retryAfter: time.Second, reason: reason}
	case reason != "":
		return nil, refuse(reason)
	}
	return c, nil
}

// replayFullRetryAfter is the Retry-After of a refusal for a full replay cache: ids
// expire within privateKeyJWT.maxAssertionLifetime, most much sooner.
const replayFullRetryAfter = 5 * time.Second

// recordAssertion records the id of the request's client assertion, if it has one to
// record, once the request is granted a token.
func (s *Server) recordAssertion(cred *credential) *oauthError {
	if cred.once == nil {
		return nil
	}
	switch reason := cred.once.record(s.clock.Now()); reason {
	case "":
		return nil
	case ReasonReplayCacheFull:
		// The assertion verified, but this replica has no room to remember it: the
		// client is not at fault, and the answer costs its address nothing.
		return &oauthError{status: http.StatusServiceUnavailable, code: errTemporarilyUnavail,
			description: "too many assertions of this client are in use; retry later", retryAfter: replayFullRetryAfter, reason: reason}
	default:
		return authFailed(reason) // replayed by a request that got here first
	}
}

// maxClientIDLength is the longest client_id that can name an OAuthClient: a namespace
// (a DNS label, 63 bytes), a dot, a name (a DNS subdomain, 253 bytes).
const maxClientIDLength = validation.DNS1123LabelMaxLength + 1 + validation.DNS1123SubdomainMaxLength

// possibleClientID splits a client_id that can name an OAuthClient; ok is false for
// one that cannot exist (too long, no dot, a namespace that is not a DNS label or a
// name that is not a DNS subdomain). Such an id is refused like any unknown client,
// without a lookup, and nothing keeps it.
func possibleClientID(id string) (namespace, name string, ok bool) {
	if len(id) > maxClientIDLength {
		return "", "", false
	}
	namespace, name, ok = oauthv1alpha1.ParseClientID(id)
	if !ok || len(validation.IsDNS1123Label(namespace)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return "", "", false
	}
	return namespace, name, true
}

// secretAuthenticator verifies a client secret against the SHA-256 digests of the
// current and, during a rotation's grace period, the previous secret, in constant time.
type secretAuthenticator struct{}

func (secretAuthenticator) authenticate(c *Client, stored *Credentials, cred *credential, now time.Time) Reason {
	given := sha256.Sum256([]byte(cred.secret))
	var current, previous [sha256.Size]byte
	usable := c != nil && stored != nil && stored.ok && stored.owner == c.uid
	hasPrevious, inGrace := false, false
	if usable {
		current = stored.digest
		if stored.hasPrevious {
			previous, hasPrevious, inGrace = stored.previous, true, previousValid(c, stored, now)
		}
	}
	// Both comparisons always run, whichever matches, and even when nothing was found:
	// timing tells nothing.
	matchCurrent := subtle.ConstantTimeCompare(given[:], current[:]) == 1
	matchPrevious := subtle.ConstantTimeCompare(given[:], previous[:]) == 1 && hasPrevious
	switch {
	case c == nil:
		return ReasonUnknownClient
	case cred.kind != credSecret:
		return ReasonMethodMismatch
	case !usable:
		return ReasonCredentialsUnavailable
	case matchCurrent, matchPrevious && inGrace:
		return ""
	case matchPrevious:
		return ReasonPreviousSecretExpired
	}
	return ReasonWrongSecret
}

// ServiceAccountIssuer is the cluster's ServiceAccount token issuer, as
// internal/workloadidentity discovers it.
type ServiceAccountIssuer interface {
	// Issuer is the `iss` of ServiceAccount tokens; "" until known.
	Issuer() string
	// Keyfunc returns the key that verifies a token, for golang-jwt's parser.
	Keyfunc(*jwt.Token) (any, error)
}

// BoundTokenReviewer confirms with the API server (TokenReview) that a ServiceAccount
// token bound to an object (a pod, a Secret, a node) is still valid: the API server
// invalidates it when the object is deleted. internal/workloadidentity's Reviewer.
type BoundTokenReviewer interface {
	// Review reports whether token, which expires at exp, is still valid; an error
	// means it could not be confirmed (the API server does not answer, and the token
	// was never reviewed before).
	Review(token string, exp time.Time) (bool, error)
}

// serviceAccountAuthenticator authenticates ServiceAccountToken clients: their one
// token rule is against the cluster's ServiceAccount issuer, for their ServiceAccount's
// subject, verified like every token rule (federated.go). It holds the local issuer:
// its keys, what confirms bound tokens, the ServiceAccounts' UIDs and the lifetime cap.
type serviceAccountAuthenticator struct {
	issuer ServiceAccountIssuer
	// reviewer confirms bound tokens; none are confirmed when nil.
	reviewer BoundTokenReviewer
	// state knows the UID of the ServiceAccount that exists now.
	state State
	// audiences are the values of which `aud` must hold one: this server's issuer URL
	// and its token endpoint URL.
	audiences   []string
	maxLifetime time.Duration
	// rules is the one verification path of token rules.
	rules *ruleVerifier
}

func (a *serviceAccountAuthenticator) authenticate(c *Client, _ *Credentials, cred *credential, now time.Time) Reason {
	if !cred.isToken() || c.subject == "" {
		return ReasonMethodMismatch
	}
	return a.rules.verify(c, cred, now, true)
}

// onlyFor reports whether every value of aud is one of ours: the one audience rule of
// client assertions (golang-jwt's WithAudience checks that one of them is).
func onlyFor(aud jwt.ClaimStrings, ours []string) bool {
	for _, v := range aud {
		if !slices.Contains(ours, v) {
			return false
		}
	}
	return len(aud) > 0
}

// assertionReason says why golang-jwt's parser refused an assertion; t is what it
// parsed of it, if anything.
func assertionReason(t *jwt.Token, err error) Reason {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonAssertionMalformed
	case t != nil && !slices.Contains(AssertionAlgorithms, headerString(t, "alg")):
		return ReasonAssertionAlgorithm
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// The key function found no key for the token.
		return ReasonAssertionUnknownKey
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ReasonAssertionSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ReasonAssertionMissingClaim
	case errors.Is(err, jwt.ErrTokenExpired):
		return ReasonAssertionExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ReasonAssertionNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ReasonAssertionIssuer
	case errors.Is(err, jwt.ErrTokenInvalidSubject):
		return ReasonAssertionSubject
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ReasonAssertionAudience
	}
	return ReasonAssertionMalformed
}

func headerString(t *jwt.Token, name string) string {
	v, _ := t.Header[name].(string)
	return v
}

// kubernetesClaims are the kubernetes.io claims of a ServiceAccount token: the
// ServiceAccount it was issued for, and the object it is bound to, if any.
type kubernetesClaims struct {
	ServiceAccount struct {
		UID string `json:"uid"`
	} `json:"serviceaccount"`
	Pod    *boundObject `json:"pod,omitempty"`
	Secret *boundObject `json:"secret,omitempty"`
	Node   *boundObject `json:"node,omitempty"`
}

type boundObject struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// bound reports whether the token is bound to an object whose deletion invalidates it.
func (k kubernetesClaims) bound() bool { return k.Pod != nil || k.Secret != nil || k.Node != nil }

// privateKeyJWTAuthenticator verifies an RFC 7523 assertion signed by the client with a
// private key whose public half is one of its keys: iss = sub = client_id, aud this
// server, exp present and at most maxLifetime ahead, a jti not seen before on this
// replica.
type privateKeyJWTAuthenticator struct {
	// audiences are the values of which `aud` must hold one: this server's issuer URL
	// and its token endpoint URL.
	audiences   []string
	maxLifetime time.Duration
	replay      *replayCache
}

// maxJTILength bounds the jti accepted; longer ids are refused, not hashed.
const maxJTILength = 256

func (a *privateKeyJWTAuthenticator) authenticate(c *Client, stored *Credentials, cred *credential, now time.Time) Reason {
	if cred.kind != credAssertion {
		return ReasonMethodMismatch
	}
	keys := a.keysOf(c, stored, now)
	if len(keys) == 0 {
		return ReasonCredentialsUnavailable
	}
	claims := &jwt.RegisteredClaims{}
	t, err := jwt.NewParser(
		jwt.WithValidMethods(AssertionAlgorithms),
		jwt.WithIssuer(c.clientID),
		jwt.WithSubject(c.clientID),
		jwt.WithAudience(a.audiences...),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(assertionLeeway),
		// One spelling per token: a signature's unused base64 bits must be zero, so a
		// token cannot be presented (and reviewed, remembered) as sixteen others.
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	).ParseWithClaims(cred.assertion, claims, func(t *jwt.Token) (any, error) {
		return selectKey(keys, t)
	})
	if err != nil {
		return assertionReason(t, err)
	}
	exp := claims.ExpiresAt.Time
	switch {
	case !onlyFor(claims.Audience, a.audiences):
		// Made for this server alone: an assertion a client made for another party as
		// well must not be usable here.
		return ReasonAssertionAudience
	case exp.After(now.Add(a.maxLifetime + assertionLeeway)),
		claims.IssuedAt != nil && exp.Sub(claims.IssuedAt.Time) > a.maxLifetime:
		return ReasonAssertionLifetime
	case claims.ID == "" || len(claims.ID) > maxJTILength:
		return ReasonAssertionMissingClaim
	}
	// Only a verified assertion is looked up; it is recorded once the request is
	// granted a token (Server.token), so refused requests cost no room.
	key := idDigest(c.clientID, claims.ID)
	if a.replay.used(key, now) {
		return ReasonAssertionReplayed
	}
	cred.once = &pendingUse{cache: a.replay, namespace: c.namespace, client: c.clientID, key: key, until: exp.Add(assertionLeeway)}
	return ""
}

// keysOf are the keys that verify c's assertions now: those its spec names, or its
// generated key pair's public key and, during a rotation's grace period, the previous
// one, from the Secret the client controls.
func (a *privateKeyJWTAuthenticator) keysOf(c *Client, stored *Credentials, now time.Time) []clientKey {
	if !c.generatesKey {
		return c.keys
	}
	if stored == nil || stored.owner != c.uid {
		return nil
	}
	var keys []clientKey
	if stored.key != nil {
		keys = append(keys, *stored.key)
	}
	if stored.previousKey != nil && previousValid(c, stored, now) {
		keys = append(keys, *stored.previousKey)
	}
	return keys
}

// selectKey picks the key the assertion's kid names, or, without a kid, offers every
// key (golang-jwt tries each).
func selectKey(keys []clientKey, t *jwt.Token) (any, error) {
	if kid, ok := t.Header["kid"].(string); ok {
		for _, k := range keys {
			if k.kid == kid {
				return k.pub, nil
			}
		}
		return nil, errUnknownKey
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.pub)
	}
	return set, nil
}

var errUnknownKey = errors.New("no key of the client has that kid")

// assertionSubject is the unverified `sub` of a client assertion: the client it claims
// to come from, used to find the client when the request names none. It decides
// nothing: the assertion is verified against that client's keys.
func assertionSubject(assertion string) string {
	claims := &jwt.RegisteredClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, claims); err != nil {
		return ""
	}
	return claims.Subject
}
