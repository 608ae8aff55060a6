package tokenserver

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestAppendClaimsMatchesEncodingJSON(t *testing.T) {
	for _, c := range []claims{
		{Issuer: "https://issuer.test", Subject: "shop.erp-sync", Audience: "back-office", ExpiresAt: 1800003600,
			IssuedAt: 1800000000, NotBefore: 1800000000, ID: "abc", ClientID: "shop.erp-sync", Scope: "users:read users:write"},
		{Issuer: "http://127.0.0.1:8443", Subject: "a.b", Audience: `urn:x:"quoted"\back`, ID: "j", ClientID: "a.b"},
		{Issuer: "https://ünïcode.example/\u2028", Subject: "a.b", Audience: "tab\there", ID: "\x00", ClientID: "a.b", Scope: "<&>"},
		{Issuer: "https://issuer.test", Subject: "a.b", Audience: "api", ID: "j", ClientID: "a.b",
			Confirmation: &confirmation{JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}},
	} {
		var fromHand, fromJSON map[string]any
		if err := json.Unmarshal(appendClaims(nil, &c), &fromHand); err != nil {
			t.Fatalf("hand-written claims are not JSON: %v: %s", err, appendClaims(nil, &c))
		}
		want, _ := json.Marshal(&c)
		if err := json.Unmarshal(want, &fromJSON); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fromHand, fromJSON) {
			t.Errorf("claims differ:\nhand %v\njson %v", fromHand, fromJSON)
		}
	}
}

func TestAppendTokenResponseMatchesEncodingJSON(t *testing.T) {
	for _, r := range []tokenResponse{
		{AccessToken: "eyJ.eyJ.sig", TokenType: "Bearer", ExpiresIn: 3600, Scope: "users:read"},
		{AccessToken: "a.b.c", TokenType: "Bearer", ExpiresIn: 1},
		{AccessToken: "a.b.c", TokenType: "DPoP", ExpiresIn: 60},
		{AccessToken: "x.y.z", IssuedTokenType: TokenTypeAccessToken, TokenType: "Bearer", ExpiresIn: 60, Scope: "a b"},
	} {
		var fromHand, fromJSON map[string]any
		if err := json.Unmarshal(appendTokenResponse(nil, &r), &fromHand); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(&r)
		_ = json.Unmarshal(want, &fromJSON)
		if !reflect.DeepEqual(fromHand, fromJSON) {
			t.Errorf("response differs:\nhand %v\njson %v", fromHand, fromJSON)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "\x00\x1f\x7f", "ü\u2028", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got string
		if err := json.Unmarshal(appendString(nil, s), &got); err != nil {
			t.Fatalf("%q: not a JSON string: %v", s, err)
		}
		var want string
		b, _ := json.Marshal(s)
		_ = json.Unmarshal(b, &want)
		if got != want {
			t.Fatalf("%q: decoded %q, encoding/json gives %q", s, got, want)
		}
	})
}
