package client

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// method is how a client proves who it is at the token endpoint; each token request
// chooses it from the files it finds (see the package doc).
type method string

const (
	// methodClientSecret: client_secret from the Secret volume, sent in the body.
	methodClientSecret method = "ClientSecret"
	// methodPrivateKeyJWT: an RFC 7523 assertion signed with private_key from the
	// Secret volume (or the key of WithPrivateKey).
	methodPrivateKeyJWT method = "PrivateKeyJWT"
	// methodServiceAccountToken: the pod's projected ServiceAccount token, sent as
	// the client assertion.
	methodServiceAccountToken method = "ServiceAccountToken"
)

// DefaultServiceAccountTokenFile is where a ServiceAccountToken client reads its
// projected ServiceAccount token unless WithServiceAccountTokenFile says otherwise.
const DefaultServiceAccountTokenFile = "/var/run/secrets/oauth/token"

// DefaultExpiryDelta is the longest time before its expiry that a token is replaced;
// shorter for short-lived tokens (see WithExpiryDelta).
const DefaultExpiryDelta = 30 * time.Second

// retryDelay is the pause before the one retry that follows an invalid_client answer:
// the credentials in the files may be newer than what the token server has seen yet,
// or the reverse, for a moment.
const retryDelay = 200 * time.Millisecond

// defaultHTTPTimeout bounds a token request when neither WithHTTPClient nor the
// context names an HTTP client.
const defaultHTTPTimeout = 30 * time.Second

// ErrRedirectRefused is wrapped by the error of a token request whose token_url answered
// with a redirect to another origin (scheme, host and port): the credentials (client_id
// and secret or assertion) are sent to token_url's origin only, and no token from
// elsewhere is taken.
var ErrRedirectRefused = errors.New("redirect to another origin refused")

// An Option configures a TokenSource.
type Option func(*options)

type options struct {
	audience    string
	scopes      []string
	saTokenFile string
	key         crypto.Signer
	keyID       string
	httpClient  *http.Client
	now         func() time.Time
	expiryDelta time.Duration
	// dpop makes tokens DPoP-bound, with dpopKey or the process's key.
	dpop         bool
	dpopKey      crypto.Signer
	dpopKeyGiven bool
}

// WithAudience asks for tokens for this API (the OAuthAPI's audience). Required when
// the client may get tokens for several APIs; one TokenSource serves one audience.
func WithAudience(audience string) Option {
	return func(o *options) { o.audience = audience }
}

// WithScopes asks for tokens with these scopes. Without it the token carries every
// scope the client may have for the API.
func WithScopes(scopes ...string) Option {
	return func(o *options) { o.scopes = append([]string(nil), scopes...) }
}

// WithServiceAccountTokenFile is the projected ServiceAccount token file of a
// ServiceAccountToken client. Default: DefaultServiceAccountTokenFile.
func WithServiceAccountTokenFile(path string) Option {
	return func(o *options) { o.saTokenFile = path }
}

// WithPrivateKey signs private_key_jwt assertions with key instead of a private_key
// file: for an OAuthClient whose spec.authentication.publicKeys holds the public half.
// key is an *ecdsa.PrivateKey on P-256 (ES256), an *rsa.PrivateKey (RS256) or an
// ed25519.PrivateKey (EdDSA); keyID is the assertion's kid, "" for none (the server
// then tries each of the client's keys).
func WithPrivateKey(key crypto.Signer, keyID string) Option {
	return func(o *options) { o.key, o.keyID = key, keyID }
}

// WithHTTPClient sends token requests with hc. Default: the *http.Client the context
// given to New holds under oauth2.HTTPClient, else a client with a 30 s timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) { o.httpClient = hc }
}

// WithClock replaces time.Now: for the expiry of cached tokens and the iat and exp of
// assertions (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithExpiryDelta replaces a token this long before it expires. Default: 10 % of its
// lifetime, at most DefaultExpiryDelta (30 s), so a token of 1 h is replaced 30 s
// before it expires and one of 60 s after 54 s. A delta at least as long as the
// lifetime disables reuse: each Token call is a request.
func WithExpiryDelta(d time.Duration) Option {
	return func(o *options) { o.expiryDelta = d }
}

