package tokenserver

import (
	"crypto"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jwtv5 "github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// keyClient is a PrivateKeyJWT client's key as the client holds it.
type keyClient struct {
	id   string
	kid  string
	priv crypto.Signer
	alg  jwtv5.SigningMethod
}

func generateKeyClient(t *testing.T, alg signing.Algorithm) (keyClient, *signing.ClientKeyPair) {
	t.Helper()
	pair, err := signing.GenerateClientKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	priv := parsePrivate(t, pair.PrivateKeyPEM)
	methods := map[signing.Algorithm]jwtv5.SigningMethod{signing.ES256: jwtv5.SigningMethodES256, signing.RS256: jwtv5.SigningMethodRS256, signing.EdDSA: jwtv5.SigningMethodEdDSA}
	return keyClient{kid: pair.KeyID, priv: priv, alg: methods[alg]}, pair
}

func parsePrivate(t *testing.T, pemText string) crypto.Signer {
	t.Helper()
	for _, m := range []func([]byte) (any, error){
		func(b []byte) (any, error) { return jwtv5.ParseECPrivateKeyFromPEM(b) },
		func(b []byte) (any, error) { return jwtv5.ParseRSAPrivateKeyFromPEM(b) },
		func(b []byte) (any, error) { return jwtv5.ParseEdPrivateKeyFromPEM(b) },
	} {
		if k, err := m([]byte(pemText)); err == nil {
			return k.(crypto.Signer)
		}
	}
	t.Fatal("unparsable private key")
	return nil
}

// assert signs an assertion of c for audience aud, edited by edit.
func (c keyClient) assert(t *testing.T, aud string, now time.Time, edit func(jwtv5.MapClaims, map[string]any)) string {
	t.Helper()
	claims := jwtv5.MapClaims{
		"iss": c.id, "sub": c.id, "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": rand.String(22),
	}
	tok := jwtv5.NewWithClaims(c.alg, claims)
	tok.Header["kid"] = c.kid
	if edit != nil {
		edit(claims, tok.Header)
	}
	s, err := tok.SignedString(c.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keyPairClient creates a PrivateKeyJWT client with a generated key pair in its Secret,
// as the controller writes it.
func (w *world) keyPairClient(t *testing.T, ns, name string, spec oauthv1alpha1.OAuthClientSpec, alg signing.Algorithm) keyClient {
	t.Helper()
	spec.Authentication = &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthPrivateKeyJWT}
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	w.create(oc)
	kc, pair := generateKeyClient(t, alg)
	kc.id = oc.ClientID()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
			oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue, oauthv1alpha1.ClientLabel: name}},
		StringData: map[string]string{"client_id": oc.ClientID(), "private_key": pair.PrivateKeyPEM, "key_id": pair.KeyID},
	}
	if err := controllerutil.SetControllerReference(oc, s, testScheme()); err != nil {
		t.Fatal(err)
	}
	w.create(s)
	return kc
}

