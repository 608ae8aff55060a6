package tokenserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

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
	audience string
	scopes   []string
	ttl      time.Duration
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, &oauthError{http.StatusMethodNotAllowed, errInvalidRequest, "the token endpoint accepts only POST"})
		return
	}
	req, oerr := parseTokenRequest(w, r, s.cfg.TokenServer.MaxBodyBytes)
	if oerr != nil {
		writeError(w, oerr)
		return
	}
	g, oerr := s.authorize(r.Context(), req)
	if oerr != nil {
		writeError(w, oerr)
		return
	}
	resp, oerr := s.issue(g, req.scope)
	if oerr != nil {
		writeError(w, oerr)
		return
	}
	body, err := json.Marshal(resp)
	if err != nil {
		writeError(w, &oauthError{http.StatusInternalServerError, errServerError, "could not encode the response"})
		return
	}
	h := w.Header()
	noStore(h)
	h.Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// authorize authenticates the client and decides audience, scopes and lifetime, all
// from the cache.
func (s *Server) authorize(ctx context.Context, req *tokenRequest) (*grant, *oauthError) {
	oc, oerr := s.authenticate(ctx, req.clientID, req.clientSecret)
	if oerr != nil {
		return nil, oerr
	}
	api, oerr := s.resolveAPI(ctx, oc, req)
	if oerr != nil {
		return nil, oerr
	}
	scopes, oerr := grantScopes(oc, api, req.scope)
	if oerr != nil {
		return nil, oerr
	}
	return &grant{
		clientID: oc.ClientID(),
		audience: api.EffectiveAudience(),
		scopes:   scopes,
		ttl:      s.lifetime(oc, api),
	}, nil
}

// authenticate finds the OAuthClient a client_id names and checks the secret in the
// Secret that client controls. Unknown client, wrong secret and disabled client all
// give errClientAuth; secrets are compared in constant time.
func (s *Server) authenticate(ctx context.Context, clientID, secret string) (*oauthv1alpha1.OAuthClient, *oauthError) {
	var stored []byte
	oc := &oauthv1alpha1.OAuthClient{}
	found := false
	if ns, name, ok := oauthv1alpha1.ParseClientID(clientID); ok {
		err := s.reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, oc)
		switch {
		case err == nil:
			stored, found = s.storedSecret(ctx, oc)
		case !apierrors.IsNotFound(err):
			s.log.Error(err, "token request: read OAuthClient from cache", "clientID", clientID)
			return nil, &oauthError{http.StatusServiceUnavailable, errTemporarilyUnavail, "try again later"}
		}
	}
	// Compare even when nothing was found, so that timing tells nothing either.
	if !secretsEqual(stored, []byte(secret)) || !found || oc.Spec.Disabled || !oc.DeletionTimestamp.IsZero() {
		return nil, errClientAuth
	}
	return oc, nil
}

// storedSecret returns the client_secret of the Secret that oc controls. A Secret the
// client does not control (however it is labelled) yields nothing.
func (s *Server) storedSecret(ctx context.Context, oc *oauthv1alpha1.OAuthClient) ([]byte, bool) {
	secret := &corev1.Secret{}
	if err := s.reader.Get(ctx, types.NamespacedName{Namespace: oc.Namespace, Name: oc.EffectiveSecretName()}, secret); err != nil {
		return nil, false
	}
	if !metav1.IsControlledBy(secret, oc) || secret.Labels[oauthv1alpha1.ManagedByLabel] != oauthv1alpha1.ManagedByValue {
		return nil, false
	}
	v := secret.Data[oauthv1alpha1.SecretKeyClientSecret]
	return v, len(v) > 0
}

// secretsEqual compares digests in constant time, so neither content nor length leaks.
func secretsEqual(stored, given []byte) bool {
	a := sha256.Sum256(stored)
	b := sha256.Sum256(given)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1 && len(stored) > 0
}

