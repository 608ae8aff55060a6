// Package verifier verifies, offline, the OAuth 2.0 access tokens issued by
// the oauth-client-operator token server: JWTs per RFC 9068 signed with
// ES256, RS256 or EdDSA, whose public keys the issuer publishes as a JWKS.
// Resource servers (APIs) import it alone; it depends on no other package
// of the project.
//
// A resource server creates one Verifier and wraps its handlers:
//
//	v, err := verifier.New(verifier.Config{Issuer: "https://auth.example.com", Audience: "orders-api"})
//	if err != nil { … }
//	mux.Handle("/orders", v.Middleware("orders:read")(ordersHandler))
//	// in ordersHandler:
//	claims, _ := verifier.ClaimsFromContext(r.Context()) // claims.ClientID, claims.Scopes, …
//
// Keys are discovered from the issuer's RFC 8414 metadata (or
// Config.JWKSURL) on first use, cached per the JWKS Cache-Control max-age,
// refetched (at most once per Config.RefreshInterval) when a token names an
// unknown key, and kept when a refetch fails. Verifier.Verify checks a token
// without HTTP, for other transports.
package verifier
