package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// Middleware returns HTTP middleware that admits only requests bearing a
// valid access token granted every one of requiredScopes: a bearer token
// (RFC 6750 "Authorization: Bearer <token>"), or a DPoP-bound token with its
// proof (RFC 9449 "Authorization: DPoP <token>" and one "DPoP: <proof>"
// header, checked by VerifyDPoP against the request's method and URL, see
// Config.ExternalURL); schemes are case-insensitive. With
// Config.RequireDPoP only the latter. Admitted requests reach the next
// handler with the token's claims in their context (see ClaimsFromContext).
// Other requests are answered, with a JSON body {"error": …,
// "error_description": …}, Content-Type application/json and Cache-Control
// no-store, and WWW-Authenticate challenges: `Bearer realm="<Audience>"`
// (unless Config.RequireDPoP), then `DPoP realm="<Audience>",
// algs="<DPoPAlgorithms>"`; the challenge of the scheme the request used
// carries the error:
//
//   - no credentials (no Authorization header, or another scheme): 401,
//     the challenges without error code;
//   - malformed Authorization header or invalid token: 401,
//     error="invalid_token", error_description="<failed check>"; a
//     DPoP-bound token presented as Bearer is an invalid token (RFC 9449
//     §7.1), and so is a bearer token when Config.RequireDPoP is set;
//   - DPoP scheme without exactly one DPoP header, or a proof refused
//     (replayed, for another method or URL, too old, …): 401,
//     error="invalid_dpop_proof" on the DPoP challenge; a proof made with
//     another key than the token is bound to: error="invalid_token";
//   - a required scope missing: 403, error="insufficient_scope",
//     scope="<requiredScopes>";
//   - the token cannot be checked because no signing key is available
//     (ErrKeysUnavailable, e.g. the issuer is unreachable and no key is
//     cached), or a valid proof cannot be remembered against replay
//     (ErrDPoPReplayCacheFull): 503 with Retry-After: 5, since this is a
//     server problem and not a verdict on the request.
//
// The token and the proof are never logged or echoed. Middleware panics if
// a required scope is not a valid RFC 6749 scope token.
func (v *Verifier) Middleware(requiredScopes ...string) func(http.Handler) http.Handler {
	for _, s := range requiredScopes {
		if !validScopeToken(s) {
			panic("verifier: Middleware: invalid scope token " + strconv.Quote(s))
		}
	}
	scope := strings.Join(requiredScopes, " ")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			claims, scheme, fail := v.authenticate(r)
			if fail == nil {
				if err := claims.RequireScopes(requiredScopes...); err != nil {
					fail = &failure{status: http.StatusForbidden, scheme: scheme, code: "insufficient_scope",
						description: "token lacks a required scope: " + scope, scope: scope}
				}
			}
			if fail != nil {
				v.writeFailure(w, fail)
				return
			}
			next.ServeHTTP(w, r.WithContext(ContextWithClaims(r.Context(), claims)))
		})
	}
}

// Authentication schemes of the Authorization header.
const (
	schemeBearer = "Bearer"
	schemeDPoP   = "DPoP"
)

// failure is the answer to a request the Middleware refuses.
type failure struct {
	status int
	// scheme is the challenge that carries the error (schemeBearer or
	// schemeDPoP); "" for none.
	scheme            string
	code, description string
	// scope is the scope parameter of an insufficient_scope challenge.
	scope string
}

