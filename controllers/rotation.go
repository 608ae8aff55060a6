package controllers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// Client-credential rotation. Its state is in the Secret's annotations, so restarts and
// resyncs change nothing, and a rotation missed while the operator was down happens
// once when it returns.

// Why a credential rotates; also the trigger label of oauth_client_secret_rotations_total.
const (
	rotationByInterval   = "interval"
	rotationByAnnotation = "annotation"
)

// intervalDue reports whether the client's rotation interval has passed since the
// current credential was generated.
func intervalDue(oc *oauthv1alpha1.OAuthClient, times oauthv1alpha1.RotationTimes, now time.Time) bool {
	interval := oc.SecretRotationInterval()
	return interval > 0 && !times.RotatedAt.IsZero() && !now.Before(times.RotatedAt.Add(interval))
}

// requestAllowed reports whether a new rotate-secret value may be acted on now: at
// least minInterval after the last one was. A time after now (a clock set back, a
// restored copy) limits nothing.
func requestAllowed(times oauthv1alpha1.RotationTimes, minInterval time.Duration, now time.Time) bool {
	last := times.TriggerHandledAt
	return last.IsZero() || last.After(now) || !now.Before(last.Add(minInterval))
}

// nextCheck is how long until the next rotation, expiry of the previous credential or
// deferred rotation, as a Secret with these annotations has them; 0 when none is
// pending.
func nextCheck(oc *oauthv1alpha1.OAuthClient, annotations map[string]string, deferredUntil, now time.Time) time.Duration {
	times := oauthv1alpha1.ReadRotationTimes(&metav1.ObjectMeta{Annotations: annotations})
	var next time.Duration
	consider := func(at time.Time) {
		if d := at.Sub(now); !at.IsZero() && d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	if interval := oc.SecretRotationInterval(); interval > 0 && !times.RotatedAt.IsZero() {
		consider(times.RotatedAt.Add(interval))
	}
	consider(times.PreviousExpiresAt)
	consider(deferredUntil)
	if next > 0 {
		next += time.Second // land just after the instant, not just before
	}
	return next
}

// timeOrNil is t for a status field: nil when zero.
func timeOrNil(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	return &metav1.Time{Time: t}
}
