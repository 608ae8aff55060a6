package controllers

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/trust"
)

type offline struct{}

func (offline) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("connection refused")
}

// The OAuthTrustedIssuer status says what the issuer built from it can do: Ready with
// its keys, or why not; the Ready condition keeps its transition time while its
// status stays, and nothing but Ready survives.
func TestIssuerStatus(t *testing.T) {
	t.Parallel()
	r := trust.NewRegistry(trust.Options{Transport: offline{}, Log: logr.Discard()})
	defer r.Close()
	since := metav1.NewTime(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	const jwks = `{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","alg":"ES256",` +
		`"x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}`
	issuer := func(name string, gen int64, mutate func(*oauthv1alpha1.OAuthTrustedIssuerSpec)) *oauthv1alpha1.OAuthTrustedIssuer {
		o := &oauthv1alpha1.OAuthTrustedIssuer{
			ObjectMeta: metav1.ObjectMeta{Name: name, UID: "uid-" + "name", Generation: gen},
			Spec: oauthv1alpha1.OAuthTrustedIssuerSpec{Issuer: "https://" + name + ".example",
				Keys: &oauthv1alpha1.IssuerKeys{JWKS: jwks}, AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll}},
			Status: oauthv1alpha1.OAuthTrustedIssuerStatus{Conditions: []metav1.Condition{
				{Type: oauthv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready", Message: "old", LastTransitionTime: since},
				{Type: "Forged", Status: metav1.ConditionTrue, Reason: "ByHand", LastTransitionTime: since},
			}},
		}
		if mutate != nil {
			mutate(&o.Spec)
		}
		return o
	}

	ready := issuer("static", 2, nil)
	st := issuerStatus(ready, r.Ensure(ready))
	c := meta.FindStatusCondition(st.Conditions, oauthv1alpha1.ConditionReady)
	if st.Keys != 1 || st.LastKeyFetch == nil || st.ObservedGeneration != 2 || len(st.Conditions) != 1 ||
		c.Status != metav1.ConditionTrue || c.Reason != oauthv1alpha1.ReasonIssuerReady || !c.LastTransitionTime.Equal(&since) ||
		c.Message != "1 keys; tokens of https://static.example are verified" {
		t.Errorf("ready: %+v", st)
	}

	for name, tc := range map[string]struct {
		mutate  func(*oauthv1alpha1.OAuthTrustedIssuerSpec)
		reason  string
		message string
	}{
		"a rule that does not compile": {func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.ClaimValidationRules = []oauthv1alpha1.ClaimValidationRule{{Expression: "claims.sub =="}}
		}, oauthv1alpha1.ReasonInvalidRule, "claimValidationRules[0]: does not compile"},
		"an unusable static JWKS": {func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.Keys.JWKS = `{"keys":[]}`
		}, oauthv1alpha1.ReasonInvalidKeySource, "keys: verifier: KeySetOptions.JWKS"},
		"keys not fetched yet": {func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) {
			s.Keys = nil
		}, oauthv1alpha1.ReasonKeysUnavailable, ""},
	} {
		o := issuer(strings.ReplaceAll(name, " ", "-"), 3, tc.mutate)
		st := issuerStatus(o, r.Ensure(o))
		c := meta.FindStatusCondition(st.Conditions, oauthv1alpha1.ConditionReady)
		if c.Status != metav1.ConditionFalse || c.Reason != tc.reason || !strings.HasPrefix(c.Message, tc.message) ||
			c.LastTransitionTime.Equal(&since) || c.ObservedGeneration != 3 || st.Keys != 0 {
			t.Errorf("%s: %+v", name, c)
		}
	}

	// An issuer that cannot be reached says why once the fetch has failed.
	o := issuer("unreachable", 1, func(s *oauthv1alpha1.OAuthTrustedIssuerSpec) { s.Keys = nil })
	i := r.Ensure(o)
	deadline := time.Now().Add(10 * time.Second)
	for i.Keys().LastError == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c = meta.FindStatusCondition(issuerStatus(o, i).Conditions, oauthv1alpha1.ConditionReady)
	if c.Reason != oauthv1alpha1.ReasonKeysUnavailable || !strings.Contains(c.Message, "no key obtained yet: discovery") ||
		!strings.Contains(c.Message, "connection refused") {
		t.Errorf("unreachable: %+v", c)
	}
}

// TestConditionMessageBounded: a message made of what an issuer serves (a fetch error
// naming a URL of any length) stays under the API server's limit.
func TestConditionMessageBounded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 100_000)
	got := bounded(long)
	if len(got) > maxConditionMessage || !utf8.ValidString(got) {
		t.Errorf("bounded message: %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
	if bounded("short") != "short" {
		t.Error("a short message changed")
	}
}
