package tokenserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseTokenRequest feeds arbitrary bodies, content types and Authorization
// headers to the request parser. It must never panic, must accept only complete
// client-credentials requests, and must answer every rejection with an RFC 6749 error
// that echoes none of the request.
func FuzzParseTokenRequest(f *testing.F) {
	seeds := []struct{ ct, body, auth string }{
		{"application/json", `{"grant_type":"client_credentials","client_id":"shop.erp-sync","client_secret":"s3cr3t"}`, ""},
		{"application/json", `{"grant_type":"client_credentials","client_id":"a.b","client_id":"c.d"}`, ""},
		{"application/json", `{"grant_type":"client_credentials","scope":["a"]}`, ""},
		{"application/json", `[1,2]`, ""},
		{"application/json", `{"grant_type":"client_credentials"}{}`, ""},
		{"application/json; charset=utf-8", `{"grant_type":"client_credentials","audience":"back-office","resource":"https://x"}`, "Basic c2hvcC5lcnAtc3luYzpzM2NyM3Q="},
		{"application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=shop.erp-sync&client_secret=s3cr3t&scope=a+b", ""},
		{"application/x-www-form-urlencoded", "grant_type=client_credentials", "Basic c2hvcC5lcnAtc3luYzpzM2NyM3Q="},
		{"application/x-www-form-urlencoded", "grant_type=password&username=u", ""},
		{"application/x-www-form-urlencoded", "%zz", "Basic %%%"},
		{"text/plain", "grant_type=client_credentials", ""},
		{"", "", "Bearer x"},
		{"application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=shop.erp-sync&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJ.eyJ.sig", ""},
		{"application/json", `{"grant_type":"client_credentials","client_assertion_type":"urn:ietf:params:oauth:client-assertion-type:jwt-bearer","client_assertion":"a.b.c","client_secret":"x"}`, ""},
		{"application/json", `{"grant_type":"client_credentials","client_assertion":"a.b.c"}`, "Basic c2hvcC5lcnAtc3luYzpzM2NyM3Q="},
	}
	for _, s := range seeds {
		f.Add(s.ct, []byte(s.body), s.auth)
	}
	codes := map[string]bool{errInvalidRequest: true, errInvalidClient: true, errUnsupportedGrantType: true, errInvalidTarget: true}
	f.Fuzz(func(t *testing.T, contentType string, body []byte, auth string) {
		r := httptest.NewRequest(http.MethodPost, TokenPath, bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		req, oerr := parseTokenRequest(httptest.NewRecorder(), r, 16<<10)
		if oerr != nil {
			if req != nil {
				t.Fatal("both a request and an error")
			}
			if !codes[oerr.code] || oerr.description == "" || oerr.status < 400 || oerr.status > 413 {
				t.Fatalf("unexpected error %+v", oerr)
			}
			if len(body) >= 16 && strings.Contains(oerr.description, string(body)) {
				t.Fatalf("error echoes the body: %q", oerr.description)
			}
			return
		}
		if req.grantType != "client_credentials" {
			t.Fatalf("accepted an incomplete request: %+v", req)
		}
		switch req.cred.kind {
		case credSecret:
			if req.clientID == "" || req.cred.secret == "" || req.cred.assertion != "" {
				t.Fatalf("accepted an incomplete secret: %+v", req)
			}
		case credAssertion:
			if req.cred.assertion == "" || req.cred.secret != "" {
				t.Fatalf("accepted an incomplete assertion: %+v", req)
			}
		default:
			t.Fatalf("accepted a request without credentials: %+v", req)
		}
		if req.audience != "" && req.resource != "" {
			t.Fatal("accepted both audience and resource")
		}
	})
}

// FuzzJSONParams checks the hand-written JSON walker against a straightforward
// reference built on encoding/json's token decoder: same acceptance, same parameters.
func FuzzJSONParams(f *testing.F) {
	for _, s := range []string{
		`{"grant_type":"client_credentials","client_id":"a.b","client_secret":"s"}`,
		` { "client_\u0069d" : "a.b" , "x" : {"y":[1,"}",{"z":null}]}, "scope":"a b" } `,
		`{"a":1,"a":2}`, `{"client_id":"x","client_id":"x"}`, `{"scope":["a"]}`, `{"x":"\"}\\"}`,
		`{}`, `[]`, `"x"`, `{"a":true,"b":false,"c":null,"d":-1.5e3}`, `{"client_secret":"\ud83d\ude00"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotErr := parseJSONParams(body)
		if !utf8.Valid(body) {
			if gotErr == nil {
				t.Fatalf("%q: accepted invalid UTF-8", body)
			}
			return
		}
		want, wantErr := referenceJSONParams(body)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: walker err %v, reference err %v", body, gotErr, wantErr)
		}
		if gotErr == nil && !maps.Equal(got, want) {
			t.Fatalf("%q: walker %v, reference %v", body, got, want)
		}
	})
}

func referenceJSONParams(body []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	params := map[string]string{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name := tok.(string)
		if seen[name] {
			return nil, errors.New("repeated")
		}
		seen[name] = true
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if knownParams[name] {
			s, ok := v.(string)
			if !ok {
				return nil, errors.New("not a string")
			}
			params[name] = s
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return params, nil
}
