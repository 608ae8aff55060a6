package tokenserver

import (
	"errors"
	"net/http"
	"time"

	"github.com/oauth-client-operator/oauth-client-operator/pkg/verifier"
)

// Sender-constrained tokens (DPoP, RFC 9449). A token request may carry one DPoP
// header: a proof, signed by a key the client holds, that names this request (htm
// POST, htu the token URL). A valid proof makes the token DPoP-bound: token_type DPoP
// and the claim cnf.jkt, the thumbprint of the proof's key, so that a resource server
// accepts the token only with a proof of that key. An invalid proof is refused
// (400 invalid_dpop_proof), never turned into a bearer token; a client or an API with
// spec.requireDPoP gets no token without one.
//
// The proof is checked by pkg/verifier's CheckDPoPProof, the one implementation of the
// proof rules (algorithms, jwk, htu comparison, iat window) that resource servers use
// too. It is checked once the client has authenticated and passed its own rate
// limit, so an anonymous caller costs no signature verification and leaves nothing in
// memory; its jti is then remembered in a replayCache of its own (dpop.replayCacheSize,
// the same shares per namespace and client as assertion ids) until the proof is too
// old to be accepted. The jti is remembered per proof key, whichever client presents
// the proof: a proof is used once on a replica, by anyone.

// errInvalidDPoPProof is the error code of a refused DPoP proof (RFC 9449 §5).
const errInvalidDPoPProof = "invalid_dpop_proof"

// dpopFullRetryAfter is the Retry-After of a refusal for a full DPoP replay cache:
// proof ids are forgotten after dpop.proofMaxAge (60 s by default).
const dpopFullRetryAfter = 5 * time.Second

// DPoPAlgorithms are the dpop_signing_alg_values_supported of the metadata: the
// algorithms pkg/verifier accepts in proofs.
func DPoPAlgorithms() []string { return verifier.DPoPAlgorithms() }

// dpopHeader reads the DPoP proof of a request: "" when it has none; more than one is
// refused (RFC 9449 §4.3).
func dpopHeader(h http.Header) (string, *oauthError) {
	values := h.Values("DPoP")
	switch {
	case len(values) == 0:
		return "", nil
	case len(values) > 1:
		return "", dpopRefused(ReasonDPoPProofMalformed, "send one DPoP header, not several")
	case values[0] == "":
		return "", dpopRefused(ReasonDPoPProofMalformed, "the DPoP header is empty")
	}
	return values[0], nil
}

// bindDPoP decides whether the token of an authorized request g is bound, from its
// proof: the thumbprint of the key it is bound to, "" for a bearer token, or why the
// request is refused.
func (s *Server) bindDPoP(proof string, g *grant) (string, *oauthError) {
	if proof == "" {
		if g.client.requireDPoP || g.api.requireDPoP {
			return "", dpopRefused(ReasonDPoPProofRequired, "a DPoP proof is required: this client's or this audience's tokens are DPoP-bound")
		}
		return "", nil
	}
	now, maxAge := s.clock.Now(), s.cfg.DPoP.ProofMaxAge.Duration
	p, err := verifier.CheckDPoPProof(proof, verifier.DPoPProofOptions{
		Method: http.MethodPost, URL: s.cfg.TokenURL(), MaxAge: maxAge, Leeway: assertionLeeway, Now: now,
	})
	if perr, ok := errors.AsType[*verifier.DPoPProofError](err); ok {
		return "", dpopRefused(dpopReason[perr.Check], perr.Description)
	} else if err != nil { // CheckDPoPProof returns no other error
		return "", dpopRefused(ReasonDPoPProofMalformed, "invalid DPoP proof")
	}
	// Remembered a second longer than the proof could be accepted; the id is the key's
	// (whoever presents the proof), the room the client's.
	switch s.dpopReplay.firstUseOf(g.client.namespace, g.clientID, idDigest(p.Thumbprint, p.ID), p.IssuedAt.Add(maxAge+time.Second), now) {
	case "":
		return p.Thumbprint, nil
	case ReasonReplayCacheFull:
		return "", &oauthError{status: http.StatusServiceUnavailable, code: errTemporarilyUnavail,
			description: "too many DPoP proofs of this client are in use; retry later", retryAfter: dpopFullRetryAfter,
			reason: ReasonDPoPReplayCacheFull}
	default:
		return "", dpopRefused(ReasonDPoPProofReplayed, "the DPoP proof was used before: make one for each request")
	}
}

// dpopReason is the Reason of each check a proof can fail at the token endpoint (ath
// is checked by resource servers only).
var dpopReason = map[verifier.DPoPCheck]Reason{
	verifier.DPoPCheckMalformed: ReasonDPoPProofMalformed,
	verifier.DPoPCheckType:      ReasonDPoPProofMalformed,
	verifier.DPoPCheckAlgorithm: ReasonDPoPProofAlgorithm,
	verifier.DPoPCheckKey:       ReasonDPoPProofKey,
	verifier.DPoPCheckSignature: ReasonDPoPProofSignature,
	verifier.DPoPCheckMethod:    ReasonDPoPProofMismatch,
	verifier.DPoPCheckURL:       ReasonDPoPProofMismatch,
	verifier.DPoPCheckTime:      ReasonDPoPProofTime,
}

// dpopRefused is the answer to a request whose proof is missing or refused.
func dpopRefused(reason Reason, description string) *oauthError {
	if reason == "" {
		reason = ReasonDPoPProofMalformed
	}
	return badRequest(reason, errInvalidDPoPProof, description)
}
