package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/oauth-client-operator/oauth-client-operator/internal/httpserver"
)

// minimalConfig is what the parent sends the minimal server on its stdin: the one
// client it knows and the claims it puts in tokens. The secret travels on a pipe, not
// on the command line.
type minimalConfig struct {
	Issuer   string `json:"issuer"`
	ClientID string `json:"client_id"`
	Secret   string `json:"client_secret"`
	Audience string `json:"audience"`
	Scope    string `json:"scope"`
	TTL      int64  `json:"ttl_seconds"`
	// CertFile and KeyFile, when set, make it serve HTTPS with that pair (the real
	// server's) and the real server's TLS settings (httpserver.TLSConfig).
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
}

// minimalServer is the baseline: the least a token endpoint does for the JSON
// client-credentials grant, over HTTP or HTTPS. It decodes the body with encoding/json, looks the client up
// in a map, compares the secret in constant time and signs an RFC 9068 token with
// golang-jwt ES256, with the real server's claims and header shape.
type minimalServer struct {
	cfg     minimalConfig
	clients map[string][]byte // client_id -> secret
	key     *ecdsa.PrivateKey
	kid     string
}

func newMinimalServer(cfg minimalConfig) (*minimalServer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	var kid [12]byte
	if _, err := rand.Read(kid[:]); err != nil {
		return nil, err
	}
	return &minimalServer{
		cfg:     cfg,
		clients: map[string][]byte{cfg.ClientID: []byte(cfg.Secret)},
		key:     key,
		kid:     base64.RawURLEncoding.EncodeToString(kid[:]),
	}, nil
}

func (s *minimalServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost || r.URL.Path != "/oauth2-token" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusNotFound)
		return
	}
	var req struct {
		GrantType    string `json:"grant_type"`
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&req); err != nil {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	if req.GrantType != "client_credentials" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	want, ok := s.clients[req.ClientID]
	if !ok || subtle.ConstantTimeCompare(want, []byte(req.ClientSecret)) != 1 {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	now := time.Now().Unix()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss":       s.cfg.Issuer,
		"sub":       req.ClientID,
		"aud":       s.cfg.Audience,
		"exp":       now + s.cfg.TTL,
		"iat":       now,
		"nbf":       now,
		"jti":       base64.RawURLEncoding.EncodeToString(jti[:]),
		"client_id": req.ClientID,
		"scope":     s.cfg.Scope,
	})
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = s.kid
	signed, err := tok.SignedString(s.key)
	if err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}{signed, "Bearer", s.cfg.TTL})
}

// serveMinimal is the child process mode (-serve-minimal): read the config from stdin,
// listen on 127.0.0.1:0, print "listening <url>" on stdout, and serve until stdin
// reaches EOF (the parent closed it or died) or maxLife passes.
func serveMinimal(maxLife time.Duration) error {
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read config from stdin: %w", err)
	}
	var cfg minimalConfig
	if err := json.Unmarshal(line, &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	s, err := newMinimalServer(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}
	// HTTP/1.1 only, as the real server.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	scheme := "http"
	if cfg.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return fmt.Errorf("TLS pair: %w", err)
		}
		srv.TLSConfig = httpserver.TLSConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &pair, nil })
		scheme = "https"
	}
	go func() {
		if scheme == "https" {
			_ = srv.ServeTLS(ln, "", "") // as the real server
		} else {
			_ = srv.Serve(ln)
		}
	}()
	fmt.Printf("listening %s://%s/oauth2-token\n", scheme, ln.Addr())

	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, in)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(maxLife):
	}
	return srv.Close()
}
