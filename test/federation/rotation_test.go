//go:build integration

package federation

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/tokenserver"
)

// rotatingIssuer is a small OIDC issuer on loopback whose key a test rotates.
type rotatingIssuer struct {
	srv   *httptest.Server
	reads atomic.Int64 // of the keys
	mu    sync.Mutex
	kid   string
	key   *ecdsa.PrivateKey
}

func newRotatingIssuer(t *testing.T) *rotatingIssuer {
	t.Helper()
	r := &rotatingIssuer{}
	r.rotate(t, "key-1")
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": r.srv.URL, "jwks_uri": r.srv.URL + "/keys"})
		case "/keys":
			r.reads.Add(1)
			r.mu.Lock()
			set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &r.key.PublicKey, KeyID: r.kid, Algorithm: "ES256", Use: "sig"}}}
			r.mu.Unlock()
			w.Header().Set("Cache-Control", "max-age=3600")
			_ = json.NewEncoder(w).Encode(set)
		default:
			http.NotFound(w, req)
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *rotatingIssuer) rotate(t *testing.T, kid string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kid, r.key = kid, k
}

// token is a token for sub signed with the current key, under kid when given (a
// made-up one) or the key's own.
func (r *rotatingIssuer) token(t *testing.T, sub, kid string) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	now := clock.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": r.srv.URL, "sub": sub, "aud": issuer, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()})
	tok.Header["kid"] = r.kid
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(r.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRotatedKeyPickedUp: an external issuer rotates its key; a token signed with the
// new key is refused (unknown key) while the last read of the keys is under the
// refresh interval (10 s) old, and accepted by the first request after it, which reads
// them once. (The operator's clock moves; the keys' refresh interval is measured by
// it.)
func TestRotatedKeyPickedUp(t *testing.T) {
	namespace(t, "rotation", nil)
	r := newRotatingIssuer(t)
	create(t, &oauthv1alpha1.OAuthTrustedIssuer{ObjectMeta: metav1.ObjectMeta{Name: "rotating"}, Spec: oauthv1alpha1.OAuthTrustedIssuerSpec{
		Issuer: r.srv.URL, AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll},
	}})
	waitIssuer(t, "rotating", metav1.ConditionTrue, oauthv1alpha1.ReasonIssuerReady)
	id := federatedClient(t, "rotation", "app", "rotating", "app", nil)
	waitClient(t, id, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	if a := send(t, shapes["jwt-bearer"](id, r.token(t, "app", ""))); a.status != http.StatusOK {
		t.Fatalf("before the rotation: %d %s (%s)", a.status, a.raw, lastRefusal(t))
	}
	defer clock.offset.Store(0)

	// Past the refresh interval, a made-up key id reads the keys: the last read is now.
	clock.offset.Store(int64(11 * time.Second))
	if a := send(t, shapes["jwt-bearer"](id, r.token(t, "app", "made-up"))); a.status != http.StatusBadRequest {
		t.Fatalf("a made-up key id: %d %s", a.status, a.raw)
	}
	r.rotate(t, "key-2")
	before := r.reads.Load()
	if a := send(t, shapes["jwt-bearer"](id, r.token(t, "app", ""))); a.status != http.StatusBadRequest ||
		lastRefusal(t) != string(tokenserver.ReasonAssertionUnknownKey) {
		t.Fatalf("the new key within the refresh interval: %d, reason %s, want 400 %s", a.status, lastRefusal(t), tokenserver.ReasonAssertionUnknownKey)
	}
	// Once the interval has passed, the first token that names it reads the keys once.
	clock.offset.Store(int64(22 * time.Second))
	if a := send(t, shapes["jwt-bearer"](id, r.token(t, "app", ""))); a.status != http.StatusOK {
		t.Fatalf("the new key after the refresh interval: %d %s (%s)", a.status, a.raw, lastRefusal(t))
	}
	if n := r.reads.Load() - before; n != 1 {
		t.Errorf("%d reads of the keys for the rotation, want 1", n)
	}
}