// TestPrivateKeyJWTClient: assertions signed with the client's key get tokens; every
// other assertion is refused exactly like a wrong secret.
func TestPrivateKeyJWTClient(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("pkjwt", nil)
	api := w.api("pkjwt", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	clk := clocktesting.NewFakePassiveClock(time.Now().Truncate(time.Second))
	now := clk.Now
	srv, keys := w.server("rateLimit:\n  failedAuthPerMinute: 0\n", signing.ES256, clk)
	const issuer, tokenURL = "https://issuer.test", "https://issuer.test" + TokenPath

	gen := w.keyPairClient(t, ns, "gen", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}}, signing.ES256)
	other := w.keyPairClient(t, ns, "other", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}}, signing.ES256)
	secretClient := w.client(ns, "classic", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})

	// A client that names its own public keys (RSA and Ed25519): no key material in
	// any Secret of the operator's.
	rsaOwn, _ := generateKeyClient(t, signing.RS256)
	edOwn, _ := generateKeyClient(t, signing.EdDSA)
	var pems []string
	for _, k := range []keyClient{rsaOwn, edOwn} {
		p, err := signing.EncodePublicKeyPEM(k.priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		pems = append(pems, p)
	}
	own := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "own"}, Spec: oauthv1alpha1.OAuthClientSpec{
		Audiences: []string{api}, Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthPrivateKeyJWT, PublicKeys: pems}}}
	w.create(own)
	rsaOwn.id, edOwn.id = own.ClientID(), own.ClientID()

	post := func(params map[string]string) int {
		params["grant_type"] = "client_credentials"
		params["client_assertion_type"] = JWTBearerAssertionType
		return postStatus(srv, jsonBody(params))
	}
	withID := func(id, a string) map[string]string { return map[string]string{"client_id": id, "client_assertion": a} }

	// Accepted: generated key, with and without client_id, issuer or token URL as
	// audience, the client's own RSA and Ed25519 keys, no kid (each key tried).
	a := gen.assert(t, tokenURL, now(), nil)
	rec := postRecorder(srv, jsonBody(map[string]string{"grant_type": "client_credentials", "client_assertion_type": JWTBearerAssertionType, "client_assertion": a}))
	tok := decodeOK(t, rec)
	if _, c := verify(t, tok.AccessToken, keys.Load().Set.Current().Private.Public()); c["sub"] != gen.id {
		t.Errorf("sub = %v, want %s", c["sub"], gen.id)
	}
	for name, params := range map[string]map[string]string{
		"with client_id":    withID(gen.id, gen.assert(t, issuer, now(), nil)),
		"own RSA key":       withID(own.ClientID(), rsaOwn.assert(t, tokenURL, now(), nil)),
		"own Ed25519 key":   withID(own.ClientID(), edOwn.assert(t, tokenURL, now(), nil)),
		"no kid":            withID(own.ClientID(), edOwn.assert(t, tokenURL, now(), func(_ jwtv5.MapClaims, h map[string]any) { delete(h, "kid") })),
		"audience as array": withID(gen.id, gen.assert(t, "", now(), func(c jwtv5.MapClaims, _ map[string]any) { c["aud"] = []string{issuer, tokenURL} })),
	} {
		if code := post(params); code != http.StatusOK {
			t.Errorf("%s: status %d, want 200", name, code)
		}
	}

	wrongSecret := postRecorder(srv, jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": secretClient, "client_secret": "wrong"}))
	hmac := jwtv5.NewWithClaims(jwtv5.SigningMethodHS256, jwtv5.MapClaims{"iss": gen.id, "sub": gen.id, "aud": tokenURL, "exp": now().Add(time.Minute).Unix(), "jti": "h1"})
	hmac.Header["kid"] = gen.kid
	hmacSigned, _ := hmac.SignedString([]byte("guessable"))
	none := jwtv5.NewWithClaims(jwtv5.SigningMethodNone, jwtv5.MapClaims{"iss": gen.id, "sub": gen.id, "aud": tokenURL, "exp": now().Add(time.Minute).Unix(), "jti": "n1"})
	noneSigned, _ := none.SignedString(jwtv5.UnsafeAllowNoneSignatureType)
	stolenKey := other
	stolenKey.id = gen.id // other's key, claiming to be gen
	replayed := gen.assert(t, tokenURL, now(), nil)
	if code := post(withID(gen.id, replayed)); code != http.StatusOK {
		t.Fatalf("first use: %d", code)
	}

	refused := map[string]map[string]string{
		"replayed assertion":  withID(gen.id, replayed),
		"replayed without id": {"client_assertion": replayed},
		"also for another party": withID(gen.id, gen.assert(t, "", now(), func(c jwtv5.MapClaims, _ map[string]any) {
			c["aud"] = []string{"https://other-as.example/token", tokenURL}
		})),
		"wrong audience":    withID(gen.id, gen.assert(t, "https://elsewhere.test/oauth2-token", now(), nil)),
		"missing exp":       withID(gen.id, gen.assert(t, tokenURL, now(), func(c jwtv5.MapClaims, _ map[string]any) { delete(c, "exp") })),
		"exp too far ahead": withID(gen.id, gen.assert(t, tokenURL, now(), func(c jwtv5.MapClaims, _ map[string]any) { c["exp"] = now().Add(time.Hour).Unix() })),
		"exp too far ahead, no iat": withID(gen.id, gen.assert(t, tokenURL, now(), func(c jwtv5.MapClaims, _ map[string]any) {
			c["exp"] = now().Add(time.Hour).Unix()
			delete(c, "iat")
		})),
		"long-lived from iat":    withID(gen.id, gen.assert(t, tokenURL, now(), func(c jwtv5.MapClaims, _ map[string]any) { c["iat"] = now().Add(-time.Hour).Unix() })),
		"expired":                withID(gen.id, gen.assert(t, tokenURL, now(), func(c jwtv5.MapClaims, _ map[string]any) { c["exp"] = now().Add(-time.Minute).Unix() })),
		"no jti":                 withID(gen.id, gen.assert(t, tokenURL, now(), func(c jwtv5.MapClaims, _ map[string]any) { delete(c, "jti") })),
		"iss of another":         withID(gen.id, gen.assert(t, tokenURL, now(), func(c jwtv5.MapClaims, _ map[string]any) { c["iss"] = other.id })),
		"sub of another":         withID(gen.id, gen.assert(t, tokenURL, now(), func(c jwtv5.MapClaims, _ map[string]any) { c["sub"] = other.id })),
		"client_id differs":      withID(other.id, gen.assert(t, tokenURL, now(), nil)),
		"key of another":         withID(gen.id, stolenKey.assert(t, tokenURL, now(), nil)),
		"key of another, no kid": withID(gen.id, stolenKey.assert(t, tokenURL, now(), func(_ jwtv5.MapClaims, h map[string]any) { delete(h, "kid") })),
		"HMAC":                   withID(gen.id, hmacSigned),
		"none":                   withID(gen.id, noneSigned),
		"assertion for a ClientSecret client": withID(secretClient, gen.assert(t, tokenURL, now(), func(c jwtv5.MapClaims, _ map[string]any) {
			c["iss"], c["sub"] = secretClient, secretClient
		})),
	}
	for name, params := range refused {
		t.Run(name, func(t *testing.T) {
			rec := postRecorder(srv, jsonBody(map[string]string{
				"grant_type": "client_credentials", "client_assertion_type": JWTBearerAssertionType,
				"client_id": params["client_id"], "client_assertion": params["client_assertion"]}))
			if rec.Code != http.StatusUnauthorized || rec.Body.String() != wrongSecret.Body.String() {
				t.Errorf("got %d %s, want the wrong-secret answer", rec.Code, rec.Body)
			}
		})
	}
	// A secret for a PrivateKeyJWT client is refused too.
	if code := postStatus(srv, jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": gen.id, "client_secret": w.secrets[secretClient]})); code != http.StatusUnauthorized {
		t.Errorf("secret for a PrivateKeyJWT client: %d", code)
	}

	// Rotation as the controller does it: a new key pair, the previous public key kept
	// until the grace period ends, by the server's clock.
	next, pair := generateKeyClient(t, signing.ES256)
	next.id = gen.id
	s := w.secret(ns, "gen")
	prevPEM, err := signing.EncodePublicKeyPEM(gen.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	s.Data["private_key"], s.Data["key_id"], s.Data["previous_public_key"] = []byte(pair.PrivateKeyPEM), []byte(pair.KeyID), []byte(prevPEM)
	s.Annotations = map[string]string{
		oauthv1alpha1.SecretRotatedAtAnnotation:       now().UTC().Format(time.RFC3339),
		oauthv1alpha1.PreviousSecretExpiresAnnotation: now().Add(10 * time.Minute).UTC().Format(time.RFC3339),
	}
	w.update(s)
	for _, step := range []struct {
		at       time.Duration
		old, new int
	}{{0, 200, 200}, {9 * time.Minute, 200, 200}, {11 * time.Minute, 401, 200}} {
		clk.SetTime(time.Now().Add(step.at).Truncate(time.Second))
		if code := post(withID(gen.id, gen.assert(t, tokenURL, now(), nil))); code != step.old {
			t.Errorf("+%s previous key: %d, want %d", step.at, code, step.old)
		}
		if code := post(withID(gen.id, next.assert(t, tokenURL, now(), nil))); code != step.new {
			t.Errorf("+%s new key: %d, want %d", step.at, code, step.new)
		}
	}
}

func postRecorder(srv *Server, body string) *httptest.ResponseRecorder {
	return post(srv.Handler(), "application/json", body)
}

func postStatus(srv *Server, body string) int { return postRecorder(srv, body).Code }
