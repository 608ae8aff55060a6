package client

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
)

// DPoP (RFC 9449) makes a client's tokens sender-constrained: each token request
// carries a proof signed by a key that never leaves the process, the token server
// binds the token to that key (token_type DPoP), and each request to an API carries
// the token with a fresh proof of the same key that names the request and the token
// (ath). A token read from a log, a proxy or a dump is useless without the key.

// WithDPoP makes the TokenSource's tokens DPoP-bound, with the process's DPoP key: an
// ES256 key pair generated in memory on first use, shared by every TokenSource of the
// process and never written anywhere. Each token request carries a proof of it; a
// token server that answers with a bearer token instead is an error (it does not
// support DPoP, or something in between removed the proof). NewHTTPClient and
// NewTransport then send "Authorization: DPoP <token>" with a proof for each request.
func WithDPoP() Option {
	return func(o *options) { o.dpop = true }
}

// WithDPoPKey is WithDPoP with a key the program holds instead of the process's: an
// *ecdsa.PrivateKey on P-256 (ES256), an *rsa.PrivateKey of at least 2048 bits
// (RS256) or an ed25519.PrivateKey (EdDSA); for example one that lives in a hardware
// module behind a crypto.Signer.
func WithDPoPKey(key crypto.Signer) Option {
	return func(o *options) { o.dpop, o.dpopKey, o.dpopKeyGiven = true, key, true }
}

// processDPoPKey is the process's DPoP key, made on first use.
var processDPoPKey = sync.OnceValues(func() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
})

// maxNonceOrigins bounds the servers whose DPoP nonce is remembered, and
// maxNonceLength the nonce: a longer one is ignored (a server's nonce is an opaque
// value of a few dozen characters).
const (
	maxNonceOrigins = 64
	maxNonceLength  = 1024
)

// dpopProver makes the DPoP proofs of one TokenSource, and remembers the nonce each
// server (origin) last asked for (RFC 9449 §8, §9).
type dpopProver struct {
	key signingKey
	// jwk is the public key as the proof header carries it.
	jwk map[string]any
	now func() time.Time

	mu     sync.Mutex
	nonces map[string]string
}

func newDPoPProver(key crypto.Signer, now func() time.Time) (*dpopProver, error) {
	if key == nil {
		var err error
		if key, err = processDPoPKey(); err != nil {
			return nil, fmt.Errorf("generate the DPoP key: %w", err)
		}
	}
	sk, err := newSigningKey(key)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(jose.JSONWebKey{Key: key.Public()})
	if err != nil {
		return nil, fmt.Errorf("the DPoP key as a JWK: %w", err)
	}
	var jwk map[string]any
	if err := json.Unmarshal(b, &jwk); err != nil {
		return nil, err
	}
	return &dpopProver{key: sk, jwk: jwk, now: now, nonces: map[string]string{}}, nil
}

// proof is a DPoP proof for a request of method to u: htu is u without query and
// fragment, ath the hash of accessToken when one is sent, nonce the one u's server
// asked for last.
func (p *dpopProver) proof(method string, u *url.URL, accessToken string) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	htu := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	claims := jwt.MapClaims{
		"jti": base64.RawURLEncoding.EncodeToString(jti[:]),
		"htm": method,
		"htu": htu.String(),
		"iat": p.now().Unix(),
	}
	if accessToken != "" {
		h := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(h[:])
	}
	if n := p.nonce(u); n != "" {
		claims["nonce"] = n
	}
	t := jwt.NewWithClaims(p.key.method, claims)
	t.Header["typ"] = "dpop+jwt"
	t.Header["jwk"] = p.jwk
	s, err := t.SignedString(p.key.key)
	if err != nil {
		return "", fmt.Errorf("sign the DPoP proof: %w", err)
	}
	return s, nil
}

func (p *dpopProver) nonce(u *url.URL) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nonces[origin(u)]
}

// remember keeps the DPoP-Nonce of a response of u's server, if it has one; it
// reports whether it had.
func (p *dpopProver) remember(u *url.URL, resp *http.Response) bool {
	n := resp.Header.Get("DPoP-Nonce")
	if n == "" || len(n) > maxNonceLength {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.nonces) >= maxNonceOrigins {
		clear(p.nonces)
	}
	p.nonces[origin(u)] = n
	return true
}

// roundTrip sends req through base with a proof (and the token, when accessToken is
// set), and once more with a new proof when the server answers with a nonce challenge
// (RFC 9449 §8 at a token endpoint, §9 at a resource server) and the body can be sent
// again. req is not modified.
func (p *dpopProver) roundTrip(base http.RoundTripper, req *http.Request, accessToken string) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		r := req.Clone(req.Context())
		if attempt > 0 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		proof, err := p.proof(req.Method, req.URL, accessToken)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		r.Header.Set("DPoP", proof)
		if accessToken != "" {
			r.Header.Set("Authorization", "DPoP "+accessToken)
		}
		resp, err := base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		if !p.remember(req.URL, resp) || attempt > 0 || !nonceChallenge(resp) || !replayable(req) {
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}
}

// replayable reports whether req can be sent again: it has no body, or a GetBody.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// nonceChallenge reports whether resp asks for a proof with the nonce it sent: a
// resource server's 401 with a DPoP challenge of error use_dpop_nonce, or a token
// endpoint's 400 with error use_dpop_nonce. The body is left readable.
func nonceChallenge(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		for _, c := range resp.Header.Values("WWW-Authenticate") {
			if strings.Contains(c, `error="use_dpop_nonce"`) {
				return true
			}
		}
	case http.StatusBadRequest:
		// The first 64 KiB are read to look; the caller still reads the whole body.
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
		var e struct {
			Error string `json:"error"`
		}
		return err == nil && json.Unmarshal(b, &e) == nil && e.Error == "use_dpop_nonce"
	}
	return false
}

// readCloser reads from Reader and closes Closer.
type readCloser struct {
	io.Reader
	io.Closer
}

// dpopTokenTransport adds a proof to the token requests of a DPoP-bound TokenSource.
type dpopTokenTransport struct {
	prover *dpopProver
	base   http.RoundTripper
}

func (t dpopTokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.prover.roundTrip(t.base, req, "")
}

// dpopTransport sends a DPoP-bound token of source with a proof for each request.
type dpopTransport struct {
	source *TokenSource
	base   http.RoundTripper
}

func (t dpopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.source.Token()
	if err != nil {
		closeBody(req)
		return nil, err
	}
	return t.source.dpop.roundTrip(t.base, req, tok.AccessToken)
}

// errNotBound is the error of a token request with a proof answered by a bearer token.
var errNotBound = errors.New("the token server answered with a bearer token to a token request with a DPoP proof: it does not support DPoP, or the proof was lost on the way")

// NewTransport returns an http.RoundTripper that authorizes each request with a token
// of ts, sent only to the origin of the request made (as NewHTTPClient describes), and
// through base (http.DefaultTransport when nil). A *TokenSource made WithDPoP sends
// "Authorization: DPoP <token>" and a DPoP proof of the request (htm, htu, ath), and
// follows a DPoP-Nonce challenge once; any other source sends its token as
// oauth2.Transport does.
func NewTransport(ts oauth2.TokenSource, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if s, ok := ts.(*TokenSource); ok && s.dpop != nil {
		return originBound{withToken: dpopTransport{source: s, base: base}, without: base}
	}
	if _, ok := ts.(*TokenSource); !ok {
		ts = oauth2.ReuseTokenSource(nil, ts)
	}
	return originBound{withToken: &oauth2.Transport{Source: ts, Base: base}, without: base}
}
