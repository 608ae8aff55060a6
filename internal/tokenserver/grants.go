package tokenserver

// Grants other than client_credentials: a token of a trusted issuer (an
// OAuthTrustedIssuer, or the cluster's own ServiceAccount issuer) presented as the
// grant itself, which authenticates the client its rules match (federated.go). Both
// answer every refusal of the token with the same 400 invalid_grant.

// Grant types (RFC 6749 §4.4, RFC 7523 §2.1, RFC 8693 §2.1).
const (
	GrantClientCredentials = "client_credentials"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// GrantTypesSupported are the grant_types_supported of the metadata.
var GrantTypesSupported = []string{GrantClientCredentials, GrantJWTBearer, GrantTokenExchange}

// Token type identifiers of the token exchange (RFC 8693 §3).
const (
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// errInvalidGrant is the answer to a grant whose token is refused (RFC 6749 §5.2).
const errInvalidGrant = "invalid_grant"

// readGrant checks the grant type and, for the JWT-bearer grant and the token
// exchange, takes the presented token as the request's credential: it is the only
// credential such a request may carry.
func (req *tokenRequest) readGrant(params map[string]string) *oauthError {
	var token string
	switch req.grantType {
	case GrantClientCredentials:
		return nil
	case GrantJWTBearer:
		if token = params["assertion"]; token == "" {
			return badRequest(ReasonMalformedRequest, errInvalidRequest, "assertion is required with the jwt-bearer grant")
		}
	case GrantTokenExchange:
		if oerr := checkExchange(params); oerr != nil {
			return oerr
		}
		token = params["subject_token"]
	default:
		return badRequest(ReasonUnsupportedGrantType, errUnsupportedGrantType,
			"grant_type must be client_credentials, "+GrantJWTBearer+" or "+GrantTokenExchange)
	}
	if req.cred.kind != credNone {
		return badRequest(ReasonMalformedRequest, errInvalidRequest,
			"the grant's token authenticates the client: send no client_secret, client_assertion or Authorization header with it")
	}
	if len(token) > maxAssertionBytes {
		// Real tokens are 1-2 KiB; a large one only costs verification time.
		return grantFailed(ReasonAssertionTooLarge)
	}
	req.cred = credential{kind: credGrant, assertion: token}
	return nil
}

// checkExchange checks the parameters of a token exchange: a subject_token of type jwt
// or id_token, no actor (delegation is not supported), and if a token type is
// requested, an access token.
func checkExchange(params map[string]string) *oauthError {
	switch {
	case params["subject_token"] == "":
		return badRequest(ReasonMalformedRequest, errInvalidRequest, "subject_token is required with the token-exchange grant")
	case params["subject_token_type"] != TokenTypeJWT && params["subject_token_type"] != TokenTypeIDToken:
		return badRequest(ReasonMalformedRequest, errInvalidRequest, "subject_token_type must be "+TokenTypeJWT+" or "+TokenTypeIDToken)
	case params["actor_token"] != "" || params["actor_token_type"] != "":
		return badRequest(ReasonMalformedRequest, errInvalidRequest, "actor_token is not supported: this server does not issue delegated tokens")
	case params["requested_token_type"] != "" && params["requested_token_type"] != TokenTypeAccessToken:
		return badRequest(ReasonMalformedRequest, errInvalidRequest, "requested_token_type must be "+TokenTypeAccessToken)
	}
	return nil
}

// grantFailed is the one answer to every refused grant token (unknown client, bad
// signature, a rule not met, a disabled client, ...): only the reason, which the client
// never sees, differs, as with authFailed.
func grantFailed(reason Reason) *oauthError {
	return badRequest(reason, errInvalidGrant, "the grant's token was refused")
}