// resolveAPI picks the API the token is for: the requested audience or resource, or the
// client's only API. The API must be one of the client's, exist, and admit the
// client's namespace now.
func (s *Server) resolveAPI(ctx context.Context, oc *oauthv1alpha1.OAuthClient, req *tokenRequest) (*oauthv1alpha1.OAuthAPI, *oauthError) {
	want := req.audience
	if want == "" {
		want = req.resource
	}
	if want == "" && len(oc.Spec.Audiences) != 1 {
		return nil, badRequest(errInvalidRequest, "the client has several APIs: name one with the audience parameter")
	}
	var chosen *oauthv1alpha1.OAuthAPI
	for _, name := range oc.Spec.Audiences {
		api := &oauthv1alpha1.OAuthAPI{}
		if err := s.reader.Get(ctx, types.NamespacedName{Name: name}, api); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			s.log.Error(err, "token request: read OAuthAPI from cache", "oauthapi", name)
			return nil, &oauthError{http.StatusServiceUnavailable, errTemporarilyUnavail, "try again later"}
		}
		if want == "" || api.EffectiveAudience() == want {
			chosen = api
			break
		}
	}
	if chosen == nil {
		return nil, badRequest(errInvalidTarget, "the requested audience is not one this client may obtain tokens for")
	}
	if chosen.Spec.AllowedNamespaces.From == oauthv1alpha1.NamespacesFromAll {
		return chosen, nil
	}
	// Admission reads only what administrators write: the OAuthAPI and Namespace labels.
	ns := &corev1.Namespace{}
	if err := s.reader.Get(ctx, types.NamespacedName{Name: oc.Namespace}, ns); err != nil {
		return nil, badRequest(errInvalidTarget, "the requested audience does not admit this client")
	}
	if ok, err := chosen.Admits(ns); err != nil || !ok {
		return nil, badRequest(errInvalidTarget, "the requested audience does not admit this client")
	}
	return chosen, nil
}

// grantScopes checks the requested scopes against the client and the API; with none
// requested, the client gets every scope both allow.
func grantScopes(oc *oauthv1alpha1.OAuthClient, api *oauthv1alpha1.OAuthAPI, requested string) ([]string, *oauthError) {
	if requested == "" {
		var all []string
		for _, sc := range oc.Spec.Scopes {
			if api.HasScope(string(sc)) {
				all = append(all, string(sc))
			}
		}
		return all, nil
	}
	scopes := strings.Fields(requested)
	for _, sc := range scopes {
		if !oc.HasScope(sc) || !api.HasScope(sc) {
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
func (s *Server) lifetime(oc *oauthv1alpha1.OAuthClient, api *oauthv1alpha1.OAuthAPI) time.Duration {
	ttl := s.cfg.Tokens.DefaultTTL.Duration
	if api.Spec.AccessTokenTTL != nil {
		ttl = api.Spec.AccessTokenTTL.Duration
	}
	if c := oc.Spec.AccessTokenTTL; c != nil && c.Duration < ttl {
		ttl = c.Duration
	}
	ttl = min(ttl, s.cfg.Tokens.MaxTTL.Duration)
	return max(ttl.Truncate(time.Second), time.Second)
}

// issue signs the access token.
func (s *Server) issue(g *grant, requestedScope string) (*tokenResponse, *oauthError) {
	d := s.published()
	if d == nil {
		return nil, &oauthError{http.StatusServiceUnavailable, errTemporarilyUnavail, "signing keys not loaded yet"}
	}
	jti, err := randomID()
	if err != nil {
		return nil, &oauthError{http.StatusInternalServerError, errServerError, "could not issue a token"}
	}
	now := s.now().Unix()
	ttl := int64(g.ttl / time.Second)
	scope := strings.Join(g.scopes, " ")
	c := claims{
		Issuer: s.cfg.Issuer, Subject: g.clientID, Audience: g.audience,
		IssuedAt: now, NotBefore: now, ExpiresAt: now + ttl,
		ID: jti, ClientID: g.clientID, Scope: scope,
	}
	payload, err := jsonMarshalClaims(&c)
	if err != nil {
		return nil, &oauthError{http.StatusInternalServerError, errServerError, "could not issue a token"}
	}
	token, err := d.keys.Signer.Sign(payload)
	if err != nil {
		s.log.Error(err, "sign access token", "kid", d.keys.Signer.KeyID())
		return nil, &oauthError{http.StatusInternalServerError, errServerError, "could not issue a token"}
	}
	resp := &tokenResponse{AccessToken: token, TokenType: "Bearer", ExpiresIn: ttl}
	if scope != requestedScope {
		resp.Scope = scope
	}
	return resp, nil
}

func jsonMarshalClaims(c *claims) ([]byte, error) { return json.Marshal(c) }

// randomID returns 128 random bits, base64url: the jti.
func randomID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
