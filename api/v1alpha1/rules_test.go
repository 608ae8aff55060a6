package v1alpha1

import (
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func api(name, audience string) OAuthAPI {
	return OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: OAuthAPISpec{Audience: audience}}
}

func TestAudienceConflicts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		apis []OAuthAPI
		want map[string][]string
	}{
		{"none", nil, map[string][]string{}},
		{"distinct audiences", []OAuthAPI{api("a", ""), api("b", ""), api("c", "https://c.example")}, map[string][]string{}},
		{"explicit audience equals another's name", []OAuthAPI{api("back-office", ""), api("shadow", "back-office")},
			map[string][]string{"back-office": {"shadow"}, "shadow": {"back-office"}}},
		{"three share one, two others do not", []OAuthAPI{api("z", "x"), api("a", "x"), api("m", "x"), api("free", ""), api("other", "y")},
			map[string][]string{"a": {"m", "z"}, "m": {"a", "z"}, "z": {"a", "m"}}},
		{"audiences differ only in case or a slash", []OAuthAPI{api("a", "https://x.example/api"), api("b", "https://x.example/api/"), api("c", "HTTPS://x.example/api")},
			map[string][]string{}},
		{"two separate collisions", []OAuthAPI{api("a", "1"), api("b", "1"), api("c", "2"), api("d", "2")},
			map[string][]string{"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := AudienceConflicts(tt.apis); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("AudienceConflicts = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReadRotationTimes(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC)
	s := &metav1.ObjectMeta{Annotations: map[string]string{
		SecretRotatedAtAnnotation:          FormatRotationTime(at.In(time.FixedZone("CET", 3600))),
		PreviousSecretExpiresAnnotation:    "tomorrow",
		RotationTriggerHandledAtAnnotation: FormatRotationTime(at.Add(time.Minute)),
	}}
	got := ReadRotationTimes(s)
	if !got.RotatedAt.Equal(at) || !got.PreviousExpiresAt.IsZero() || !got.TriggerHandledAt.Equal(at.Add(time.Minute)) {
		t.Errorf("ReadRotationTimes = %+v", got)
	}
	if v := s.Annotations[SecretRotatedAtAnnotation]; v != "2026-11-28T10:30:00Z" {
		t.Errorf("FormatRotationTime wrote %q, want UTC RFC 3339", v)
	}
	if got := ReadRotationTimes(&metav1.ObjectMeta{}); got != (RotationTimes{}) {
		t.Errorf("no annotations: %+v, want zero times", got)
	}
}

func TestSecretRotationDefaults(t *testing.T) {
	t.Parallel()
	c := &OAuthClient{}
	if c.SecretGracePeriod() != DefaultSecretGracePeriod || c.SecretRotationInterval() != 0 {
		t.Errorf("unset: grace %s, interval %s", c.SecretGracePeriod(), c.SecretRotationInterval())
	}
	c.Spec.SecretRotation = &SecretRotation{}
	if c.SecretGracePeriod() != DefaultSecretGracePeriod || c.SecretRotationInterval() != 0 {
		t.Errorf("empty: grace %s, interval %s", c.SecretGracePeriod(), c.SecretRotationInterval())
	}
	c.Spec.SecretRotation = &SecretRotation{Interval: &metav1.Duration{Duration: time.Hour}, GracePeriod: &metav1.Duration{}}
	if c.SecretGracePeriod() != 0 || c.SecretRotationInterval() != time.Hour {
		t.Errorf("set: grace %s, interval %s", c.SecretGracePeriod(), c.SecretRotationInterval())
	}
}
