// Package tokenserver is the OAuth 2.0 protocol core of the token server: the
// client-credentials grant at POST /oauth2-token (and, for tokens of trusted issuers,
// the JWT-bearer grant and the token exchange), the JWKS and the authorization-server
// metadata. A token request goes parse → authenticate → authorize → issue, reading the
// cluster only through State (clients, their Secrets' credential material, APIs,
// namespace admission, ServiceAccounts), so the whole protocol tests without an API
// server. It imports no informer: package clusterstate feeds a Store from the
// manager's informers, and package httpserver serves Handler (listener, connection cap,
// TLS and its reload, client address behind proxies). internal/operator assembles the
// three.
//
// Where a change goes:
//
//   - A parameter or request shape: request.go (parsing knows no client and no method;
//     it extracts the credential presented).
//   - A client authentication method: an authenticator in auth.go (or its own file),
//     registered in New, with the material it needs prepared in state.go (newClient,
//     newCredentials) from the OAuthClient and its Secret. Tokens of issuers (the local
//     ServiceAccount issuer, OAuthTrustedIssuers) go through the one rule model of
//     federated.go: a new issuer kind is a tokenIssuer there, not a new authenticator.
//   - A grant type or a token binding: token.go (token, authorize, issue), with the
//     parameters in request.go (grants.go for the grants whose token authenticates the
//     client) and its name in the metadata (wellknown.go). DPoP (RFC 9449) is a
//     binding: dpop.go decides the binding of an authorized request, with the proof
//     rules of pkg/verifier (CheckDPoPProof).
//   - A refusal: one Reason in reason.go; every refusal carries one, which goes to the
//     audit record and the refusal counter, never to the client.
//   - What is read of the cluster: State and Store (state.go, store.go), and the kinds
//     clusterstate.Objects watches.
//   - Abuse controls: ratelimit.go (failed authentication per address, clients' own
//     limits), replay.go (assertion ids, and DPoP proof ids in a second cache); audit.go
//     writes one record per exchange.
package tokenserver
