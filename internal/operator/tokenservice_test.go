package operator

import (
	"io"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// TestTokenServiceNotReadyWithoutKeysOrIndex: the readiness check fails until the
// replica has a signing key, has indexed every client and listens.
func TestTokenServiceNotReadyWithoutKeysOrIndex(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte("issuer: https://issuer.test"))
	if err != nil {
		t.Fatal(err)
	}
	keys := &signing.Keyring{}
	ts := newTokenService(tokenServiceOptions{config: cfg, keys: keys, audit: io.Discard, log: logr.Discard()})
	if err := ts.Ready(nil); err == nil || err.Error() != "no signing key loaded yet" {
		t.Fatalf("without keys: %v", err)
	}
	key, err := signing.GenerateKey(signing.ES256, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Store(&signing.KeySet{CurrentID: key.ID, Keys: []*signing.Key{key}}, "1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := ts.Ready(nil); err == nil || err.Error() != "clients not indexed yet" {
		t.Fatalf("with keys, before the informers' lists: %v", err)
	}
}
