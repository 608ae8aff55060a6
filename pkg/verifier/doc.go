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
// # Sender-constrained tokens (DPoP)
//
// The Middleware accepts DPoP-bound tokens (RFC 9449) as well as bearer
// tokens, without any code: "Authorization: DPoP <token>" with one "DPoP"
// proof header is checked by Verifier.VerifyDPoP (the token, then the proof's
// signature, typ, alg, htm and htu against the request, iat, ath, and that
// the token's cnf.jkt is the proof key's thumbprint; each proof is accepted
// once, in a bounded cache with a share per client). A DPoP-bound token
// presented as a bearer token is refused (RFC 9449 §7.1), by Verify too.
// Config.RequireDPoP refuses bearer tokens; Config.ExternalURL names the URL
// clients use behind a proxy. CheckDPoPProof is the proof check alone, which
// the operator's token server uses for the proofs of token requests, and
// DPoPAlgorithms the one list of accepted proof algorithms.
//
// Keys are discovered from the issuer's RFC 8414 metadata (or
// Config.JWKSURL) on first use, cached per the JWKS Cache-Control max-age,
// refetched (at most once per Config.RefreshInterval) when a token names an
// unknown key, and kept when a refetch fails. Verifier.Verify checks a token
// without HTTP, for other transports. Metadata and JWKS are fetched with
// redirects followed only within the origin asked for.
//
// The key cache is a KeySet, usable on its own for any issuer's JWKS (a
// JWKS URL, OpenID Connect or RFC 8414 discovery, or a JWKS document the
// caller holds; an *http.Client of the caller's, for credentials or a
// certificate authority), with
// golang-jwt (KeySet.Keyfunc) or without (KeySet.Key); KeySet.Run keeps it
// fresh ahead of use and KeySet.Status says since when it is stale.
//
// # Removed and revoked keys
//
// A signing key the issuer removes from its JWKS (retired or revoked) is
// still accepted until the cached JWKS expires, that is for up to its
// Cache-Control max-age after it was fetched: 5 minutes by default (the
// operator's token server sends tokenServer.jwksMaxAge, and 5 minutes apply
// when there is no max-age), never less than Config.RefreshInterval nor more
// than 24 hours. The first token verified after that is still checked
// against the expired set while the JWKS is refetched in the background (a
// fetch takes at most 10 seconds); once the refetch is done, the removed key
// is refused. While the issuer cannot be reached, the cached keys, removed
// ones included, stay in use.
//
// Verifier.Refresh fetches the JWKS at once, bypassing the cache and the
// RefreshInterval throttle, and drops removed keys when it succeeds: call
// it when a key is known to be revoked, instead of waiting for the cache to
// expire. It can also warm the cache at start-up.
//
// # Libraries
//
// Tokens are parsed and checked with github.com/golang-jwt/jwt/v5: its
// Parser (compact form, strict base64url, pinned algorithms, signature) and
// its Validator (iss, aud, exp, nbf, iat, with leeway). This package adds
// what those do not know: the RFC 9068 header checks ("typ" at+jwt, no
// "crit", a "kid"), that the key's type and JWK "alg" match the token's
// algorithm, and the required RFC 9068 claims. JWKs are decoded by
// github.com/go-jose/go-jose/v4.
//
// The JWKS cache (KeySet) is this package's own, and the operator uses it
// too, for the keys of the cluster's ServiceAccount issuer.
// github.com/MicahParks/keyfunc/v3 with github.com/MicahParks/jwkset
// (v3.9.2 with v0.11.4) was evaluated and does not keep its guarantees: it
// refreshes on a fixed interval and ignores Cache-Control; on an unknown
// kid, callers block on a rate limiter (up to a minute by default) and each
// then fetches, instead of failing fast behind a single fetch; it reads the
// JWKS without a size limit; it fetches in its constructor (New must not
// touch the network) and refreshes from a goroutine that runs until a
// context ends (a Verifier has no Close); one malformed key fails the whole
// set; it follows redirects wherever the client does; and it has no RFC 8414 discovery
// and no settable clock.
package verifier