// TokenSource is an oauth2.TokenSource of access tokens for the client whose Secret
// volume is mounted at a directory. It reuses each token until shortly before it
// expires and is safe for concurrent use: callers that find no valid token wait for
// a single request.
type TokenSource struct {
	dir  string
	opts options
	ctx  context.Context

	mu sync.Mutex
	// tok is the cached token, valid until refreshAt (by opts.now); a zero refreshAt
	// means it does not expire (the server sent no expires_in).
	tok       *oauth2.Token
	refreshAt time.Time
	// pemKey and key are the last private_key file read and its parsed key, so an
	// unchanged file is not parsed again.
	pemKey []byte
	key    signingKey
	// userKey is the key of WithPrivateKey.
	userKey *signingKey
	// dpop makes the proofs of a DPoP-bound source (WithDPoP); nil otherwise.
	dpop *dpopProver
}

var _ oauth2.TokenSource = (*TokenSource)(nil)

// New returns a TokenSource for the client whose Secret volume is mounted at dir. It
// reads the files once to report a missing or unusable credential at once; token
// requests read them again, so a rotated secret or key, a refreshed ServiceAccount
// token or a changed method is used by the next request. Token requests use ctx (for
// cancellation, and its oauth2.HTTPClient if any), which must outlive the source.
func New(ctx context.Context, dir string, opts ...Option) (*TokenSource, error) {
	s := &TokenSource{dir: dir, ctx: ctx}
	for _, opt := range opts {
		opt(&s.opts)
	}
	if s.opts.now == nil {
		s.opts.now = time.Now
	}
	if s.opts.saTokenFile == "" {
		s.opts.saTokenFile = DefaultServiceAccountTokenFile
	}
	if s.opts.expiryDelta < 0 {
		return nil, fmt.Errorf("client: negative expiry delta %s", s.opts.expiryDelta)
	}
	for _, sc := range s.opts.scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n") {
			return nil, fmt.Errorf("client: scope %q: scopes are non-empty and contain no spaces", sc)
		}
	}
	if s.opts.key != nil {
		k, err := newSigningKey(s.opts.key)
		if err != nil {
			return nil, fmt.Errorf("client: WithPrivateKey: %w", err)
		}
		s.userKey = &k
	}
	hc := s.opts.httpClient
	if hc == nil {
		hc, _ = ctx.Value(oauth2.HTTPClient).(*http.Client)
	}
	if hc == nil {
		hc = &http.Client{Timeout: defaultHTTPTimeout}
	}
	hc = tokenRequestClient(hc)
	if s.opts.dpop {
		if s.opts.dpopKeyGiven && s.opts.dpopKey == nil {
			return nil, errors.New("client: WithDPoPKey: no key")
		}
		p, err := newDPoPProver(s.opts.dpopKey, s.opts.now)
		if err != nil {
			return nil, fmt.Errorf("client: WithDPoP: %w", err)
		}
		s.dpop = p
		base := hc.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		hc.Transport = dpopTokenTransport{prover: p, base: base}
	}
	s.ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	// Fail now on what would fail every request.
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.prepare(); err != nil {
		return nil, err
	}
	return s, nil
}

// Token returns the cached access token while it is valid, else requests a new one.
// After an invalid_client answer it reads the files again and retries once. An error
// from the token endpoint wraps an *oauth2.RetrieveError (errors.As): its ErrorCode is
// the RFC 6749 error, its Response carries Retry-After on 429. Errors never contain a
// secret.
func (s *TokenSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && (s.refreshAt.IsZero() || s.opts.now().Before(s.refreshAt)) {
		return s.tok, nil
	}
	tok, refreshAt, err := s.fetch()
	if err != nil {
		return nil, err
	}
	s.tok, s.refreshAt = tok, refreshAt
	return tok, nil
}

// fetch requests a token; on invalid_client it retries once with the files read again.
func (s *TokenSource) fetch() (*oauth2.Token, time.Time, error) {
	tok, refreshAt, err := s.request()
	var rerr *oauth2.RetrieveError
	if !errors.As(err, &rerr) || !invalidClient(rerr) {
		return tok, refreshAt, err
	}
	select {
	case <-time.After(retryDelay):
	case <-s.ctx.Done():
		return nil, time.Time{}, err
	}
	return s.request()
}

