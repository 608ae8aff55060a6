package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// Annotations of the signing-key Secret.
const (
	// RotateKeyAnnotation on the signing-key Secret rotates the key once per distinct value.
	RotateKeyAnnotation = "oauth.operator.dev/rotate"
	// rotateKeyHandledAnnotation records the last value acted on.
	rotateKeyHandledAnnotation = "oauth.operator.dev/rotate-handled"
	// RevokeKeyAnnotation on the signing-key Secret revokes the keys it names (key ids
	// separated by commas, or "all") at once, once per distinct value: they leave the
	// JWKS, a new key signs from now, and they are never loaded again.
	RevokeKeyAnnotation = "oauth.operator.dev/revoke-key"
	// revokeKeyHandledAnnotation records the last value acted on.
	revokeKeyHandledAnnotation = "oauth.operator.dev/revoke-key-handled"
)

// SigningKeyReconciler rotates the signing keys in their Secret: it publishes a new
// key, makes it sign after the propagation delay, and removes retired keys once every
// token they signed has expired. It also revokes keys on request (RevokeKeyAnnotation),
// and again when a revoked key comes back (a restored backup of the Secret). Only the
// leader runs it; every replica's token server follows the Secret. All state is in the
// Secret.
type SigningKeyReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Key names the signing-key Secret.
	Key types.NamespacedName
	// Policy says when to rotate.
	Policy signing.Policy
	// Clock is the time of rotations; clock.RealClock when nil.
	Clock clock.PassiveClock
	// Revocations remembers the revoked keys this process has seen (shared with the
	// signing-key source); nil remembers only what the Secret lists.
	Revocations *signing.Revocations
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;update;patch

// Reconcile moves the key set one step through its lifecycle and says when to look again.
func (r *SigningKeyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	secret := &corev1.Secret{}
	if err := r.Get(ctx, req.NamespacedName, secret); err != nil {
		// A missing Secret is created by the signing-key source at start.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ks, err := signing.Decode(secret.Data)
	if err != nil {
		// Never overwrite keys we cannot read: a person must look.
		r.Recorder.Eventf(secret, nil, corev1.EventTypeWarning, "InvalidSigningKeys", "Rotate", "cannot read the signing keys: %v", err)
		return ctrl.Result{}, nil
	}
	now := time.Now()
	if r.Clock != nil {
		now = r.Clock.Now()
	}
	log := logf.FromContext(ctx)
	trigger := secret.Annotations[RotateKeyAnnotation]
	force := trigger != "" && trigger != secret.Annotations[rotateKeyHandledAnnotation]
	handled := map[string]string{}
	if force {
		handled[rotateKeyHandledAnnotation] = trigger
	}

	before := ks.CurrentID
	revoked, err := r.revoke(ctx, secret, ks, now, handled)
	if err != nil {
		return ctrl.Result{}, err
	}
	changes, next, err := ks.Rotate(r.Policy, now, force)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("rotate signing keys in Secret %s: %w", req.NamespacedName, err)
	}
	if len(revoked) > 0 || len(changes) > 0 || len(handled) > 0 {
		if err := r.write(ctx, secret, ks, handled); err != nil {
			return ctrl.Result{}, err
		}
		if ks.CurrentID != before {
			SigningKeyRotations.Inc()
		}
		for _, c := range revoked {
			log.Info("signing keys: "+c, "secret", req.String())
		}
		for _, c := range changes {
			log.Info("signing keys: "+c, "secret", req.String())
		}
		if len(revoked) > 0 {
			SigningKeyRevocations.Inc()
			r.Recorder.Eventf(secret, nil, corev1.EventTypeWarning, "SigningKeyRevoked", "Revoke", "%s", strings.Join(revoked, "; "))
		}
		if len(changes) > 0 {
			r.Recorder.Eventf(secret, nil, corev1.EventTypeNormal, "SigningKeyRotation", "Rotate", "%s", strings.Join(changes, "; "))
		}
	}
	if next.IsZero() {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: next.Sub(now) + time.Second}, nil
}

// revoke applies a new revocation request (RevokeKeyAnnotation, recorded in handled),
// revokes again any revoked key the Secret holds once more (a restored backup), and
// lists every revocation this process remembers in the set. It returns what changed.
func (r *SigningKeyReconciler) revoke(ctx context.Context, secret *corev1.Secret, ks *signing.KeySet, now time.Time, handled map[string]string) ([]string, error) {
	r.Revocations.Add(ks.Revoked...)
	var kids []string
	request := secret.Annotations[RevokeKeyAnnotation]
	if request != "" && request != secret.Annotations[revokeKeyHandledAnnotation] {
		handled[revokeKeyHandledAnnotation] = request
		kids = signing.ParseRevokeRequest(request)
	}
	var back []string
	for _, k := range ks.Keys {
		if r.Revocations.Has(k.ID) && !slices.Contains(kids, k.ID) {
			kids = append(kids, k.ID)
			back = append(back, k.ID)
		}
	}
	var changes []string
	if len(back) > 0 {
		changes = append(changes, fmt.Sprintf("revoked keys %s were back in the Secret (a restored copy?): revoking them again", strings.Join(back, ", ")))
	}
	if len(kids) > 0 {
		revoked, unknown, err := ks.Revoke(kids, r.Policy.Algorithm, r.Policy.RetireAfter, now)
		if err != nil {
			return nil, fmt.Errorf("revoke signing keys in Secret %s: %w", r.Key, err)
		}
		if len(unknown) > 0 {
			msg := fmt.Sprintf("%s names no key of the Secret: %s (the key ids are the kid of each JWKS entry)", RevokeKeyAnnotation, strings.Join(unknown, ", "))
			logf.FromContext(ctx).Info("signing keys: "+msg, "secret", r.Key.String())
			r.Recorder.Eventf(secret, nil, corev1.EventTypeWarning, "SigningKeyRevocationUnknown", "Revoke", "%s", msg)
		}
		changes = append(changes, revoked...)
	}
	// Keep in the Secret every revocation this process remembers.
	for _, rk := range r.Revocations.List() {
		if !ks.IsRevoked(rk.ID) && ks.Find(rk.ID) == nil {
			ks.Revoked = append(ks.Revoked, rk)
			changes = append(changes, "recorded the revocation of key "+rk.ID)
		}
	}
	r.Revocations.Add(ks.Revoked...)
	return changes, nil
}

func (r *SigningKeyReconciler) write(ctx context.Context, secret *corev1.Secret, ks *signing.KeySet, handled map[string]string) error {
	data, err := ks.Encode()
	if err != nil {
		return err
	}
	orig := secret.DeepCopy()
	secret.Data = data
	if len(handled) > 0 {
		if secret.Annotations == nil {
			secret.Annotations = map[string]string{}
		}
		maps.Copy(secret.Annotations, handled)
	}
	// Optimistic lock: a concurrent writer makes this fail and the step is retried on
	// the newer Secret.
	if err := r.Patch(ctx, secret, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			return fmt.Errorf("signing-key Secret %s changed meanwhile: %w", r.Key, err)
		}
		return fmt.Errorf("write signing-key Secret %s: %w", r.Key, err)
	}
	return nil
}

// SetupWithManager watches the signing-key Secret only.
func (r *SigningKeyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	isKeySecret := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == r.Key.Namespace && o.GetName() == r.Key.Name
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("signingkey").
		For(&corev1.Secret{}, builder.WithPredicates(isKeySecret)).
		Complete(r)
}
