package tokenserver

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// tokenRequest is a parsed token request: the client-credentials grant, or a token
// of a trusted issuer presented as the grant (grants.go).
type tokenRequest struct {
	grantType string
	// clientID is the client_id parameter or the Basic user name; "" when neither was
	// sent.
	clientID string
	// cred is what the client presented to prove it is clientID.
	cred credential
	// scope is the space-separated scope parameter, as sent.
	scope    string
	audience string
	resource string
	// dpop is the DPoP proof of the request's DPoP header (RFC 9449), "" when none.
	dpop string
}

// credential is what a request presents to authenticate its client. Parsing fills it
// without knowing any client or method; an authenticator judges it.
type credential struct {
	kind credentialKind
	// secret is the client secret (body or Basic), for credSecret.
	secret string
	// assertion is the client_assertion JWT, for credAssertion, or the grant's token
	// (assertion, subject_token), for credGrant.
	assertion string
	// once is the assertion's id, checked as unused by its authenticator, to be
	// recorded when the request is granted a token; nil when there is none to record.
	once *pendingUse
	// expiresAt is the exp of the token the authenticator verified, when one limits
	// the access token's lifetime (tokens of the one rule model); zero otherwise.
	expiresAt time.Time
}

type credentialKind int

const (
	credNone credentialKind = iota
	// credSecret: a client_secret, in the body or by HTTP Basic.
	credSecret
	// credAssertion: a JWT client assertion (RFC 7521, RFC 7523 §2.2).
	credAssertion
	// credGrant: a JWT of a trusted issuer presented as the grant itself: the
	// assertion of the JWT-bearer grant (RFC 7523 §2.1) or the subject_token of a token
	// exchange (RFC 8693). It authenticates the client its rules match.
	credGrant
)

// maxAssertionBytes bounds a client assertion: a Kubernetes ServiceAccount token or a
// private_key_jwt assertion is 1-2 KiB.
const maxAssertionBytes = 8 << 10

// JWTBearerAssertionType is the client_assertion_type of JWT client assertions
// (RFC 7523 §2.2).
const JWTBearerAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Parameters of the token request (RFC 6749 §4.4, RFC 7521 §4.2, RFC 8707 §2, audience
// as many servers accept it).
var knownParams = map[string]bool{
	"grant_type": true, "client_id": true, "client_secret": true,
	"client_assertion": true, "client_assertion_type": true,
	"scope": true, "audience": true, "resource": true,
	// RFC 7523 §2.1 and RFC 8693 §2.1 (grants.go).
	"assertion": true, "subject_token": true, "subject_token_type": true, "requested_token_type": true,
	"actor_token": true, "actor_token_type": true,
}

// parseTokenRequest reads a token request from an application/json or
// application/x-www-form-urlencoded body, with client credentials in the body or in
// HTTP Basic authentication. It never echoes a parameter's value in an error.
func parseTokenRequest(w http.ResponseWriter, r *http.Request, maxBody int64) (*tokenRequest, *oauthError) {
	if r.URL.RawQuery != "" {
		return nil, badRequest(ReasonMalformedRequest, errInvalidRequest, "parameters must be sent in the request body, not the URL")
	}
	mediaType, err := contentType(r.Header.Get("Content-Type"))
	if err != nil || (mediaType != "application/json" && mediaType != "application/x-www-form-urlencoded") {
		// Refused before the body is read.
		return nil, badRequest(ReasonMalformedRequest, errInvalidRequest, "Content-Type must be application/json or application/x-www-form-urlencoded")
	}
	bufp := bodyBuffers.Get().(*[]byte)
	defer putBodyBuffer(bufp)
	body, err := readBody(http.MaxBytesReader(w, r.Body, maxBody), (*bufp)[:0])
	*bufp = body
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &oauthError{status: http.StatusRequestEntityTooLarge, code: errInvalidRequest, description: "request body too large", reason: ReasonMalformedRequest}
		}
		return nil, badRequest(ReasonMalformedRequest, errInvalidRequest, "could not read the request body")
	}
	var params map[string]string
	if mediaType == "application/json" {
		params, err = parseJSONParams(body)
	} else {
		params, err = parseFormParams(body)
	}
	if err != nil {
		return nil, badRequest(ReasonMalformedRequest, errInvalidRequest, err.Error())
	}
	var authorization []string
	for _, v := range r.Header.Values("Authorization") {
		if v != "" { // an empty header is no credential
			authorization = append(authorization, v)
		}
	}
	req, oerr := buildRequest(params, authorization)
	if oerr != nil {
		return nil, oerr
	}
	if req.dpop, oerr = dpopHeader(r.Header); oerr != nil {
		return nil, oerr
	}
	return req, nil
}