func invalidClient(e *oauth2.RetrieveError) bool {
	return e.ErrorCode == "invalid_client" || (e.ErrorCode == "" && e.Response != nil && e.Response.StatusCode == http.StatusUnauthorized)
}

// request is one token request with the credentials the files hold now.
type request struct {
	clientID, tokenURL string
	method             method
	clientSecret       string
	// assertion is the client_assertion: a private_key_jwt or a ServiceAccount token.
	assertion string
}

// prepare reads the files and builds the credential of the next request.
func (s *TokenSource) prepare() (request, error) {
	c, err := readCredentials(s.dir)
	if err != nil {
		return request{}, fmt.Errorf("client: read the client's Secret volume: %w", err)
	}
	r := request{clientID: c.clientID, tokenURL: c.tokenURL}
	if u, err := url.Parse(c.tokenURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return request{}, fmt.Errorf("client: %s is not an http(s) URL", filepath.Join(s.dir, fileTokenURL))
	}
	switch {
	case s.userKey != nil:
		r.method = methodPrivateKeyJWT
		r.assertion, err = s.userKey.sign(c.clientID, c.tokenURL, s.opts.keyID, s.opts.now())
	case c.clientSecret != "":
		r.method, r.clientSecret = methodClientSecret, c.clientSecret
	case len(c.privateKey) > 0:
		r.method = methodPrivateKeyJWT
		if c.keyID == "" {
			return request{}, fmt.Errorf("client: %s has a private_key and no key_id", s.dir)
		}
		if string(c.privateKey) != string(s.pemKey) {
			k, err := parsePrivateKey(c.privateKey)
			if err != nil {
				return request{}, fmt.Errorf("client: %s: %w", filepath.Join(s.dir, filePrivateKey), err)
			}
			s.pemKey, s.key = c.privateKey, k
		}
		r.assertion, err = s.key.sign(c.clientID, c.tokenURL, c.keyID, s.opts.now())
	default:
		r.method = methodServiceAccountToken
		b, ferr := readFile(filepath.Dir(s.opts.saTokenFile), filepath.Base(s.opts.saTokenFile), true)
		if ferr != nil {
			return request{}, fmt.Errorf("client: %s holds neither client_secret nor private_key, and the ServiceAccount token is unreadable: %w", s.dir, ferr)
		}
		if r.assertion = strings.TrimSpace(string(b)); r.assertion == "" {
			return request{}, fmt.Errorf("client: the ServiceAccount token file %s is empty", s.opts.saTokenFile)
		}
	}
	if err != nil {
		return request{}, fmt.Errorf("client: %w", err)
	}
	return r, nil
}

// request reads the files and sends one token request, with
// golang.org/x/oauth2/clientcredentials: the client_id and the credential in the
// form body (client_secret, or client_assertion_type and client_assertion).
func (s *TokenSource) request() (*oauth2.Token, time.Time, error) {
	r, err := s.prepare()
	if err != nil {
		return nil, time.Time{}, err
	}
	params := url.Values{}
	if s.opts.audience != "" {
		params.Set("audience", s.opts.audience)
	}
	cfg := clientcredentials.Config{
		ClientID:       r.clientID,
		TokenURL:       r.tokenURL,
		Scopes:         s.opts.scopes,
		AuthStyle:      oauth2.AuthStyleInParams,
		EndpointParams: params,
	}
	switch r.method {
	case methodClientSecret:
		cfg.ClientSecret = r.clientSecret
	default:
		params.Set("client_assertion_type", AssertionType)
		params.Set("client_assertion", r.assertion)
	}
	sent := s.opts.now()
	tok, err := cfg.Token(s.ctx)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("client %s (%s): token request: %w", r.clientID, r.method, err)
	}
	if s.dpop != nil && !strings.EqualFold(tok.TokenType, "DPoP") {
		return nil, time.Time{}, fmt.Errorf("client %s (%s): %w", r.clientID, r.method, errNotBound)
	}
	// Expiry by our clock, from when the request was sent: the server counted the
	// lifetime from a moment after that.
	lifetime, ok := expiresIn(tok)
	if !ok {
		tok.Expiry = time.Time{}
		return tok, time.Time{}, nil
	}
	tok.Expiry = sent.Add(lifetime)
	tok.ExpiresIn = int64(lifetime / time.Second)
	delta := s.opts.expiryDelta
	if delta == 0 {
		delta = min(DefaultExpiryDelta, lifetime/10)
	}
	return tok, tok.Expiry.Add(-delta), nil
}

