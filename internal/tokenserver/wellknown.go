package tokenserver

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// documents are the public documents derived from one generation of keys, built once
// per key change rather than per request.
type documents struct {
	keys *signing.Loaded
	// metadata is the RFC 8414 document, oidc the OpenID Connect discovery one.
	metadata, oidc []byte
}

// published returns the documents of the keys in force, rebuilding them after a change.
func (s *Server) published() *documents {
	loaded := s.keys.Load()
	if loaded == nil {
		return nil
	}
	if d := s.docs.Load(); d != nil && d.keys == loaded {
		return d
	}
	d := &documents{keys: loaded, metadata: s.buildMetadata(loaded.Algorithms, false), oidc: s.buildMetadata(loaded.Algorithms, true)}
	s.docs.Store(d)
	return d
}

// buildMetadata renders RFC 8414 authorization-server metadata: only what the server
// does. The server has no authorization endpoint (response_types_supported is empty)
// and issues no ID tokens. The OpenID Connect discovery document (oidc) adds the
// fields OpenID Connect Discovery 1.0 requires, which OpenID-only libraries check
// (response_types_supported non-empty, subject_types_supported,
// id_token_signing_alg_values_supported); they describe no flow a client can use here.
func (s *Server) buildMetadata(algs []string, oidc bool) []byte {
	iss := s.cfg.Issuer
	doc := map[string]any{
		"issuer":                                iss,
		"token_endpoint":                        s.cfg.TokenURL(),
		"jwks_uri":                              iss + JWKSPath,
		"grant_types_supported":                 GrantTypesSupported,
		"response_types_supported":              []string{},
		"token_endpoint_auth_methods_supported": AuthMethodsSupported,
		// Algorithms of client assertions and grant tokens (ServiceAccount tokens,
		// trusted issuers' tokens, private_key_jwt).
		"token_endpoint_auth_signing_alg_values_supported": AssertionAlgorithms,
		// Algorithms of the access tokens (RFC 9068) this server signs.
		"access_token_signing_alg_values_supported": algs,
		// Algorithms of DPoP proofs (RFC 9449 §5.1).
		"dpop_signing_alg_values_supported": DPoPAlgorithms(),
	}
	if oidc {
		doc["response_types_supported"] = []string{"token"}
		doc["subject_types_supported"] = []string{"public"}
		doc["id_token_signing_alg_values_supported"] = algs
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err) // only strings: cannot fail
	}
	return b
}

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	d := s.publishedOrFail(w, r)
	if d == nil {
		return
	}
	s.writeDocument(w, r, "application/jwk-set+json", d.keys.JWKS)
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	d := s.publishedOrFail(w, r)
	if d == nil {
		return
	}
	doc := d.metadata
	if r.URL.Path == OIDCPath {
		doc = d.oidc
	}
	s.writeDocument(w, r, "application/json", doc)
}

func (s *Server) publishedOrFail(w http.ResponseWriter, r *http.Request) *documents {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil
	}
	d := s.published()
	if d == nil {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "signing keys not loaded yet", http.StatusServiceUnavailable)
	}
	return d
}

func (s *Server) writeDocument(w http.ResponseWriter, r *http.Request, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(s.cfg.TokenServer.JWKSMaxAge.Seconds())))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}
