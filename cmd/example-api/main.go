// Command example-api is a small resource server protected by pkg/verifier: it serves
// GET /api/users (JSON:API) to requests that carry a valid access token for its
// audience (default back-office) with the users:read scope. A token for another API
// (say, storefront) is refused. DPoP-bound tokens (RFC 9449) are accepted with their
// proof (Authorization: DPoP and a DPoP header), never as bearer tokens;
// --require-dpop refuses bearer tokens altogether.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/oauth-client-operator/oauth-client-operator/pkg/verifier"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run() error {
	issuer := flag.String("issuer", "", "the token server's issuer URL (required)")
	audience := flag.String("audience", "back-office", "the audience this API accepts")
	listen := flag.String("listen", "127.0.0.1:18080", "listen address")
	jwksURL := flag.String("jwks-url", "", "JWKS URL; default: discovered from the issuer's metadata")
	leeway := flag.Duration("leeway", verifier.DefaultLeeway, "clock-skew leeway for exp, nbf and iat")
	refresh := flag.Duration("jwks-refresh-interval", verifier.DefaultRefreshInterval, "least time between JWKS fetches")
	requireDPoP := flag.Bool("require-dpop", false, "accept DPoP-bound tokens only (RFC 9449); bearer tokens are refused")
	externalURL := flag.String("external-url", "", "the URL clients reach this API at, when a proxy changes it: DPoP proofs name it")
	flag.Parse()
	if *issuer == "" {
		return errors.New("--issuer is required")
	}
	v, err := verifier.New(verifier.Config{Issuer: *issuer, Audience: *audience, JWKSURL: *jwksURL, Leeway: *leeway, RefreshInterval: *refresh,
		RequireDPoP: *requireDPoP, ExternalURL: *externalURL})
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv := &http.Server{
		Addr:              *listen,
		Handler:           newHandler(v),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("example API listening", "address", *listen, "issuer", *issuer, "audience", *audience)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// newHandler routes GET /api/users through the verifier's middleware.
func newHandler(v *verifier.Verifier) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/users", v.Middleware("users:read")(http.HandlerFunc(listUsers)))
	return mux
}

const jsonAPI = "application/vnd.api+json"

type resource struct {
	Type       string            `json:"type"`
	ID         string            `json:"id"`
	Attributes map[string]string `json:"attributes"`
}

var users = []resource{
	{Type: "users", ID: "1", Attributes: map[string]string{"name": "Ada Lovelace", "email": "ada@example.com"}},
	{Type: "users", ID: "2", Attributes: map[string]string{"name": "Grace Hopper", "email": "grace@example.com"}},
}

// listUsers answers a JSON:API document; the caller is in the request's claims.
func listUsers(w http.ResponseWriter, r *http.Request) {
	claims, _ := verifier.ClaimsFromContext(r.Context())
	w.Header().Set("Content-Type", jsonAPI)
	body := struct {
		Data []resource        `json:"data"`
		Meta map[string]string `json:"meta"`
	}{users, map[string]string{"client_id": claims.ClientID}}
	_ = json.NewEncoder(w).Encode(body)
}
