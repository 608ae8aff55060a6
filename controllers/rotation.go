package controllers

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// Client-secret rotation. Its state is in the Secret's annotations, so restarts and
// resyncs change nothing, and a rotation missed while the operator was down happens
// once when it returns.

func rotationInterval(oc *oauthv1alpha1.OAuthClient) time.Duration {
	if r := oc.Spec.SecretRotation; r != nil && r.Interval != nil {
		return r.Interval.Duration
	}
	return 0
}

func gracePeriod(oc *oauthv1alpha1.OAuthClient) time.Duration {
	if r := oc.Spec.SecretRotation; r != nil && r.GracePeriod != nil {
		return r.GracePeriod.Duration
	}
	return oauthv1alpha1.DefaultSecretGracePeriod
}

// Why a secret rotates; also the trigger label of oauth_client_secret_rotations_total.
const (
	rotationByInterval   = "interval"
	rotationByAnnotation = "annotation"
)

// rotationDue says why the secret must rotate now, or "" when it need not.
func rotationDue(oc *oauthv1alpha1.OAuthClient, secret *corev1.Secret, now time.Time) string {
	if trigger := oc.Annotations[oauthv1alpha1.RotateSecretAnnotation]; trigger != "" &&
		trigger != secret.Annotations[oauthv1alpha1.RotationTriggerAnnotation] {
		return rotationByAnnotation
	}
	interval := rotationInterval(oc)
	last := annotationTime(secret, oauthv1alpha1.SecretRotatedAtAnnotation)
	if interval > 0 && last != nil && !now.Before(last.Add(interval)) {
		return rotationByInterval
	}
	return ""
}

// nextCheck is how long until the next rotation or expiry; 0 when none is pending.
func nextCheck(oc *oauthv1alpha1.OAuthClient, secret *corev1.Secret, now time.Time) time.Duration {
	var next time.Duration
	consider := func(at time.Time) {
		if d := at.Sub(now); d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	if last := annotationTime(secret, oauthv1alpha1.SecretRotatedAtAnnotation); last != nil && rotationInterval(oc) > 0 {
		consider(last.Add(rotationInterval(oc)))
	}
	if until := annotationTime(secret, oauthv1alpha1.PreviousSecretExpiresAnnotation); until != nil {
		consider(until.Time)
	}
	if next > 0 {
		next += time.Second // land just after the instant, not just before
	}
	return next
}

func setAnnotation(secret *corev1.Secret, k, v string) {
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	secret.Annotations[k] = v
}

func annotationTime(secret *corev1.Secret, k string) *metav1.Time {
	t, err := time.Parse(time.RFC3339, secret.Annotations[k])
	if err != nil {
		return nil
	}
	return &metav1.Time{Time: t}
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
