package verifier

import (
	"crypto/ecdsa"
	"encoding/json"
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
