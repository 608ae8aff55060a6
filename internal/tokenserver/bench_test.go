package tokenserver

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// BenchmarkToken measures the whole token handler (parse, authenticate against the
// informer cache, authorize, sign, encode) next to signing alone, per algorithm, in one
// run:
//
//	go test -run '^$' -bench BenchmarkToken -benchmem ./internal/tokenserver/
//
// The handler's own cost is handler/op minus sign-only/op.
func BenchmarkToken(b *testing.B) {
	w := newWorld(b)
	ns := w.namespace("bench", nil)
	api := w.api("bench", oauthv1alpha1.OAuthAPISpec{Scopes: []oauthv1alpha1.Scope{"users:read", "users:write"}, AllowedNamespaces: allNS()})
	id := w.client(ns, "load", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}, Scopes: []oauthv1alpha1.Scope{"users:read"}})
	body := jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": w.secrets[id]})

	for _, alg := range []signing.Algorithm{signing.ES256, signing.EdDSA, signing.RS256} {
		srv, keys := w.server("", alg, nil)
		h := srv.Handler()
		// The audit record written as in production (JSON, never sampled) to a sink
		// that keeps nothing: "handler" is with audit records, "handler-no-audit" without.
		srv.audit = newAuditor(config.Audit{Enabled: true, SuccessSampleRate: 1, RefusalsPerSecond: 50}, io.Discard, "bench")
		b.Run(string(alg)+"/handler-no-audit", func(b *testing.B) {
			srv.audit.enabled = false
			defer func() { srv.audit.enabled = true }()
			benchmarkHandler(b, h, body)
		})
		b.Run(string(alg)+"/handler", func(b *testing.B) { benchmarkHandler(b, h, body) })
		// The same claims, signed by the same signer: the floor the handler builds on.
		c := claims{Issuer: "https://issuer.test", Subject: id, Audience: api, IssuedAt: time.Now().Unix(),
			NotBefore: time.Now().Unix(), ExpiresAt: time.Now().Unix() + 3600, ID: "0123456789abcdefghijkl", ClientID: id, Scope: "users:read"}
		b.Run(string(alg)+"/sign-only", func(b *testing.B) {
			b.ReportAllocs()
			signer := keys.Load().Signer
			for b.Loop() {
				if _, err := signer.Sign(appendClaims(make([]byte, 0, 384), &c)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAuditRecord is the audit record of one issued token, written as in
// production (JSON, never sampled) to a sink that keeps nothing: the audit trail's
// share of a token request, without the noise of the whole handler.
func BenchmarkAuditRecord(b *testing.B) {
	a := newAuditor(config.Audit{Enabled: true, SuccessSampleRate: 1, RefusalsPerSecond: 50}, io.Discard, "replica-1")
	x := &exchange{clientID: "shop.erp-sync", credential: "client_secret", method: oauthv1alpha1.AuthClientSecret,
		source: "10.1.2.3", audience: "back-office", scope: "users:read", jti: "0123456789abcdefghijkl", exp: time.Now().Unix() + 3600}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		a.record(x, nil, now)
	}
}

// benchmarkHandler measures token requests with body through h.
func benchmarkHandler(b *testing.B, h http.Handler, body string) {
	b.ReportAllocs()
	for b.Loop() {
		// http.NewRequest, not httptest.NewRequest: the latter parses a request from
		// text, a cost of the benchmark rather than the handler.
		r, err := http.NewRequest(http.MethodPost, TokenPath, strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
