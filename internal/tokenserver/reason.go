package tokenserver

// Reason says why the token endpoint refused a request. Every refusal has exactly one,
// from the closed set below: it goes to the audit record (field "reason") and to the
// refusal counter (label "reason"), never to the client. A client whose
// authentication failed receives the same answer whatever the reason, so an attacker
// learns nothing from it; the operator reads the reason in the audit trail (README
// "Why was my token request refused?").
//
// Adding a reason: add the constant and its line in Reasons, document it in the README
// table, and provoke it in TestEveryRefusalReason.
type Reason string

// Reasons of failed client authentication: the client receives 401 invalid_client,
// byte for byte the same for every one of them (for a grant's token: 400
// invalid_grant, likewise).
const (
	// ReasonUnknownClient: no OAuthClient has the client_id (or it cannot name one).
	ReasonUnknownClient Reason = "unknown_client"
	// ReasonNoCredential: the request named a client but presented no credential.
	ReasonNoCredential Reason = "no_credential"
	// ReasonMethodMismatch: the credential is not of the client's authentication method
	// (a secret for a PrivateKeyJWT client, an assertion for a ClientSecret client).
	ReasonMethodMismatch Reason = "method_mismatch"
	// ReasonCredentialsUnavailable: the client's Secret is missing, not controlled by
	// the client, or holds no usable credential (yet).
	ReasonCredentialsUnavailable Reason = "credentials_unavailable"
	// ReasonWrongSecret: the client secret matches neither the current nor the
	// previous one.
	ReasonWrongSecret Reason = "wrong_secret"
	// ReasonPreviousSecretExpired: the secret is the one before the last rotation,
	// and its grace period is over.
	ReasonPreviousSecretExpired Reason = "previous_secret_expired"
	// ReasonDisabled: the credential is right, but the client is disabled or being
	// deleted.
	ReasonDisabled Reason = "disabled"
	// ReasonAssertionTooLarge: the client assertion is over 8 KiB.
	ReasonAssertionTooLarge Reason = "assertion_too_large"
	// ReasonAssertionMalformed: the client assertion is not a JWT.
	ReasonAssertionMalformed Reason = "assertion_malformed"
	// ReasonAssertionAlgorithm: the assertion's alg is not one of
	// AssertionAlgorithms (none and HMAC never are).
	ReasonAssertionAlgorithm Reason = "assertion_algorithm"
	// ReasonAssertionUnknownKey: no key of the client (or of the ServiceAccount
	// issuer) has the assertion's kid.
	ReasonAssertionUnknownKey Reason = "assertion_unknown_key"
	// ReasonAssertionSignature: the signature does not verify.
	ReasonAssertionSignature Reason = "assertion_signature"
	// ReasonAssertionExpired: exp has passed.
	ReasonAssertionExpired Reason = "assertion_expired"
	// ReasonAssertionNotYetValid: nbf or iat is in the future.
	ReasonAssertionNotYetValid Reason = "assertion_not_yet_valid"
	// ReasonAssertionMissingClaim: exp, iat or jti is missing (or jti is over 256
	// characters).
	ReasonAssertionMissingClaim Reason = "assertion_missing_claim"
	// ReasonAssertionIssuer: iss is not the expected issuer (the client_id for
	// private_key_jwt, the cluster's ServiceAccount issuer for ServiceAccount tokens).
	ReasonAssertionIssuer Reason = "assertion_issuer"
	// ReasonAssertionSubject: sub is not the client (private_key_jwt) or not its
	// ServiceAccount.
	ReasonAssertionSubject Reason = "assertion_subject"
	// ReasonAssertionAudience: aud does not name this server, or names another party
	// as well.
	ReasonAssertionAudience Reason = "assertion_audience"
	// ReasonAssertionLifetime: the assertion lives longer than allowed
	// (privateKeyJWT.maxAssertionLifetime, workloadIdentity.maxTokenLifetime).
	ReasonAssertionLifetime Reason = "assertion_lifetime"
	// ReasonAssertionReplayed: the assertion's jti was used before on this replica.
	ReasonAssertionReplayed Reason = "assertion_replayed"
	// ReasonReplayCacheFull: the assertion verified, but the replica's replay cache
	// holds no room for its jti (see privateKeyJWT.replayCacheSize); 503, not a failed
	// authentication.
	ReasonReplayCacheFull Reason = "replay_cache_full"
	// ReasonIssuerUnavailable: the cluster's ServiceAccount issuer is not known yet
	// (the API server has not answered since the start), or no key of the token's
	// issuer could be obtained (it has not answered since it was trusted).
	ReasonIssuerUnavailable Reason = "issuer_unavailable"
	// ReasonIssuerNotTrusted: the client's rule names an OAuthTrustedIssuer that does
	// not exist, or whose rules or key source cannot be used (its Ready condition says
	// why).
	ReasonIssuerNotTrusted Reason = "issuer_not_trusted"
	// ReasonIssuerNamespaceNotAdmitted: the rule's OAuthTrustedIssuer does not admit
	// the client's namespace (allowedNamespaces).
	ReasonIssuerNamespaceNotAdmitted Reason = "issuer_namespace_not_admitted"
	// ReasonRuleMissingRequiredClaims: the client's rule does not pin a claim its
	// issuer's requiredClientClaims lists.
	ReasonRuleMissingRequiredClaims Reason = "rule_missing_required_claims"
	// ReasonClaimMismatch: a claim the client's rule pins is missing from the token,
	// or not that string.
	ReasonClaimMismatch Reason = "claim_mismatch"
	// ReasonClaimRuleFailed: one of the issuer's claimValidationRules does not hold
	// for the token and the client (a claim rule, or a CEL expression that is false,
	// errs or runs over its cost limit).
	ReasonClaimRuleFailed Reason = "claim_rule_failed"
	// ReasonNoMatchingClient: a grant's token without client_id matches the rules of
	// no client; 400 invalid_grant like every refused grant.
	ReasonNoMatchingClient Reason = "no_matching_client"
	// ReasonServiceAccountUIDMismatch: the ServiceAccount token was issued for a
	// ServiceAccount that no longer exists (deleted, or deleted and recreated).
	ReasonServiceAccountUIDMismatch Reason = "service_account_uid_mismatch"
	// ReasonBoundObjectInvalidated: the ServiceAccount token is bound to a pod (or a
	// Secret, a node) and the API server's TokenReview says it is no longer valid: the
	// object was deleted.
	ReasonBoundObjectInvalidated Reason = "bound_object_invalidated"
	// ReasonTokenReviewUnavailable: the ServiceAccount token is bound to an object, was
	// never reviewed, and the API server does not answer its TokenReview now; 503, not
	// a failed authentication.
	ReasonTokenReviewUnavailable Reason = "token_review_unavailable"
)

