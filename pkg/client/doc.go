// Package client gives workloads OAuth 2.0 access tokens from the oauth-client-operator
// token server, as a golang.org/x/oauth2 TokenSource built from the files the pod
// mounts. It imports no other package of the project: vendor it alone.
//
// Mount the client's Secret (the operator writes client_id, token_url, issuer and the
// credential) and point New at the directory. Each token request reads the files and
// picks the method from what it finds:
//
//   - client_secret: method ClientSecret, the secret is sent in the request body;
//   - private_key and key_id: method PrivateKeyJWT with the key the operator generated;
//     each request carries a fresh RFC 7523 assertion (iss = sub = client_id,
//     aud = token_url, exp = now + 60 s, a random jti) signed with golang-jwt (ES256
//     for EC P-256, RS256 for RSA, EdDSA for Ed25519), kid = key_id;
//   - neither: method ServiceAccountToken, the pod's projected ServiceAccount token
//     (DefaultServiceAccountTokenFile, or WithServiceAccountTokenFile) is the
//     assertion.
//
// WithPrivateKey signs with a key the program holds instead (an OAuthClient with
// spec.authentication.publicKeys). A key of your own may also be a private_key and
// key_id file in the same directory, for example through a projected volume that
// combines the operator's Secret with yours.
//
// ClientSecret (the client's Secret mounted at /etc/oauth-client):
//
//	ts, err := client.New(ctx, "/etc/oauth-client",
//		client.WithAudience("back-office"), client.WithScopes("users:read"))
//	if err != nil { … }
//	hc := client.NewHTTPClient(ctx, ts) // adds "Authorization: Bearer …"
//	resp, err := hc.Get("https://back-office.example/api/users")
//
// PrivateKeyJWT (the Secret holds private_key and key_id instead of client_secret):
// the same five lines; nothing else changes. With a key the program holds:
//
//	key, _ := x509.ParsePKCS8PrivateKey(pemBlock.Bytes) // the half of a spec.authentication.publicKeys entry
//	ts, err := client.New(ctx, "/etc/oauth-client",
//		client.WithAudience("back-office"), client.WithPrivateKey(key.(crypto.Signer), "my-key-1"))
//	if err != nil { … }
//	tok, err := ts.Token() // tok.AccessToken
//
// ServiceAccountToken (the Secret holds only client_id, token_url, issuer; the pod
// projects a ServiceAccount token whose audience is the issuer):
//
//	ts, err := client.New(ctx, "/etc/oauth-client",
//		client.WithAudience("back-office"),
//		client.WithServiceAccountTokenFile("/var/run/secrets/oauth/token"))
//	if err != nil { … }
//	hc := client.NewHTTPClient(ctx, ts)
//
// with, in the pod spec:
//
//	volumes:
//	- name: oauth-token
//	  projected:
//	    sources:
//	    - serviceAccountToken: {path: token, audience: <issuer>, expirationSeconds: 3600}
//	# mounted at /var/run/secrets/oauth
//
// # Rotation
//
// The kubelet updates a mounted Secret (a rotated client secret or key) and a
// projected token by writing a new version and swapping the ..data symlink; each
// token request reads the files again (a few small files, once per token lifetime),
// one version at a time, so a secret or a key and its key_id are never mixed across
// versions. A request answered invalid_client reads the files again and is retried
// once, 200 ms later. Use a volume, not environment variables: those never change.
//
// # Caching
//
// A TokenSource keeps its access token until shortly before it expires: 10 % of the
// lifetime before, at most 30 s (WithExpiryDelta changes it), measured by its own
// clock from when the request was sent. It is safe for concurrent use; callers that
// find no valid token wait for one request. This cache is the package's own rather
// than oauth2.ReuseTokenSource, whose clock cannot be replaced in tests.
// NewHTTPClient uses the TokenSource as it is; oauth2.NewClient works too, but
// adds a second cache that keeps the token until 10 s before it expires.
//
// # Requests
//
// Requests are made by golang.org/x/oauth2/clientcredentials: POST token_url with a
// form body of grant_type=client_credentials, client_id, the credential (client_secret,
// or client_assertion_type and client_assertion), audience and scope. Errors are
// *oauth2.RetrieveError: ErrorCode is the RFC 6749 error (invalid_client,
// invalid_scope, invalid_target, …), and a 429 answer's Response has Retry-After.
//
// # DPoP
//
// WithDPoP makes the tokens sender-constrained (RFC 9449): the process holds one ES256
// key pair, generated in memory on first use and never written; each token request
// carries a proof of it, and the token server binds the token to it (token_type DPoP).
// NewHTTPClient (and NewTransport) then sends "Authorization: DPoP <token>" with a new
// proof for each request, naming its method, its URL without query and the token
// (ath). A stolen token is useless without the key. A DPoP-Nonce challenge, from the
// token server or an API, is answered once with a proof carrying the nonce. WithDPoPKey
// uses a key the program holds instead.
//
//	ts, err := client.New(ctx, "/etc/oauth-client", client.WithAudience("back-office"), client.WithDPoP())
//	hc := client.NewHTTPClient(ctx, ts)
//
// # Redirects
//
// Credentials and tokens stay in their origin (scheme, host and port). A token_url
// that answers with a redirect to another origin fails the token request with
// ErrRedirectRefused before anything is sent there: a 307 or 308 would resend the
// form with the secret or assertion, and any redirected answer could hand out a token
// of another host's choosing. Redirects within token_url's origin are followed.
// NewHTTPClient sends the bearer token only to the origin of the request made: a
// redirect to another origin is followed without it (as net/http strips an
// Authorization header the request carried), so an API may still send a client to a
// pre-signed download URL.
package client