// authenticate verifies the credentials of r: the claims of its token and
// the scheme it came with, or why it is refused.
func (v *Verifier) authenticate(r *http.Request) (*Claims, string, *failure) {
	scheme, token, present, ok := credentials(r.Header)
	if !present {
		description := "bearer token required"
		if v.cfg.RequireDPoP {
			description = "DPoP-bound token required"
		}
		return nil, "", &failure{status: http.StatusUnauthorized, code: "unauthorized", description: description}
	}
	if scheme == schemeBearer && v.cfg.RequireDPoP {
		return nil, schemeDPoP, invalid(schemeDPoP, "invalid_token", "this API accepts DPoP-bound tokens only")
	}
	if !ok {
		return nil, scheme, invalid(scheme, "invalid_token", "malformed Authorization header")
	}
	var claims *Claims
	var err error
	switch {
	case scheme == schemeBearer:
		claims, err = v.Verify(r.Context(), token)
	default:
		proofs := r.Header.Values("DPoP")
		if len(proofs) != 1 {
			return nil, scheme, invalid(scheme, "invalid_dpop_proof", "exactly one DPoP proof header is required")
		}
		claims, err = v.VerifyDPoP(r.Context(), token, DPoPRequest{Proof: proofs[0], Method: r.Method, URL: v.requestURL(r)})
	}
	if err == nil {
		return claims, scheme, nil
	}
	if errors.Is(err, ErrKeysUnavailable) {
		return nil, scheme, &failure{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
			description: "token signing keys unavailable, retry later"}
	}
	if errors.Is(err, ErrDPoPReplayCacheFull) {
		return nil, scheme, &failure{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
			description: "too many DPoP proofs in use, retry later"}
	}
	if perr, ok := errors.AsType[*DPoPProofError](err); ok {
		code := "invalid_dpop_proof"
		if perr.Check == DPoPCheckBinding {
			code = "invalid_token" // RFC 9449 §7.1: the token's key binding
		}
		return nil, scheme, invalid(scheme, code, perr.Description)
	}
	reason := "invalid token"
	if rej, ok := errors.AsType[*rejection](err); ok {
		reason = rej.reason
	}
	return nil, scheme, invalid(scheme, "invalid_token", reason)
}

func invalid(scheme, code, description string) *failure {
	return &failure{status: http.StatusUnauthorized, scheme: scheme, code: code, description: description}
}

// credentials extracts the scheme and token of an Authorization header.
// present is false when there are no bearer or DPoP credentials at all; ok
// is false when they are malformed.
func credentials(h http.Header) (scheme, token string, present, ok bool) {
	values := h.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", "", false, false
	case len(values) > 1:
		return schemeBearer, "", true, false
	}
	name, rest, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	switch {
	case strings.EqualFold(name, schemeBearer):
		scheme = schemeBearer
	case strings.EqualFold(name, schemeDPoP):
		scheme = schemeDPoP
	default:
		return "", "", false, false // another scheme: no credentials of ours
	}
	token = strings.TrimSpace(rest)
	if token == "" || strings.ContainsAny(token, " \t") {
		return scheme, "", true, false
	}
	return scheme, token, true, true
}

// writeFailure writes the answer to a refused request: its challenges (none
// for a server error), then the error.
func (v *Verifier) writeFailure(w http.ResponseWriter, f *failure) {
	if f.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(unavailableRetry.Seconds())))
		writeError(w, f.status, nil, f.code, f.description)
		return
	}
	realm := `realm="` + headerSafe(v.cfg.Audience) + `"`
	withError := func(scheme string) string {
		if f.scheme != scheme {
			return ""
		}
		if f.scope != "" {
			return `, error="` + f.code + `", scope="` + f.scope + `"`
		}
		return `, error="` + f.code + `", error_description="` + headerSafe(f.description) + `"`
	}
	var challenges []string
	if !v.cfg.RequireDPoP {
		challenges = append(challenges, schemeBearer+" "+realm+withError(schemeBearer))
	}
	challenges = append(challenges, schemeDPoP+" "+realm+`, algs="`+strings.Join(dpopAlgorithms, " ")+`"`+withError(schemeDPoP))
	writeError(w, f.status, challenges, f.code, f.description)
}

// writeError writes an error response with the WWW-Authenticate
// challenges, if any.
func writeError(w http.ResponseWriter, status int, challenges []string, code, description string) {
	h := w.Header()
	for _, c := range challenges {
		h.Add("WWW-Authenticate", c)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, description})
}

// headerSafe drops the characters that may not appear in an RFC 6750
// quoted parameter value (only %x20-21 / %x23-5B / %x5D-7E may).
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// validScopeToken reports whether s is an RFC 6749 §3.3 scope-token.
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return false
		}
	}
	return true
}

// claimsKey is the context key of the verified claims.
type claimsKey struct{}

// ContextWithClaims returns a copy of ctx carrying claims, as Middleware
// does for admitted requests. It is useful to test handlers.
func ContextWithClaims(ctx context.Context, claims *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, claims)
}

// ClaimsFromContext returns the claims of the verified access token that
// Middleware put in ctx, and whether there were any.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}