// Reasons of refusals after authentication, and of requests refused before it.
const (
	// ReasonMalformedRequest: the request is not a valid token request (method,
	// content type, body, parameters); the description says what.
	ReasonMalformedRequest Reason = "malformed_request"
	// ReasonMalformedCredentials: the Authorization header is not valid Basic
	// credentials.
	ReasonMalformedCredentials Reason = "malformed_credentials"
	// ReasonUnsupportedGrantType: grant_type is not client_credentials, the
	// JWT-bearer grant or the token exchange.
	ReasonUnsupportedGrantType Reason = "unsupported_grant_type"
	// ReasonClientIDRequired: a grant's token without client_id authenticates several
	// clients; 400 invalid_request.
	ReasonClientIDRequired Reason = "client_id_required"
	// ReasonAddressThrottled: the client address failed to authenticate too often
	// (rateLimit.failedAuthPerMinute); 429.
	ReasonAddressThrottled Reason = "address_throttled"
	// ReasonClientRateLimited: the client exceeded its own spec.rateLimit; 429.
	ReasonClientRateLimited Reason = "client_rate_limited"
	// ReasonAudienceRequired: the client has several APIs and the request named none.
	ReasonAudienceRequired Reason = "audience_required"
	// ReasonAudienceNotGranted: the requested audience is not one of the client's
	// APIs, or that OAuthAPI does not exist.
	ReasonAudienceNotGranted Reason = "audience_not_granted"
	// ReasonNamespaceNotAdmitted: the API's allowedNamespaces does not admit the
	// client's namespace now.
	ReasonNamespaceNotAdmitted Reason = "namespace_not_admitted"
	// ReasonAudienceConflict: another OAuthAPI has the same audience (its status
	// condition AudienceConflict says which): no tokens for either until resolved.
	ReasonAudienceConflict Reason = "audience_conflict"
	// ReasonScopeNotAllowed: a requested scope is not in the client's scopes or not
	// defined by the API.
	ReasonScopeNotAllowed Reason = "scope_not_allowed"
	// ReasonDPoPProofRequired: the client or the API requires DPoP-bound tokens
	// (spec.requireDPoP) and the request has no DPoP proof; 400 invalid_dpop_proof.
	ReasonDPoPProofRequired Reason = "dpop_proof_required"
	// ReasonDPoPProofMalformed: the DPoP proof is not a JWS of typ dpop+jwt with
	// jti, htm, htu and iat, is over 8 KiB, or the request has several DPoP headers.
	ReasonDPoPProofMalformed Reason = "dpop_proof_malformed"
	// ReasonDPoPProofAlgorithm: the proof's alg is not one of the DPoP algorithms
	// (never none or HMAC).
	ReasonDPoPProofAlgorithm Reason = "dpop_proof_algorithm"
	// ReasonDPoPProofKey: the proof's jwk header is missing, holds private or
	// symmetric key material, or is no key for its alg.
	ReasonDPoPProofKey Reason = "dpop_proof_key"
	// ReasonDPoPProofSignature: the proof's signature does not verify with its jwk.
	ReasonDPoPProofSignature Reason = "dpop_proof_signature"
	// ReasonDPoPProofMismatch: the proof's htm is not POST or its htu not the token
	// URL.
	ReasonDPoPProofMismatch Reason = "dpop_proof_mismatch"
	// ReasonDPoPProofTime: the proof's iat is older than dpop.proofMaxAge, or in
	// the future.
	ReasonDPoPProofTime Reason = "dpop_proof_time"
	// ReasonDPoPProofReplayed: the proof's jti was used before on this replica.
	ReasonDPoPProofReplayed Reason = "dpop_proof_replayed"
	// ReasonDPoPReplayCacheFull: the proof is valid, but the replica's DPoP replay
	// cache holds no room for its jti (see dpop.replayCacheSize); 503.
	ReasonDPoPReplayCacheFull Reason = "dpop_replay_cache_full"
	// ReasonSigningKeyUnavailable: no signing key is loaded yet; 503.
	ReasonSigningKeyUnavailable Reason = "signing_key_unavailable"
	// ReasonSigningFailed: signing the token failed; 500.
	ReasonSigningFailed Reason = "signing_failed"
)

