package tokenserver

import (
	"encoding/json"
	"strconv"
)

// The token endpoint writes its two JSON documents by hand: they have fixed shapes,
// and encoding/json's reflection was a measurable share of a token request. Tests
// check the output against encoding/json.

// appendClaims appends the JSON claims set of an access token.
func appendClaims(b []byte, c *claims) []byte {
	b = append(b, `{"iss":`...)
	b = appendString(b, c.Issuer)
	b = append(b, `,"sub":`...)
	b = appendString(b, c.Subject)
	b = append(b, `,"aud":`...)
	b = appendString(b, c.Audience)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, c.ExpiresAt, 10)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, c.IssuedAt, 10)
	b = append(b, `,"nbf":`...)
	b = strconv.AppendInt(b, c.NotBefore, 10)
	b = append(b, `,"jti":`...)
	b = appendString(b, c.ID)
	b = append(b, `,"client_id":`...)
	b = appendString(b, c.ClientID)
	if c.Scope != "" {
		b = append(b, `,"scope":`...)
		b = appendString(b, c.Scope)
	}
	if c.Confirmation != nil {
		b = append(b, `,"cnf":{"jkt":`...)
		b = appendString(b, c.Confirmation.JKT)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendTokenResponse appends the successful token response (RFC 6749 §5.1).
func appendTokenResponse(b []byte, r *tokenResponse) []byte {
	b = append(b, `{"access_token":`...)
	b = appendString(b, r.AccessToken)
	if r.IssuedTokenType != "" {
		b = append(b, `,"issued_token_type":`...)
		b = appendString(b, r.IssuedTokenType)
	}
	b = append(b, `,"token_type":`...)
	b = appendString(b, r.TokenType)
	b = append(b, `,"expires_in":`...)
	b = strconv.AppendInt(b, r.ExpiresIn, 10)
	if r.Scope != "" {
		b = append(b, `,"scope":`...)
		b = appendString(b, r.Scope)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string. Printable ASCII, which is what claims hold
// in practice, is copied with the two required escapes; anything else goes through
// encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}
