package tokenserver

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// claims is the JWT claims set of an access token (RFC 9068 §2.2).
type claims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	ExpiresAt int64  `json:"exp"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	ID        string `json:"jti"`
	ClientID  string `json:"client_id"`
	Scope     string `json:"scope,omitempty"`
	// Confirmation binds a DPoP-bound token to its key (RFC 9449 §6.1).
	Confirmation *confirmation `json:"cnf,omitempty"`
}

// confirmation is the cnf claim of a sender-constrained token (RFC 7800).
type confirmation struct {
	// JKT is the RFC 7638 thumbprint of the DPoP proof key.
	JKT string `json:"jkt"`
}

// tokenResponse is the successful answer (RFC 6749 §5.1; RFC 8693 §2.2.1 adds
// issued_token_type to a token exchange's).
type tokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
}

// grant is what an authenticated request is given.
type grant struct {
	client   *Client
	clientID string
	method   oauthv1alpha1.AuthenticationMethod
	api      *API
	scopes   []string
	ttl      time.Duration
	// jkt is the thumbprint of the DPoP proof key the token is bound to; "" for a
	// bearer token.
	jkt string
	// notAfter caps the token's exp (exp of a presented token plus ttl); zero when
	// nothing does.
	notAfter time.Time
	// issuedTokenType is the issued_token_type of a token exchange's answer.
	issuedTokenType string
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	x := exchange{credential: "none"}
	resp, api, oerr := s.token(w, r, &x)
	s.audit.record(&x, oerr, s.clock.Now())
	if oerr != nil {
		s.metrics.refused(start, oerr)
		writeError(w, oerr)
		return
	}
	body := appendTokenResponse(make([]byte, 0, len(resp.AccessToken)+96), resp)
	h := w.Header()
	noStore(h)
	h["Content-Type"] = valueJSON
	_, _ = w.Write(body)
	s.metrics.issued(start, api)
}

// token answers a token request: a token and its audience, or an OAuth error.
// x receives what the audit record of the request says.
func (s *Server) token(w http.ResponseWriter, r *http.Request, x *exchange) (*tokenResponse, *API, *oauthError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, nil, &oauthError{status: http.StatusMethodNotAllowed, code: errInvalidRequest,
			description: "the token endpoint accepts only POST", reason: ReasonMalformedRequest}
	}
	req, oerr := parseTokenRequest(w, r, s.cfg.TokenServer.MaxBodyBytes)
	if oerr != nil {
		return nil, nil, oerr
	}
	if req.clientID == "" && req.cred.kind == credAssertion {
		// private_key_jwt may omit client_id: the assertion's sub names the client.
		req.clientID = assertionSubject(req.cred.assertion)
	}
	addr := s.clientAddr(r)
	x.clientID, x.credential, x.source = req.clientID, req.cred.kind.String(), addr.String()
	if oerr := s.throttled(addr); oerr != nil {
		return nil, nil, oerr
	}
	g, oerr := s.authorize(req, x)
	if oerr != nil && (oerr.status == http.StatusUnauthorized || oerr.code == errInvalidGrant) {
		// Every failed authentication counts against the address it came from.
		s.failed(addr)
	}
	if oerr != nil {
		return nil, nil, oerr
	}
	x.method, x.audience = g.method, g.api.audience
	if g.jkt, oerr = s.bindDPoP(req.dpop, g); oerr != nil {
		return nil, nil, oerr
	}
	if oerr := s.recordAssertion(&req.cred); oerr != nil {
		if oerr.status == http.StatusUnauthorized {
			s.failed(addr)
		}
		return nil, nil, oerr
	}
	resp, oerr := s.issue(g, req.scope, x)
	return resp, g.api, oerr
}

// authorize authenticates the client and decides audience, scopes and lifetime, from
// the State alone.
func (s *Server) authorize(req *tokenRequest, x *exchange) (*grant, *oauthError) {
	c, oerr := s.authenticate(req, x)
	if oerr != nil {
		return nil, oerr
	}
	if c.perMinute > 0 {
		if wait, ok := s.requests.take(c.clientID, c.perMinute, c.burst, s.clock.Now()); !ok {
			return nil, &oauthError{status: http.StatusTooManyRequests, code: errTemporarilyUnavail,
				description: "this client's request rate limit is exceeded; retry later", retryAfter: max(wait, time.Second),
				reason: ReasonClientRateLimited}
		}
	}
	api, oerr := s.resolveAPI(c, req)
	if oerr != nil {
		return nil, oerr
	}
	scopes, oerr := grantScopes(c, api, req.scope)
	if oerr != nil {
		return nil, oerr
	}
	g := &grant{client: c, clientID: c.clientID, method: c.method, api: api, scopes: scopes, ttl: s.lifetime(c, api)}
	if req.grantType == GrantTokenExchange {
		g.issuedTokenType = TokenTypeAccessToken
	}
	if exp := req.cred.expiresAt; !exp.IsZero() {
		// A token presented again until it expires (kubelet and CI jobs do) never
		// yields an access token that outlives it by more than the access token's own
		// lifetime, however much expiry leeway it was accepted with.
		g.notAfter = exp.Add(g.ttl)
	}
	return g, nil
}

// resolveAPI picks the API the token is for: the requested audience or resource, or the
// client's only API. The API must be one of the client's, exist, and admit the
// client's namespace now.
func (s *Server) resolveAPI(c *Client, req *tokenRequest) (*API, *oauthError) {
	want := req.audience
	if want == "" {
		want = req.resource
	}
	if want == "" && len(c.audiences) != 1 {
		return nil, badRequest(ReasonAudienceRequired, errInvalidRequest, "the client has several APIs: name one with the audience parameter")
	}
	for _, name := range c.audiences {
		api := s.state.API(name)
		if api == nil || (want != "" && api.audience != want) {
			continue
		}
		if !s.state.Admits(api, c.namespace) {
			return nil, badRequest(ReasonNamespaceNotAdmitted, errInvalidTarget, "the requested audience does not admit this client")
		}
		if len(api.conflicts) > 0 {
			return nil, badRequest(ReasonAudienceConflict, errInvalidTarget,
				"the requested audience is claimed by more than one OAuthAPI; no tokens are issued for it until a cluster administrator resolves that")
		}
		return api, nil
	}
	return nil, badRequest(ReasonAudienceNotGranted, errInvalidTarget, "the requested audience is not one this client may obtain tokens for")
}

// grantScopes checks the requested scopes against the client and the API; with none
// requested, the client gets every scope both allow.
func grantScopes(c *Client, api *API, requested string) ([]string, *oauthError) {
	if requested == "" {
		var all []string
		for _, sc := range c.scopeList {
			if api.scopes[sc] {
				all = append(all, sc)
			}
		}
		return all, nil
	}
	scopes := strings.Fields(requested)
	for _, sc := range scopes {
		if !c.hasScope(sc) || !api.scopes[sc] {
			return nil, badRequest(ReasonScopeNotAllowed, errInvalidScope, "a requested scope is not allowed for this client and audience")
		}
	}
	return dedupe(scopes), nil
}

func dedupe(s []string) []string {
	out := s[:0]
	seen := make(map[string]bool, len(s))
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// lifetime is the server default, overridden by the API, shortened by the client,
// capped by the server maximum; whole seconds.
func (s *Server) lifetime(c *Client, api *API) time.Duration {
	ttl := s.cfg.Tokens.DefaultTTL.Duration
	if api.ttl > 0 {
		ttl = api.ttl
	}
	if c.ttl > 0 && c.ttl < ttl {
		ttl = c.ttl
	}
	ttl = min(ttl, s.cfg.Tokens.MaxTTL.Duration)
	return max(ttl.Truncate(time.Second), time.Second)
}

// issue signs the access token.
func (s *Server) issue(g *grant, requestedScope string, x *exchange) (*tokenResponse, *oauthError) {
	d := s.published()
	if d == nil {
		return nil, &oauthError{status: http.StatusServiceUnavailable, code: errTemporarilyUnavail,
			description: "signing keys not loaded yet", reason: ReasonSigningKeyUnavailable}
	}
	jti := randomID()
	now := s.clock.Now().Unix()
	ttl := int64(g.ttl / time.Second)
	if !g.notAfter.IsZero() {
		ttl = max(min(ttl, g.notAfter.Unix()-now), 1)
	}
	scope := strings.Join(g.scopes, " ")
	c := claims{
		Issuer: s.cfg.Issuer, Subject: g.clientID, Audience: g.api.audience,
		IssuedAt: now, NotBefore: now, ExpiresAt: now + ttl,
		ID: jti, ClientID: g.clientID, Scope: scope,
	}
	tokenType := "Bearer"
	if g.jkt != "" {
		c.Confirmation, tokenType = &confirmation{JKT: g.jkt}, "DPoP"
	}
	token, err := s.sign(d.keys.Signer, appendClaims(make([]byte, 0, 384), &c))
	if err != nil {
		s.log.Error(err, "sign access token", "kid", d.keys.Signer.KeyID())
		return nil, &oauthError{status: http.StatusInternalServerError, code: errServerError,
			description: "could not issue a token", reason: ReasonSigningFailed}
	}
	x.jti, x.exp, x.scope, x.jkt = jti, c.ExpiresAt, scope, g.jkt
	resp := &tokenResponse{AccessToken: token, TokenType: tokenType, ExpiresIn: ttl, IssuedTokenType: g.issuedTokenType}
	if scope != requestedScope {
		resp.Scope = scope
	}
	return resp, nil
}

// randomID returns 128 random bits, base64url: the jti. (crypto/rand.Read never fails.)
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
