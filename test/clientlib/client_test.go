//go:build integration

package clientlib

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/pkg/client"
	"github.com/oauth-client-operator/oauth-client-operator/pkg/verifier"
)

// firstToken waits for the token server to know a client created a moment ago (its
// cache follows the API server), then returns the token.
func firstToken(t *testing.T, ts *client.TokenSource) string {
	t.Helper()
	var tok string
	var last error
	waitFor(t, 20*time.Second, "first token", func() bool {
		got, err := ts.Token()
		if err != nil {
			last = err
			return false
		}
		tok = got.AccessToken
		return true
	})
	if tok == "" {
		t.Fatalf("no token: %v", last)
	}
	return tok
}

// verify checks an access token with pkg/verifier against the token server's JWKS and
// returns its claims.
func verify(t *testing.T, api, token string) *verifier.Claims {
	t.Helper()
	v, err := verifier.New(verifier.Config{Issuer: issuer, Audience: api})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("the access token does not verify: %v", err)
	}
	return claims
}

// TestClientSecret: a ClientSecret client's mounted Secret gives tokens for the asked
// audience and scope, and NewHTTPClient calls an API protected by pkg/verifier.
func TestClientSecret(t *testing.T) {
	dumpLogsOnFailure(t)
	ns, api := world(t)
	oauthClient(t, ns, "erp-sync", api, oauthv1alpha1.OAuthClientSpec{})
	data := secretData(t, ns, "erp-sync", anySecret)
	if data["client_secret"] == "" || data["token_url"] != issuer+"/oauth2-token" {
		t.Fatalf("unexpected Secret keys %v", keys(data))
	}
	vol := newVolume(t, data)
	ctx := context.Background()
	ts, err := client.New(ctx, vol.Dir, client.WithAudience(api), client.WithScopes("orders:read"))
	if err != nil {
		t.Fatal(err)
	}
	claims := verify(t, api, firstToken(t, ts))
	if claims.ClientID != ns+".erp-sync" || !slices.Equal(claims.Scopes, []string{"orders:read"}) {
		t.Errorf("client_id %q, scopes %v", claims.ClientID, claims.Scopes)
	}

	v, err := verifier.New(verifier.Config{Issuer: issuer, Audience: api})
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := httptest.NewServer(v.Middleware("orders:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := verifier.ClaimsFromContext(r.Context())
		_, _ = w.Write([]byte(c.ClientID))
	})))
	defer apiSrv.Close()
	resp, err := client.NewHTTPClient(ctx, ts).Get(apiSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("API answered %s", resp.Status)
	}
}

// TestServiceAccountToken: a ServiceAccountToken client's Secret holds no credential;
// the projected ServiceAccount token (audience: the issuer) is sent as the assertion.
func TestServiceAccountToken(t *testing.T) {
	dumpLogsOnFailure(t)
	ns, api := world(t)
	oauthClient(t, ns, "erp-sync", api, oauthv1alpha1.OAuthClientSpec{Authentication: &oauthv1alpha1.ClientAuthentication{
		Method: oauthv1alpha1.AuthServiceAccountToken, ServiceAccountName: "erp"}})
	data := secretData(t, ns, "erp-sync", anySecret)
	if _, ok := data["client_secret"]; ok || data["issuer"] != issuer {
		t.Fatalf("unexpected Secret keys %v", keys(data))
	}
	secretVol := newVolume(t, data)
	tokenVol := newVolume(t, map[string]string{"token": serviceAccountToken(t, ns, "erp")})
	ts, err := client.New(context.Background(), secretVol.Dir, client.WithAudience(api),
		client.WithServiceAccountTokenFile(filepath.Join(tokenVol.Dir, "token")))
	if err != nil {
		t.Fatal(err)
	}
	claims := verify(t, api, firstToken(t, ts))
	if claims.ClientID != ns+".erp-sync" || claims.Subject != ns+".erp-sync" {
		t.Errorf("client_id %q, sub %q", claims.ClientID, claims.Subject)
	}
}

