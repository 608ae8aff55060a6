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
}

// tokenResponse is the successful answer (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
}

// grant is what an authenticated request is given.
type grant struct {
	clientID string
	method   oauthv1alpha1.AuthenticationMethod
	api      *apiEntry
	scopes   []string
	ttl      time.Duration
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	x := exchange{credential: "none"}
	resp, api, oerr := s.token(w, r, &x)
	s.audit.record(&x, oerr, s.now())
	if oerr != nil {
		observe(start, oerr.code, nil)
		writeError(w, oerr)
		return
	}
	body := appendTokenResponse(make([]byte, 0, len(resp.AccessToken)+96), resp)
	h := w.Header()
	noStore(h)
	h["Content-Type"] = valueJSON
	_, _ = w.Write(body)
	observe(start, "ok", api)
}

// token answers a token request: a token and its audience, or an OAuth error.
// x receives what the audit record of the request says.
func (s *Server) token(w http.ResponseWriter, r *http.Request, x *exchange) (*tokenResponse, *apiEntry, *oauthError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, nil, &oauthError{http.StatusMethodNotAllowed, errInvalidRequest, "the token endpoint accepts only POST", 0}
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
	x.clientID, x.credential, x.source = req.clientID, req.cred.kind.String(), addr
	if oerr := s.throttled(addr); oerr != nil {
		return nil, nil, oerr
	}
	g, oerr := s.authorize(req, x)
	if oerr == errClientAuth {
		s.failed(addr)
	}
	if oerr != nil {
		return nil, nil, oerr
	}
	x.method, x.audience = g.method, g.api.audience
	resp, oerr := s.issue(g, req.scope, x)
	return resp, g.api, oerr
}

// authorize authenticates the client and decides audience, scopes and lifetime, from
// the registry alone.
func (s *Server) authorize(req *tokenRequest, x *exchange) (*grant, *oauthError) {
	oc, oerr := s.authenticate(req, x)
	if oerr != nil {
		return nil, oerr
	}
	if oc.perMinute > 0 {
		if wait, ok := s.requests.take(oc.clientID, oc.perMinute, oc.burst, s.now()); !ok {
			return nil, &oauthError{http.StatusTooManyRequests, errTemporarilyUnavail,
				"this client's request rate limit is exceeded; retry later", max(wait, time.Second)}
		}
	}
	api, oerr := s.resolveAPI(oc, req)
	if oerr != nil {
		return nil, oerr
	}
	scopes, oerr := grantScopes(oc, api, req.scope)
	if oerr != nil {
		return nil, oerr
	}
	return &grant{clientID: oc.clientID, method: oc.method, api: api, scopes: scopes, ttl: s.lifetime(oc, api)}, nil
}

// resolveAPI picks the API the token is for: the requested audience or resource, or the
// client's only API. The API must be one of the client's, exist, and admit the
// client's namespace now.
func (s *Server) resolveAPI(oc *clientEntry, req *tokenRequest) (*apiEntry, *oauthError) {
	want := req.audience
	if want == "" {
		want = req.resource
	}
	if want == "" && len(oc.audiences) != 1 {
		return nil, badRequest(errInvalidRequest, "the client has several APIs: name one with the audience parameter")
	}
	for _, name := range oc.audiences {
		api, admitted := s.registry.api(name, oc.namespace)
		if api == nil || (want != "" && api.audience != want) {
			continue
		}
		// Admission reads only what administrators write: the OAuthAPI and the
		// Namespace's labels.
		if !admitted {
			return nil, badRequest(errInvalidTarget, "the requested audience does not admit this client")
		}
		return api, nil
	}
	return nil, badRequest(errInvalidTarget, "the requested audience is not one this client may obtain tokens for")
}

// grantScopes checks the requested scopes against the client and the API; with none
// requested, the client gets every scope both allow.
func grantScopes(oc *clientEntry, api *apiEntry, requested string) ([]string, *oauthError) {
	if requested == "" {
		var all []string
		for _, sc := range oc.scopeList {
			if api.scopes[sc] {
				all = append(all, sc)
			}
		}
		return all, nil
	}
	scopes := strings.Fields(requested)
	for _, sc := range scopes {
		if !oc.scopes[sc] || !api.scopes[sc] {
			return nil, badRequest(errInvalidScope, "a requested scope is not allowed for this client and audience")
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
func (s *Server) lifetime(oc *clientEntry, api *apiEntry) time.Duration {
	ttl := s.cfg.Tokens.DefaultTTL.Duration
	if api.ttl > 0 {
		ttl = api.ttl
	}
	if oc.ttl > 0 && oc.ttl < ttl {
		ttl = oc.ttl
	}
	ttl = min(ttl, s.cfg.Tokens.MaxTTL.Duration)
	return max(ttl.Truncate(time.Second), time.Second)
}

// issue signs the access token.
func (s *Server) issue(g *grant, requestedScope string, x *exchange) (*tokenResponse, *oauthError) {
	d := s.published()
	if d == nil {
		return nil, &oauthError{http.StatusServiceUnavailable, errTemporarilyUnavail, "signing keys not loaded yet", 0}
	}
	jti, err := randomID()
	if err != nil {
		return nil, &oauthError{http.StatusInternalServerError, errServerError, "could not issue a token", 0}
	}
	now := s.now().Unix()
	ttl := int64(g.ttl / time.Second)
	scope := strings.Join(g.scopes, " ")
	c := claims{
		Issuer: s.cfg.Issuer, Subject: g.clientID, Audience: g.api.audience,
		IssuedAt: now, NotBefore: now, ExpiresAt: now + ttl,
		ID: jti, ClientID: g.clientID, Scope: scope,
	}
	token, err := d.keys.Signer.Sign(appendClaims(make([]byte, 0, 384), &c))
	if err != nil {
		s.log.Error(err, "sign access token", "kid", d.keys.Signer.KeyID())
		return nil, &oauthError{http.StatusInternalServerError, errServerError, "could not issue a token", 0}
	}
	x.jti, x.exp, x.scope = jti, c.ExpiresAt, scope
	resp := &tokenResponse{AccessToken: token, TokenType: "Bearer", ExpiresIn: ttl}
	if scope != requestedScope {
		resp.Scope = scope
	}
	return resp, nil
}

// randomID returns 128 random bits, base64url: the jti.
func randomID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
