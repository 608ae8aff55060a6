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
// valid access token (RFC 6750 "Authorization: Bearer <token>", scheme
// case-insensitive) granted every one of requiredScopes. Admitted requests
// reach the next handler with the token's claims in their context (see
// ClaimsFromContext). Other requests are answered, with a JSON body
// {"error": …, "error_description": …}, Content-Type application/json and
// Cache-Control no-store:
//
//   - no bearer credentials (no Authorization header, or another scheme):
//     401, WWW-Authenticate: Bearer realm="<Audience>" without error code;
//   - malformed Authorization header or invalid token: 401,
//     WWW-Authenticate: Bearer realm="…", error="invalid_token",
//     error_description="<failed check>";
//   - a required scope missing: 403, WWW-Authenticate: Bearer realm="…",
//     error="insufficient_scope", scope="<requiredScopes>";
//   - the token cannot be checked because no signing key is available
//     (ErrKeysUnavailable, e.g. the issuer is unreachable and no key is
//     cached): 503 with Retry-After: 5, since this is a server problem and
//     not a verdict on the token.
//
// The token is never logged or echoed. Middleware panics if a required scope
// is not a valid RFC 6749 scope token.
func (v *Verifier) Middleware(requiredScopes ...string) func(http.Handler) http.Handler {
	for _, s := range requiredScopes {
		if !validScopeToken(s) {
			panic("verifier: Middleware: invalid scope token " + strconv.Quote(s))
		}
	}
	scope := strings.Join(requiredScopes, " ")
	realm := `Bearer realm="` + headerSafe(v.cfg.Audience) + `"`
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, present, ok := bearerToken(r.Header)
			if !present {
				writeError(w, http.StatusUnauthorized, realm, "unauthorized", "bearer token required")
				return
			}
			if !ok {
				invalidToken(w, realm, "malformed Authorization header")
				return
			}
			claims, err := v.Verify(r.Context(), token)
			if errors.Is(err, ErrKeysUnavailable) {
				w.Header().Set("Retry-After", strconv.Itoa(int(unavailableRetry.Seconds())))
				writeError(w, http.StatusServiceUnavailable, "", "temporarily_unavailable", "token signing keys unavailable, retry later")
				return
			}
			if err != nil {
				reason := "invalid token"
				if rej, ok := errors.AsType[*rejection](err); ok {
					reason = rej.reason
				}
				invalidToken(w, realm, reason)
				return
			}
			if err := claims.RequireScopes(requiredScopes...); err != nil {
				writeError(w, http.StatusForbidden, realm+`, error="insufficient_scope", scope="`+scope+`"`,
					"insufficient_scope", "token lacks a required scope: "+scope)
				return
			}
			next.ServeHTTP(w, r.WithContext(ContextWithClaims(r.Context(), claims)))
		})
	}
}

// bearerToken extracts the bearer token of an Authorization header. present
// is false when there are no bearer credentials at all; ok is false when
// they are malformed.
func bearerToken(h http.Header) (token string, present, ok bool) {
	values := h.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", false, false
	case len(values) > 1:
		return "", true, false
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false, false // another scheme: no bearer credentials
	}
	token = strings.TrimSpace(rest)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", true, false
	}
	return token, true, true
}

func invalidToken(w http.ResponseWriter, realm, reason string) {
	writeError(w, http.StatusUnauthorized,
		realm+`, error="invalid_token", error_description="`+headerSafe(reason)+`"`,
		"invalid_token", reason)
}

// writeError writes an error response; challenge, if not empty, is the
// WWW-Authenticate header.
func writeError(w http.ResponseWriter, status int, challenge, code, description string) {
	h := w.Header()
	if challenge != "" {
		h.Set("WWW-Authenticate", challenge)
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