// bodyBuffers recycles request-body buffers: parsing copies every value it keeps, so a
// buffer is free again once the request is parsed.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func putBodyBuffer(b *[]byte) {
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		bodyBuffers.Put(b)
	}
}

// readBody appends everything r yields to buf.
func readBody(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// contentType returns the media type of a Content-Type header; the two usual values
// skip the general parser, which allocates.
func contentType(h string) (string, error) {
	switch h {
	case "application/json", "application/x-www-form-urlencoded":
		return h, nil
	}
	mediaType, _, err := mime.ParseMediaType(h)
	return mediaType, err
}

func buildRequest(params map[string]string, authorization []string) (*tokenRequest, *oauthError) {
	req := &tokenRequest{
		grantType: params["grant_type"],
		clientID:  params["client_id"],
		scope:     params["scope"],
		audience:  params["audience"],
		resource:  params["resource"],
	}
	if oerr := req.readCredential(params, authorization); oerr != nil {
		return nil, oerr
	}
	if req.grantType == "" {
		return nil, badRequest(ReasonMalformedRequest, errInvalidRequest, "grant_type is required")
	}
	if oerr := req.readGrant(params); oerr != nil {
		return nil, oerr
	}
	if req.cred.kind == credNone || (req.cred.kind == credSecret && (req.clientID == "" || req.cred.secret == "")) {
		return nil, authFailed(ReasonNoCredential)
	}
	if oerr := req.checkTarget(); oerr != nil {
		return nil, oerr
	}
	return req, nil
}

// readCredential finds what the request presents to authenticate its client: a secret
// in the body, Basic credentials, or a client assertion; at most one of them (RFC 6749
// §2.3). An empty parameter counts as absent (RFC 6749 §3.1).
func (req *tokenRequest) readCredential(params map[string]string, authorization []string) *oauthError {
	if len(authorization) > 1 {
		return badRequest(ReasonMalformedRequest, errInvalidRequest, "more than one Authorization header")
	}
	var methods int
	if secret := params["client_secret"]; secret != "" {
		req.cred = credential{kind: credSecret, secret: secret}
		methods++
	}
	assertion, assertionType := params["client_assertion"], params["client_assertion_type"]
	if assertion != "" || assertionType != "" {
		if assertionType != JWTBearerAssertionType {
			return badRequest(ReasonMalformedRequest, errInvalidRequest, "client_assertion_type must be "+JWTBearerAssertionType)
		}
		if assertion == "" {
			return badRequest(ReasonMalformedRequest, errInvalidRequest, "client_assertion is required with client_assertion_type")
		}
		if len(assertion) > maxAssertionBytes {
			// Real assertions are 1-2 KiB; a large one only costs verification time.
			return authFailed(ReasonAssertionTooLarge)
		}
		req.cred = credential{kind: credAssertion, assertion: assertion}
		methods++
	}
	if len(authorization) == 1 {
		id, secret, err := parseBasic(authorization[0])
		if err != nil {
			return &oauthError{status: http.StatusUnauthorized, code: errInvalidClient, description: err.Error(), reason: ReasonMalformedCredentials}
		}
		if req.clientID != "" && req.clientID != id {
			return badRequest(ReasonMalformedRequest, errInvalidRequest, "client_id in the body differs from the Authorization header")
		}
		req.clientID, req.cred = id, credential{kind: credSecret, secret: secret}
		methods++
	}
	if methods > 1 {
		return badRequest(ReasonMalformedRequest, errInvalidRequest, "the client authenticated in more than one way: send a client secret (body or Basic) or a client assertion, not several")
	}
	return nil
}

// checkTarget checks the requested audience or resource (RFC 8707).
func (req *tokenRequest) checkTarget() *oauthError {
	if req.audience != "" && req.resource != "" {
		return badRequest(ReasonMalformedRequest, errInvalidRequest, "send either audience or resource, not both")
	}
	if req.resource != "" {
		if u, err := url.Parse(req.resource); err != nil || !u.IsAbs() || u.Fragment != "" {
			return badRequest(ReasonMalformedRequest, errInvalidTarget, "resource must be an absolute URI without a fragment")
		}
	}
	return nil
}

// parseBasic decodes client_secret_basic credentials: base64 of the form-urlencoded
// client_id and client_secret joined by a colon (RFC 6749 §2.3.1).
func parseBasic(h string) (id, secret string, err error) {
	scheme, value, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", errors.New("the Authorization header must use the Basic scheme")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if err != nil {
		return "", "", errors.New("malformed Basic credentials")
	}
	rawID, rawSecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errors.New("malformed Basic credentials")
	}
	if id, err = url.QueryUnescape(rawID); err != nil {
		return "", "", errors.New("malformed Basic credentials")
	}
	if secret, err = url.QueryUnescape(rawSecret); err != nil {
		return "", "", errors.New("malformed Basic credentials")
	}
	return id, secret, nil
}

