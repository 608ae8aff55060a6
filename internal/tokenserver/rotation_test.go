package tokenserver

import (
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// TestPreviousSecretDuringGracePeriod: after a rotation the old secret works until the
// grace period ends, by the server's own clock, and only the new one after.
func TestPreviousSecretDuringGracePeriod(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("rotate", nil)
	api := w.api("rotate", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	start := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	now := clocktesting.NewFakePassiveClock(start)
	srv, _ := w.server("", signing.ES256, now)
	id := w.client(ns, "rotating", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}})
	oldSecret := w.secrets[id]
	newSecret := "rotated-" + oldSecret

	// Rotate as the controller does: new secret, old one kept with its expiry.
	s := w.secret(ns, "rotating")
	s.Data[oauthv1alpha1.SecretKeyPreviousClientSecret] = []byte(oldSecret)
	s.Data[oauthv1alpha1.SecretKeyClientSecret] = []byte(newSecret)
	s.Annotations = map[string]string{
		oauthv1alpha1.SecretRotatedAtAnnotation:       start.Format(time.RFC3339),
		oauthv1alpha1.PreviousSecretExpiresAnnotation: start.Add(10 * time.Minute).Format(time.RFC3339),
	}
	w.update(s)

	status := func(secret string) int {
		return post(srv.Handler(), "application/json", jsonBody(map[string]string{
			"grant_type": "client_credentials", "client_id": id, "client_secret": secret})).Code
	}
	for _, tc := range []struct {
		at       time.Duration
		old, new int
	}{
		{0, http.StatusOK, http.StatusOK},
		{10*time.Minute - time.Second, http.StatusOK, http.StatusOK},
		{10 * time.Minute, http.StatusUnauthorized, http.StatusOK},
		{time.Hour, http.StatusUnauthorized, http.StatusOK},
	} {
		now.SetTime(start.Add(tc.at))
		if got := status(oldSecret); got != tc.old {
			t.Errorf("at +%s: previous secret answered %d, want %d", tc.at, got, tc.old)
		}
		if got := status(newSecret); got != tc.new {
			t.Errorf("at +%s: new secret answered %d, want %d", tc.at, got, tc.new)
		}
	}
	if status("neither-"+oldSecret) != http.StatusUnauthorized {
		t.Error("a wrong secret was accepted during rotation")
	}
}

// TestForgedPreviousSecretIsRefused: a previous_client_secret written by hand is
// accepted only if it is as long as a generated secret, and only until the rotation
// time plus the client's grace period, whatever the expiry annotation says.
func TestForgedPreviousSecretIsRefused(t *testing.T) {
	w := newWorld(t)
	ns := w.namespace("forged", nil)
	api := w.api("forged", oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNS()})
	start := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	now := clocktesting.NewFakePassiveClock(start)
	srv, _ := w.server("", signing.ES256, now)
	id := w.client(ns, "forged", oauthv1alpha1.OAuthClientSpec{Audiences: []string{api},
		SecretRotation: &oauthv1alpha1.SecretRotation{GracePeriod: &metav1.Duration{Duration: time.Hour}}})
	farFuture := start.Add(100 * 365 * 24 * time.Hour).Format(time.RFC3339)
	long := strings.Repeat("L", oauthv1alpha1.MinClientSecretLength)

	forge := func(previous string, annotations map[string]string) {
		t.Helper()
		s := w.secret(ns, "forged")
		s.Data[oauthv1alpha1.SecretKeyPreviousClientSecret] = []byte(previous)
		s.Annotations = annotations
		w.update(s)
	}
	status := func(secret string) int {
		return post(srv.Handler(), "application/json", jsonBody(map[string]string{
			"grant_type": "client_credentials", "client_id": id, "client_secret": secret})).Code
	}

	// A short previous secret, with rotation times that would make it valid: refused.
	forge("pin1234", map[string]string{
		oauthv1alpha1.SecretRotatedAtAnnotation:       start.Format(time.RFC3339),
		oauthv1alpha1.PreviousSecretExpiresAnnotation: farFuture,
	})
	if got := status("pin1234"); got != http.StatusUnauthorized {
		t.Errorf("short forged previous secret: %d, want 401", got)
	}
	// A long one with a far-future expiry: accepted during the grace period (1h) after
	// the rotation only.
	forge(long, map[string]string{
		oauthv1alpha1.SecretRotatedAtAnnotation:       start.Format(time.RFC3339),
		oauthv1alpha1.PreviousSecretExpiresAnnotation: farFuture,
	})
	for _, tc := range []struct {
		at   time.Duration
		want int
	}{{0, http.StatusOK}, {59 * time.Minute, http.StatusOK}, {time.Hour, http.StatusUnauthorized}, {48 * time.Hour, http.StatusUnauthorized}} {
		now.SetTime(start.Add(tc.at))
		if got := status(long); got != tc.want {
			t.Errorf("far-future expiry, at rotation +%s: %d, want %d", tc.at, got, tc.want)
		}
	}
	// Without a rotation time, or with one in the future: refused.
	now.SetTime(start)
	forge(long, map[string]string{oauthv1alpha1.PreviousSecretExpiresAnnotation: farFuture})
	if got := status(long); got != http.StatusUnauthorized {
		t.Errorf("no rotation time: %d, want 401", got)
	}
	forge(long, map[string]string{
		oauthv1alpha1.SecretRotatedAtAnnotation:       start.Add(24 * time.Hour).Format(time.RFC3339),
		oauthv1alpha1.PreviousSecretExpiresAnnotation: farFuture,
	})
	if got := status(long); got != http.StatusUnauthorized {
		t.Errorf("rotation time in the future: %d, want 401", got)
	}
	if got := status(w.secrets[id]); got != http.StatusOK {
		t.Errorf("the current secret: %d", got)
	}
	// A short current secret written by hand is refused too.
	s := w.secret(ns, "forged")
	s.Data[oauthv1alpha1.SecretKeyClientSecret] = []byte("pin1234")
	w.update(s)
	if got := status("pin1234"); got != http.StatusUnauthorized {
		t.Errorf("short current secret: %d, want 401", got)
	}
}
