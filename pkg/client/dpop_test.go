package client_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oauth-client-operator/oauth-client-operator/pkg/client"
)

// The proofs pkg/client makes are checked here by go-jose, a JOSE implementation
// independent of the project, with the rules of RFC 9449 §4.3 spelt out: one JWS
// whose protected header has typ dpop+jwt, an asymmetric alg and the public key as
// jwk, signed by that key, with jti, htm, htu, iat (and ath, nonce where due).

// checkedProof is a proof that passed checkProof.
type checkedProof struct {
	jkt    string
	claims map[string]any
}

// checkProof verifies proof with go-jose as a DPoP proof of method to htu at about
// now, and returns its key's thumbprint and its claims.
func checkProof(t *testing.T, proof, method, htu string, now time.Time) checkedProof {
	t.Helper()
	jws, err := jose.ParseSigned(proof, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA})
	if err != nil {
		t.Fatalf("proof is not a JWS of an asymmetric algorithm: %v", err)
	}
	if len(jws.Signatures) != 1 {
		t.Fatalf("%d signatures", len(jws.Signatures))
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		t.Errorf("typ %q", typ)
	}
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.IsPublic() || !jwk.Valid() {
		t.Fatalf("jwk %+v: want a valid public key", jwk)
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		t.Fatalf("the signature does not verify with the header's jwk: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if c["htm"] != method || c["htu"] != htu {
		t.Errorf("htm %v htu %v, want %s %s", c["htm"], c["htu"], method, htu)
	}
	if jti, _ := c["jti"].(string); len(jti) < 16 {
		t.Errorf("jti %v", c["jti"])
	}
	if iat, _ := c["iat"].(float64); time.Unix(int64(iat), 0).Sub(now).Abs() > 5*time.Second {
		t.Errorf("iat %v, now %v", c["iat"], now.Unix())
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return checkedProof{jkt: base64.RawURLEncoding.EncodeToString(tp), claims: c}
}

func ath(token string) string {
	h := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// dpopServer is a token server and an API that check DPoP proofs with checkProof.
type dpopServer struct {
	*httptest.Server
	t *testing.T
	// tokenNonce and apiNonce, when set, are demanded by the nonce challenge of the
	// token endpoint and of the API; bearer answers bearer tokens to DPoP requests.
	tokenNonce, apiNonce string
	bearer               bool
	// alwaysChallenge: the token endpoint asks for a nonce whatever the proof holds.
	alwaysChallenge bool

	mu      sync.Mutex
	proofs  []checkedProof
	bodies  []string
	tokens  int
	jtiSeen map[string]bool
}

func newDPoPServer(t *testing.T) *dpopServer {
	s := &dpopServer{t: t, jtiSeen: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2-token", s.token)
	mux.HandleFunc("/api/", s.api)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *dpopServer) record(r *http.Request, htu string) (checkedProof, bool) {
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		s.t.Errorf("%s %s: %d DPoP headers", r.Method, r.URL, len(proofs))
		return checkedProof{}, false
	}
	p := checkProof(s.t, proofs[0], r.Method, htu, time.Now())
	s.mu.Lock()
	defer s.mu.Unlock()
	if jti := p.claims["jti"].(string); s.jtiSeen[jti] {
		s.t.Errorf("jti %s sent twice", jti)
	} else {
		s.jtiSeen[jti] = true
	}
	s.proofs = append(s.proofs, p)
	body, _ := io.ReadAll(r.Body)
	s.bodies = append(s.bodies, string(body))
	return p, true
}

func (s *dpopServer) token(w http.ResponseWriter, r *http.Request) {
	p, ok := s.record(r, s.URL+"/oauth2-token")
	if !ok {
		http.Error(w, "no proof", http.StatusBadRequest)
		return
	}
	if _, has := p.claims["ath"]; has {
		s.t.Error("ath in a token request's proof")
	}
	w.Header().Set("Content-Type", "application/json")
	if s.alwaysChallenge || s.tokenNonce != "" && p.claims["nonce"] != s.tokenNonce {
		w.Header().Set("DPoP-Nonce", s.tokenNonce)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"use_dpop_nonce","error_description":"send the nonce"}`))
		return
	}
	s.mu.Lock()
	s.tokens++
	n := s.tokens
	s.mu.Unlock()
	typ := "DPoP"
	if s.bearer {
		typ = "Bearer"
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "token-" + p.jkt + "-" + string(rune('0'+n)), "token_type": typ, "expires_in": 3600})
}

func (s *dpopServer) api(w http.ResponseWriter, r *http.Request) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if scheme != "DPoP" {
		http.Error(w, "want the DPoP scheme", http.StatusUnauthorized)
		return
	}
	p, ok := s.record(r, s.URL+r.URL.Path)
	if !ok {
		http.Error(w, "no proof", http.StatusUnauthorized)
		return
	}
	if p.claims["ath"] != ath(token) {
		s.t.Errorf("ath %v, want the token's hash", p.claims["ath"])
	}
	if !strings.HasPrefix(token, "token-"+p.jkt+"-") {
		s.t.Errorf("token %s sent with a proof of another key (%s)", token, p.jkt)
	}
	if s.apiNonce != "" && p.claims["nonce"] != s.apiNonce {
		w.Header().Set("DPoP-Nonce", s.apiNonce)
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	_, _ = w.Write([]byte("ok"))
}

func (s *dpopServer) secretDir(t *testing.T) string {
	return newVolume(t, map[string]string{"client_id": "shop.dpop", "client_secret": "s3cret", "token_url": s.URL + "/oauth2-token"}).dir
}

func (s *dpopServer) seen() []checkedProof {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]checkedProof(nil), s.proofs...)
}

// TestDPoPTokenSource: WithDPoP sends a proof with each token request, and every
// DPoP-bound source of the process proves the same in-memory key.
func TestDPoPTokenSource(t *testing.T) {
	srv := newDPoPServer(t)
	ctx := context.Background()
	a, err := client.New(ctx, srv.secretDir(t), client.WithDPoP(), client.WithExpiryDelta(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.New(ctx, srv.secretDir(t), client.WithDPoP())
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range []*client.TokenSource{a, a, b} {
		tok, err := ts.Token()
		if err != nil {
			t.Fatal(err)
		}
		if tok.TokenType != "DPoP" {
			t.Errorf("token type %q", tok.TokenType)
		}
	}
	proofs := srv.seen()
	if len(proofs) != 3 {
		t.Fatalf("%d token requests, want 3 (a's delta makes each Token a request)", len(proofs))
	}
	for _, p := range proofs[1:] {
		if p.jkt != proofs[0].jkt {
			t.Errorf("proof keys %s and %s: want the process's one key", proofs[0].jkt, p.jkt)
		}
	}
}

// TestDPoPNonceChallengeAtTheTokenEndpoint: a use_dpop_nonce answer is followed once,
// with the nonce in a new proof; a server that asks again gets no third request.
func TestDPoPNonceChallengeAtTheTokenEndpoint(t *testing.T) {
	srv := newDPoPServer(t)
	srv.tokenNonce = "nonce-1"
	ts, err := client.New(context.Background(), srv.secretDir(t), client.WithDPoP())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Token(); err != nil {
		t.Fatal(err)
	}
	proofs := srv.seen()
	if len(proofs) != 2 || proofs[0].claims["nonce"] != nil || proofs[1].claims["nonce"] != "nonce-1" {
		t.Fatalf("proofs %v: want one without nonce, then one with nonce-1", proofs)
	}
	bodies := srv.bodies
	if bodies[0] != bodies[1] || !strings.Contains(bodies[1], "client_secret=s3cret") {
		t.Errorf("the retry sent %q, the first request %q", bodies[1], bodies[0])
	}

	// A server that challenges every proof: one retry, then its answer is the error.
	srv2 := newDPoPServer(t)
	srv2.tokenNonce, srv2.alwaysChallenge = "n", true
	ts2, err := client.New(context.Background(), srv2.secretDir(t), client.WithDPoP())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts2.Token(); err == nil || !strings.Contains(err.Error(), "use_dpop_nonce") {
		t.Errorf("Token() = %v, want the use_dpop_nonce error", err)
	}
	if n := len(srv2.seen()); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
}

// TestDPoPTokenRequestAnsweredWithABearerToken: a DPoP-bound source refuses a bearer
// token: the server ignored the proof.
func TestDPoPTokenRequestAnsweredWithABearerToken(t *testing.T) {
	srv := newDPoPServer(t)
	srv.bearer = true
	ts, err := client.New(context.Background(), srv.secretDir(t), client.WithDPoP())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Token(); err == nil || !strings.Contains(err.Error(), "bearer token") {
		t.Fatalf("Token() = %v, want an error about the bearer token", err)
	}
}

// TestDPoPHTTPClient: NewHTTPClient sends the DPoP-bound token with the DPoP scheme
// and a fresh proof per request naming the method, the URL without query and the
// token (ath); a resource server's nonce challenge is followed once, body included;
// a redirect to another origin carries neither token nor proof.
func TestDPoPHTTPClient(t *testing.T) {
	srv := newDPoPServer(t)
	srv.apiNonce = "api-nonce"
	ctx := context.Background()
	ts, err := client.New(ctx, srv.secretDir(t), client.WithDPoP())
	if err != nil {
		t.Fatal(err)
	}
	hc := client.NewHTTPClient(ctx, ts)
	resp, err := hc.Post(srv.URL+"/api/users?page=2", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	proofs := srv.seen()
	// The token request, the API request without the nonce, the retry with it.
	if len(proofs) != 3 || proofs[1].claims["nonce"] != nil || proofs[2].claims["nonce"] != "api-nonce" {
		t.Fatalf("proofs %v", proofs)
	}
	if srv.bodies[1] != "payload" || srv.bodies[2] != "payload" {
		t.Errorf("bodies %q", srv.bodies[1:])
	}
	// The nonce is remembered for the next request: no challenge.
	resp, err = hc.Get(srv.URL + "/api/users")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if n := len(srv.seen()); resp.StatusCode != http.StatusOK || n != 4 {
		t.Errorf("status %d after %d proofs, want 200 after 4", resp.StatusCode, n)
	}

	// Another origin, reached by a redirect: no Authorization, no DPoP header.
	var leaked []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"Authorization", "DPoP"} {
			if r.Header.Get(h) != "" {
				leaked = append(leaked, h)
			}
		}
	}))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/download", http.StatusFound)
	}))
	defer redirect.Close()
	resp, err = hc.Get(redirect.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if len(leaked) > 0 {
		t.Errorf("sent %v to another origin", leaked)
	}
}

// TestDPoPNonceChallengeOfAGet: a request without a body is sent again too.
func TestDPoPNonceChallengeOfAGet(t *testing.T) {
	srv := newDPoPServer(t)
	srv.apiNonce = "get-nonce"
	ts, err := client.New(context.Background(), srv.secretDir(t), client.WithDPoP())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.NewHTTPClient(context.Background(), ts).Get(srv.URL + "/api/users")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if proofs := srv.seen(); resp.StatusCode != http.StatusOK || len(proofs) != 3 || proofs[2].claims["nonce"] != "get-nonce" {
		t.Fatalf("status %d, proofs %v", resp.StatusCode, proofs)
	}
}

// TestWithDPoPKey: a key of the program's own signs the proofs; an unusable one is
// refused by New.
func TestWithDPoPKey(t *testing.T) {
	srv := newDPoPServer(t)
	key := interopKey(t)
	ts, err := client.New(context.Background(), srv.secretDir(t), client.WithDPoPKey(key))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Token(); err != nil {
		t.Fatal(err)
	}
	tp, _ := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
	if got := srv.seen()[0].jkt; got != base64.RawURLEncoding.EncodeToString(tp) {
		t.Errorf("proof key %s, want the program's", got)
	}
	if _, err := client.New(context.Background(), srv.secretDir(t), client.WithDPoPKey(nil)); err == nil {
		t.Error("New accepted a nil DPoP key")
	}
}

// interopKey is an Ed25519 key: proofs of EdDSA.
func interopKey(t *testing.T) crypto.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestDPoPNonceTooLong: a nonce over 1 KiB is neither kept nor followed: a server
// cannot make the client hold megabytes per origin.
func TestDPoPNonceTooLong(t *testing.T) {
	srv := newDPoPServer(t)
	srv.tokenNonce = strings.Repeat("n", 1025)
	ts, err := client.New(context.Background(), srv.secretDir(t), client.WithDPoP())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Token(); err == nil || !strings.Contains(err.Error(), "use_dpop_nonce") {
		t.Errorf("Token() = %v, want the server's use_dpop_nonce error", err)
	}
	if n := len(srv.seen()); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
}
