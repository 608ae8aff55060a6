package verifier

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// TestParseJWKSPrivateJWK: a JWK that also carries the private key (a
// misconfigured issuer) yields only its public key.
func TestParseJWKSPrivateJWK(t *testing.T) {
	es := freshECKey("es-priv")
	private := must(json.Marshal(jose.JSONWebKey{Key: es.priv, KeyID: es.kid, Algorithm: "ES256", Use: "sig"}))
	keys, err := parseJWKS(must(json.Marshal(map[string]any{"keys": []json.RawMessage{private}})))
	if err != nil {
		t.Fatal(err)
	}
	k := keys["es-priv"]
	if k == nil {
		t.Fatal("key skipped")
	}
	pub, ok := k.key.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(es.priv.Public()) {
		t.Errorf("key = %T, want the public key", k.key)
	}
}

// TestJWKSKeysBounded: a JWK Set of thousands of keys (an issuer's, hostile or
// broken) is kept to its first maxJWKSKeys, since a token without kid is tried with
// every key.
func TestJWKSKeysBounded(t *testing.T) {
	t.Parallel()
	var keys []string
	for i := range 500 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(jose.JSONWebKey{Key: k.Public(), KeyID: fmt.Sprint("k", i), Algorithm: "ES256", Use: "sig"})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, string(b))
	}
	got, err := parseJWKS([]byte(`{"keys":[` + strings.Join(keys, ",") + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != maxJWKSKeys || got["k0"] == nil {
		t.Errorf("%d keys kept (k0 %v), want the first %d", len(got), got["k0"] != nil, maxJWKSKeys)
	}
}