// expiresIn is the token's expires_in, which clientcredentials keeps only in the raw
// response.
func expiresIn(tok *oauth2.Token) (time.Duration, bool) {
	var secs float64
	switch v := tok.Extra("expires_in").(type) {
	case float64:
		secs = v
	case int64:
		secs = float64(v)
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return 0, false
		}
		secs = f
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, false
		}
		secs = f
	default:
		return 0, false
	}
	if secs <= 0 {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}

// NewHTTPClient returns an *http.Client that sends each request with an
// "Authorization: Bearer" header from ts (with a *TokenSource made WithDPoP,
// "Authorization: DPoP" and a DPoP proof, see NewTransport). A *TokenSource is used as it is (it caches);
// any other source is wrapped in oauth2.ReuseTokenSource. Requests go through the
// *http.Client that ctx holds under oauth2.HTTPClient (its Transport, Timeout,
// redirect policy and cookie jar), else http.DefaultTransport.
//
// The token goes only to the origin (scheme, host and port) of the request made: a
// redirect to another origin is followed without it, as net/http does with an
// Authorization header set on the request itself (an API may redirect to a
// pre-signed download URL, which needs no token and must not see it). A redirect back
// to the first origin carries it again.
//
// Unlike oauth2.NewClient, it does not wrap a *TokenSource in a second cache that
// would keep a token until 10 s before it expires instead of the source's own delta.
func NewHTTPClient(ctx context.Context, ts oauth2.TokenSource) *http.Client {
	base := &http.Client{}
	if hc, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && hc != nil {
		base = hc
	}
	return &http.Client{
		Transport:     NewTransport(ts, base.Transport),
		CheckRedirect: base.CheckRedirect,
		Jar:           base.Jar,
		Timeout:       base.Timeout,
	}
}

// originBound sends a request through withToken when it goes to the origin of the
// request that started it (itself, or the first of the redirects that led to it), else
// through without.
type originBound struct{ withToken, without http.RoundTripper }

func (t originBound) RoundTrip(req *http.Request) (*http.Response, error) {
	first := req
	for first.Response != nil { // a redirect: net/http links it to the response that caused it
		if first = first.Response.Request; first == nil { // origin unknown: no token
			return t.without.RoundTrip(req)
		}
	}
	if origin(first.URL) != origin(req.URL) {
		return t.without.RoundTrip(req)
	}
	return t.withToken.RoundTrip(req)
}

// tokenRequestClient returns a copy of hc for token requests: a redirect to another
// origin than token_url's fails the request (ErrRedirectRefused) before anything is
// sent there; others are followed as hc's CheckRedirect says (at most 10 by default).
// A 307 or 308 would resend the form with the credential, and whatever answers a
// redirected token request could hand out a token of its own.
func tokenRequestClient(hc *http.Client) *http.Client {
	c := *hc
	policy := hc.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if from, to := origin(via[0].URL), origin(req.URL); from != to {
			return fmt.Errorf("%w: token_url %s redirected to %s; credentials are sent to token_url's origin only", ErrRedirectRefused, from, to)
		}
		if policy != nil {
			return policy(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

// origin is the RFC 6454 origin of u, scheme://host:port with the port defaulted by
// the scheme: what decides where credentials and tokens may go.
//
// pkg/verifier has the same function on purpose: each public package imports no other
// package of the project, so users can vendor it alone (test/vendorable).
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") { // IPv6
		host = "[" + host + "]"
	}
	return scheme + "://" + host + ":" + port
}
