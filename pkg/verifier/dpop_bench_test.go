package verifier

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkMiddlewareDPoP measures a resource server's Middleware admitting a bearer
// token, and a DPoP-bound token with an ES256 proof (made by go-jose before the timer
// starts: each is single-use); the proof's cost is dpop/op minus bearer/op:
//
//	go test -run '^$' -bench BenchmarkMiddlewareDPoP -benchmem ./pkg/verifier/
func BenchmarkMiddlewareDPoP(b *testing.B) {
	a := newDPoPAPI(b, func(c *Config) { c.DPoPReplayCacheSize = 20000000 })
	key := newClientKey(b)
	const target = "http://api.example/orders"
	serve := func(b *testing.B, authorization string, proof string) {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", authorization)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		rec := httptest.NewRecorder()
		a.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	bearer, bound := a.token(b, ""), a.token(b, key.jkt)
	serve(b, "Bearer "+bearer, "") // fetch the JWKS
	b.Run("bearer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			serve(b, "Bearer "+bearer, "")
		}
	})
	b.Run("dpop-ES256", func(b *testing.B) {
		b.ReportAllocs()
		proofs := make([]string, b.N)
		for i := range proofs {
			proofs[i] = key.proof(b, proofClaims(http.MethodGet, target, a.clock.Now(), bound))
		}
		b.ResetTimer()
		for i := range b.N {
			serve(b, "DPoP "+bound, proofs[i])
		}
	})
}