// TestTokenReuse counts the requests the real token server gets: with an injected
// clock, one token (1 h) serves every caller, concurrent ones too, until 30 s before
// it expires.
func TestTokenReuse(t *testing.T) {
	dumpLogsOnFailure(t)
	ns, api := world(t)
	oauthClient(t, ns, "erp-sync", api, oauthv1alpha1.OAuthClientSpec{})
	vol := newVolume(t, secretData(t, ns, "erp-sync", anySecret))
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	rec := newRecorder()
	ts, err := client.New(context.Background(), vol.Dir, client.WithAudience(api), client.WithClock(clock), client.WithHTTPClient(rec.client()))
	if err != nil {
		t.Fatal(err)
	}
	first := firstToken(t, ts)
	base, _, _ := rec.stats() // requests until the server knew the client
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if tok, err := ts.Token(); err != nil || tok.AccessToken != first {
					t.Errorf("a cached token was expected: %v", err)
				}
			}
		})
	}
	wg.Wait()
	advance(time.Hour - 31*time.Second)
	if tok, err := ts.Token(); err != nil || tok.AccessToken != first {
		t.Fatalf("31 s before expiry: %v", err)
	}
	if n, _, _ := rec.stats(); n != base {
		t.Fatalf("81 calls within the token's life made %d requests, want 0", n-base)
	}
	advance(2 * time.Second)
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	if n, _, _ := rec.stats(); n != base+1 || tok.AccessToken == first {
		t.Fatalf("29 s before expiry: %d new requests (want 1), new token: %v", n-base, tok.AccessToken != first)
	}
}

// rotation runs a busy workload on ts while rotate changes the credentials twice, and
// returns after each new version reached the volume and the last grace period ended.
// No fetch may fail, and the credentials must have been used in rotation order.
func rotation(t *testing.T, ts *client.TokenSource, rec *recorder, rotate func(i int) (grace time.Duration)) {
	t.Helper()
	loop := startFetching(ts)
	loop.await(t, 20)
	var graceEnds time.Time
	for i := 1; i <= 2; i++ {
		grace := rotate(i)
		graceEnds = time.Now().Add(grace)
		loop.await(t, 20)
	}
	waitFor(t, time.Minute, "the grace period to end", func() bool {
		return time.Now().After(graceEnds.Add(time.Second)) && loop.fetches.Load() >= 200
	})
	loop.await(t, 20)
	fetches, failures, errs := loop.finish()
	requests, refused, creds := rec.stats()
	t.Logf("%d fetches (%d requests, %d refused and retried), %d failures; credentials used in order: %v", fetches, requests, refused, failures, creds)
	if failures != 0 {
		t.Fatalf("%d failed token fetches: %v", failures, errs[:min(len(errs), 5)])
	}
	if len(creds) != 3 {
		t.Fatalf("%d credentials used, want 3 (the first and two rotated ones)", len(creds))
	}
}

// TestRotationWithoutFailedFetches: files rewritten mid-run, as the kubelet does (a
// new version, then an atomic ..data swap), while a workload fetches a new token
// every few milliseconds: no fetch fails, and each new credential is used.
func TestRotationWithoutFailedFetches(t *testing.T) {
	dumpLogsOnFailure(t)
	ns, api := world(t)
	t.Run("ClientSecret", func(t *testing.T) {
		const grace = 3 * time.Second
		oc := oauthClient(t, ns, "rotating", api, oauthv1alpha1.OAuthClientSpec{
			SecretRotation: &oauthv1alpha1.SecretRotation{GracePeriod: &metav1.Duration{Duration: grace}}})
		data := secretData(t, ns, "rotating", anySecret)
		vol := newVolume(t, data)
		rec := newRecorder()
		// A delta longer than the lifetime: no token is reused, every fetch is a request.
		ts, err := client.New(context.Background(), vol.Dir, client.WithAudience(api), client.WithExpiryDelta(24*time.Hour), client.WithHTTPClient(rec.client()))
		if err != nil {
			t.Fatal(err)
		}
		firstToken(t, ts)
		old := []map[string]string{data}
		rotation(t, ts, rec, func(i int) time.Duration {
			prev := data["client_secret"]
			annotate(t, oc, oauthv1alpha1.RotateSecretAnnotation, "rotation-"+string(rune('0'+i)))
			data = secretData(t, ns, "rotating", func(d map[string][]byte) bool { return string(d["client_secret"]) != prev })
			vol.Update(data)
			old = append(old, data)
			return grace
		})
		_, _, creds := rec.stats()
		for i, d := range old {
			if want := fingerprint(d["client_secret"]); creds[i] != want {
				t.Errorf("credential %d used: %s, want the secret of rotation %d (%s)", i, creds[i], i, want)
			}
		}
		// The grace periods are over: the first two secrets no longer work, so the
		// workload's last fetches succeeded with the new secret it read from the files.
		for i, d := range old {
			plain := newVolume(t, map[string]string{"client_id": d["client_id"], "token_url": d["token_url"], "client_secret": d["client_secret"]})
			ts, err := client.New(context.Background(), plain.Dir, client.WithAudience(api))
			if err != nil {
				t.Fatal(err)
			}
			_, err = ts.Token()
			if last := i == len(old)-1; last && err != nil {
				t.Errorf("the current secret: %v", err)
			} else if !last && !isInvalidClient(err) {
				t.Errorf("secret %d after its grace period: %v, want invalid_client", i, err)
			}
		}
	})
	t.Run("ServiceAccountToken", func(t *testing.T) {
		oauthClient(t, ns, "rotating-sa", api, oauthv1alpha1.OAuthClientSpec{Authentication: &oauthv1alpha1.ClientAuthentication{
			Method: oauthv1alpha1.AuthServiceAccountToken, ServiceAccountName: "rotating-sa"}})
		secretVol := newVolume(t, secretData(t, ns, "rotating-sa", anySecret))
		tokens := []string{serviceAccountToken(t, ns, "rotating-sa")}
		tokenVol := newVolume(t, map[string]string{"token": tokens[0]})
		rec := newRecorder()
		ts, err := client.New(context.Background(), secretVol.Dir, client.WithAudience(api), client.WithExpiryDelta(24*time.Hour),
			client.WithHTTPClient(rec.client()), client.WithServiceAccountTokenFile(filepath.Join(tokenVol.Dir, "token")))
		if err != nil {
			t.Fatal(err)
		}
		firstToken(t, ts)
		rotation(t, ts, rec, func(int) time.Duration {
			tokens = append(tokens, serviceAccountToken(t, ns, "rotating-sa"))
			tokenVol.Update(map[string]string{"token": tokens[len(tokens)-1]})
			return 0
		})
		_, _, creds := rec.stats()
		for i, tok := range tokens {
			if creds[i] != fingerprint(tok) {
				t.Errorf("credential %d used is not ServiceAccount token %d", i, i)
			}
		}
	})
}