// parseJSONParams reads a flat JSON object of string values. A repeated parameter
// name, a non-string value of a known parameter, or anything but one object is an
// error; unknown parameters are ignored (RFC 6749 §3.2). The body is validated by
// encoding/json first, then walked once: this runs on every token request, and the
// generic json.Decoder token API costs several times more.
func parseJSONParams(body []byte) (map[string]string, error) {
	if !json.Valid(body) || !utf8.Valid(body) {
		return nil, errors.New("malformed JSON body")
	}
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return nil, errors.New("the body must be a JSON object")
	}
	params := make(map[string]string, 4)
	seen := make(map[string]struct{}, 4)
	i = skipSpace(body, i+1)
	for body[i] != '}' {
		end := stringEnd(body, i)
		name, err := unquote(body[i:end])
		if err != nil {
			return nil, errors.New("malformed JSON body")
		}
		if _, dup := seen[name]; dup {
			return nil, errors.New("parameter " + quoteName(name) + " is repeated")
		}
		seen[name] = struct{}{}
		i = skipSpace(body, end)
		i = skipSpace(body, i+1) // the colon
		vEnd := valueEnd(body, i)
		if knownParams[name] {
			if body[i] != '"' {
				return nil, errors.New("parameter " + name + " must be a string")
			}
			if params[name], err = unquote(body[i:vEnd]); err != nil {
				return nil, errors.New("malformed JSON body")
			}
		}
		i = skipSpace(body, vEnd)
		if body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	return params, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the JSON string that starts at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index after the JSON value that starts at b[i]; b is valid JSON.
func valueEnd(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			i = stringEnd(b, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		case ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return i
}

// unquote decodes a JSON string literal; the common case has no escapes.
func unquote(lit []byte) (string, error) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return "", errors.New("not a string")
	}
	inner := lit[1 : len(lit)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), nil
	}
	var s string
	err := json.Unmarshal(lit, &s)
	return s, err
}

// parseFormParams reads an application/x-www-form-urlencoded body. A repeated known
// parameter is an error (RFC 6749 §3.2).
func parseFormParams(body []byte) (map[string]string, error) {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errors.New("malformed form body")
	}
	params := make(map[string]string, len(values))
	for name, v := range values {
		if !knownParams[name] {
			continue
		}
		if len(v) > 1 {
			return nil, errors.New("parameter " + name + " is repeated")
		}
		params[name] = v[0]
	}
	return params, nil
}

// quoteName names a parameter in an error, safely: unknown names are not echoed.
func quoteName(name string) string {
	if knownParams[name] {
		return name
	}
	return "(unknown)"
}
