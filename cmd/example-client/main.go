// Command example-client is a small workload that calls an API with access tokens
// from pkg/client: it reads the client's mounted Secret (client secret, generated
// private key, or, for a ServiceAccountToken client, the projected ServiceAccount
// token) and sends GET <url> with a bearer token. With --dpop its tokens are
// DPoP-bound (RFC 9449) to a key generated in memory: each token request and each call
// carries a proof of that key, which curl cannot make.
//
//	example-client --secret-dir /etc/oauth-client --audience back-office http://127.0.0.1:18080/api/users
//	example-client --dpop --verbose --secret-dir /tmp/ledger http://127.0.0.1:18080/api/users
//
// With --every it repeats the call until interrupted, reusing its token until shortly
// before it expires and following rotated credentials in the directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/oauth-client-operator/oauth-client-operator/pkg/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("example-client", flag.ContinueOnError)
	dir := fs.String("secret-dir", "", "the directory where the client's Secret is mounted (required)")
	audience := fs.String("audience", "back-office", "the API's audience")
	scopes := fs.String("scope", "", "space-separated scopes to ask for; default: all the client may have")
	saToken := fs.String("sa-token-file", client.DefaultServiceAccountTokenFile, "the projected ServiceAccount token (ServiceAccountToken clients)")
	every := fs.Duration("every", 0, "repeat the call at this interval until interrupted; 0: once")
	dpop := fs.Bool("dpop", false, "DPoP-bound tokens (RFC 9449): a proof of an in-memory key with each token request and each call")
	verbose := fs.Bool("verbose", false, "print the token's type, key binding (cnf.jkt) and expiry before each call")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() != 1 {
		return errors.New("usage: example-client --secret-dir DIR [--audience A] [--scope S] [--dpop] [--verbose] [--every D] URL")
	}
	url := fs.Arg(0)
	opts := []client.Option{client.WithAudience(*audience), client.WithServiceAccountTokenFile(*saToken)}
	if *scopes != "" {
		opts = append(opts, client.WithScopes(strings.Fields(*scopes)...))
	}
	if *dpop {
		opts = append(opts, client.WithDPoP())
	}
	ts, err := client.New(ctx, *dir, opts...)
	if err != nil {
		return err
	}
	hc := client.NewHTTPClient(ctx, ts)
	for {
		if *verbose {
			describe(ts, out)
		}
		if err := call(ctx, hc, url, out); err != nil && *every == 0 {
			return err
		} else if err != nil {
			_, _ = fmt.Fprintln(out, "error:", err)
		}
		if *every == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*every):
		}
	}
}

// describe prints what the source's token is: its type, the key it is bound to and
// when it expires (read from the token without verifying it: the API verifies it).
func describe(ts *client.TokenSource, out io.Writer) {
	tok, err := ts.Token()
	if err != nil {
		return // the call reports it
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok.AccessToken, claims); err != nil {
		_, _ = fmt.Fprintf(out, "token: %s (not a JWT)\n", tok.TokenType)
		return
	}
	binding := "none (a bearer token)"
	if cnf, ok := claims["cnf"].(map[string]any); ok {
		binding = fmt.Sprintf("cnf.jkt %v", cnf["jkt"])
	}
	_, _ = fmt.Fprintf(out, "token: %s, key binding: %s, expires %s\n", tok.TokenType, binding, tok.Expiry.Format(time.RFC3339))
}

// call sends GET url and prints the status and the body.
func call(ctx context.Context, hc *http.Client, url string, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.api+json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "%s\n%s\n", resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