// TestPrivateKeyJWT: a PrivateKeyJWT client with a generated key gets tokens, and
// keeps getting them while its key rotates. The server side of private_key_jwt is not
// in this branch yet: the test skips while the API server refuses the method, and
// runs once it accepts it.
func TestPrivateKeyJWT(t *testing.T) {
	dumpLogsOnFailure(t)
	ns, api := world(t)
	const grace = 3 * time.Second
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "signing"}, Spec: oauthv1alpha1.OAuthClientSpec{
		Audiences:      []string{api},
		Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthPrivateKeyJWT},
		SecretRotation: &oauthv1alpha1.SecretRotation{GracePeriod: &metav1.Duration{Duration: grace}},
	}}
	if err := k8s.Create(context.Background(), oc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), oc) })
	hasKey := func(d map[string][]byte) bool { return len(d["private_key"]) > 0 && len(d["key_id"]) > 0 }
	data := secretData(t, ns, "signing", hasKey)
	if _, ok := data["client_secret"]; ok {
		t.Errorf("a PrivateKeyJWT client's Secret holds a client_secret")
	}
	vol := newVolume(t, data)
	rec := newRecorder()
	ts, err := client.New(context.Background(), vol.Dir, client.WithAudience(api), client.WithExpiryDelta(24*time.Hour), client.WithHTTPClient(rec.client()))
	if err != nil {
		t.Fatal(err)
	}
	claims := verify(t, api, firstToken(t, ts))
	if claims.ClientID != ns+".signing" {
		t.Errorf("client_id %q", claims.ClientID)
	}
	old := []map[string]string{data}
	rotation(t, ts, rec, func(i int) time.Duration {
		prev := data["key_id"]
		annotate(t, oc, oauthv1alpha1.RotateSecretAnnotation, "rotation-"+string(rune('0'+i)))
		data = secretData(t, ns, "signing", func(d map[string][]byte) bool { return hasKey(d) && string(d["key_id"]) != prev })
		vol.Update(data)
		old = append(old, data)
		return grace
	})
	_, _, creds := rec.stats()
	for i, d := range old {
		if creds[i] != "kid:"+d["key_id"] {
			t.Errorf("key %d used: %s, want kid:%s", i, creds[i], d["key_id"])
		}
	}
	for i, d := range old {
		plain := newVolume(t, map[string]string{"client_id": d["client_id"], "token_url": d["token_url"], "private_key": d["private_key"], "key_id": d["key_id"]})
		ts, err := client.New(context.Background(), plain.Dir, client.WithAudience(api))
		if err != nil {
			t.Fatal(err)
		}
		_, err = ts.Token()
		if last := i == len(old)-1; last && err != nil {
			t.Errorf("the current key: %v", err)
		} else if !last && !isInvalidClient(err) {
			t.Errorf("key %d after its grace period: %v, want invalid_client", i, err)
		}
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