// Reasons is the closed set, in the order of the README's table.
var Reasons = []Reason{
	ReasonUnknownClient, ReasonNoCredential, ReasonMethodMismatch, ReasonCredentialsUnavailable,
	ReasonWrongSecret, ReasonPreviousSecretExpired, ReasonDisabled,
	ReasonAssertionTooLarge, ReasonAssertionMalformed, ReasonAssertionAlgorithm, ReasonAssertionUnknownKey,
	ReasonAssertionSignature, ReasonAssertionExpired, ReasonAssertionNotYetValid, ReasonAssertionMissingClaim,
	ReasonAssertionIssuer, ReasonAssertionSubject, ReasonAssertionAudience, ReasonAssertionLifetime,
	ReasonAssertionReplayed, ReasonReplayCacheFull, ReasonIssuerUnavailable, ReasonServiceAccountUIDMismatch,
	ReasonBoundObjectInvalidated, ReasonTokenReviewUnavailable,
	ReasonIssuerNotTrusted, ReasonIssuerNamespaceNotAdmitted, ReasonRuleMissingRequiredClaims, ReasonClaimMismatch,
	ReasonClaimRuleFailed, ReasonNoMatchingClient,
	ReasonMalformedRequest, ReasonMalformedCredentials, ReasonUnsupportedGrantType, ReasonClientIDRequired,
	ReasonAddressThrottled, ReasonClientRateLimited,
	ReasonAudienceRequired, ReasonAudienceNotGranted, ReasonNamespaceNotAdmitted, ReasonAudienceConflict, ReasonScopeNotAllowed,
	ReasonDPoPProofRequired, ReasonDPoPProofMalformed, ReasonDPoPProofAlgorithm, ReasonDPoPProofKey, ReasonDPoPProofSignature,
	ReasonDPoPProofMismatch, ReasonDPoPProofTime, ReasonDPoPProofReplayed, ReasonDPoPReplayCacheFull,
	ReasonSigningKeyUnavailable, ReasonSigningFailed,
}
