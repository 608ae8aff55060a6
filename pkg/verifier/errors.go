package verifier

import (
	"errors"
	"fmt"
)

// Sentinel errors returned (wrapped) by this package. Test for them with
// errors.Is.
var (
	// ErrInvalidToken is wrapped by every rejection of a token: malformed,
	// badly signed, expired, for another audience, and so on. The error's
	// message says which check failed; it never contains the token.
	ErrInvalidToken = errors.New("invalid token")

	// ErrInsufficientScope is returned by Claims.RequireScopes when a valid
	// token lacks a required scope.
	ErrInsufficientScope = errors.New("insufficient scope")

	// ErrKeysUnavailable is returned by Verify when the token could not be
	// checked because no usable signing key could be obtained from the
	// issuer (JWKS or metadata unreachable, malformed or empty). It is a
	// server-side condition, not a verdict on the token, and does not wrap
	// ErrInvalidToken.
	ErrKeysUnavailable = errors.New("signing keys unavailable")
)

// rejection is the error for a token that failed a check. Reason is a fixed,
// human-readable description safe to show to clients.
type rejection struct {
	reason string
}

func (e *rejection) Error() string { return ErrInvalidToken.Error() + ": " + e.reason }

func (e *rejection) Unwrap() error { return ErrInvalidToken }

// reject returns an error wrapping ErrInvalidToken with a fixed reason.
func reject(reason string) error { return &rejection{reason: reason} }

// unavailable returns an error wrapping ErrKeysUnavailable and, if non-nil, cause.
func unavailable(cause error) error {
	if cause == nil {
		return ErrKeysUnavailable
	}
	return fmt.Errorf("%w: %w", ErrKeysUnavailable, cause)
}
