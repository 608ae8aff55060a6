package tokenserver

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"
)

// OAuth 2.0 error codes (RFC 6749 §5.2, RFC 8707 §2).
const (
	errInvalidRequest       = "invalid_request"
	errInvalidClient        = "invalid_client"
	errUnsupportedGrantType = "unsupported_grant_type"
	errInvalidScope         = "invalid_scope"
	errInvalidTarget        = "invalid_target"
	errServerError          = "server_error"
	errTemporarilyUnavail   = "temporarily_unavailable"
)

// oauthError is an error answer of the token endpoint. Its description is shown to the
// client, so it never holds a secret.
type oauthError struct {
	status      int
	code        string
	description string
	// retryAfter is sent as Retry-After (whole seconds, at least 1) when set.
	retryAfter time.Duration
	// reason says why, for the audit record and the metrics; never sent.
	reason Reason
}

func (e *oauthError) Error() string { return e.code + ": " + e.description }

func badRequest(reason Reason, code, description string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: code, description: description, reason: reason}
}

// authFailed is the one answer to every failed client authentication (an unknown
// client, a wrong secret, a bad assertion, a disabled client, ...), so that none can be
// told from the others; only the reason, which the client never sees, differs.
func authFailed(reason Reason) *oauthError {
	return &oauthError{status: http.StatusUnauthorized, code: errInvalidClient, description: "client authentication failed", reason: reason}
}

// realm is the realm of WWW-Authenticate challenges.
const realm = "oauth-client-operator"

// noStore sets the headers every token-endpoint answer carries (RFC 6749 §5.1).
// Header values shared by every answer (net/http never modifies them).
var (
	valueNoStore = []string{"no-store"}
	valueNoCache = []string{"no-cache"}
	valueJSON    = []string{"application/json"}
)

func noStore(h http.Header) {
	h["Cache-Control"] = valueNoStore
	h["Pragma"] = valueNoCache
}

func writeError(w http.ResponseWriter, e *oauthError) {
	h := w.Header()
	noStore(h)
	h["Content-Type"] = valueJSON
	if e.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
	}
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(e.retryAfter.Seconds()))))
	}
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{e.code, e.description})
}
