package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
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
)

// SigningKeyReconciler rotates the signing keys in their Secret: it publishes a new
// key, makes it sign after the propagation delay, and removes retired keys once every
// token they signed has expired. Only the leader runs it; every replica's token server
// follows the Secret. All state is in the Secret.
type SigningKeyReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Key names the signing-key Secret.
	Key types.NamespacedName
	// Policy says when to rotate.
	Policy signing.Policy
	// Now is the clock; time.Now when nil.
	Now func() time.Time
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
	if r.Now != nil {
		now = r.Now()
	}
	trigger := secret.Annotations[RotateKeyAnnotation]
	force := trigger != "" && trigger != secret.Annotations[rotateKeyHandledAnnotation]

	before := ks.CurrentID
	changes, next, err := ks.Rotate(r.Policy, now, force)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("rotate signing keys in Secret %s: %w", req.NamespacedName, err)
	}
	if len(changes) > 0 || force {
		if err := r.write(ctx, secret, ks, trigger); err != nil {
			return ctrl.Result{}, err
		}
		if ks.CurrentID != before {
			SigningKeyRotations.Inc()
		}
		for _, c := range changes {
			logf.FromContext(ctx).Info("signing keys: "+c, "secret", req.String())
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

func (r *SigningKeyReconciler) write(ctx context.Context, secret *corev1.Secret, ks *signing.KeySet, trigger string) error {
	data, err := ks.Encode()
	if err != nil {
		return err
	}
	orig := secret.DeepCopy()
	secret.Data = data
	if trigger != "" {
		if secret.Annotations == nil {
			secret.Annotations = map[string]string{}
		}
		secret.Annotations[rotateKeyHandledAnnotation] = trigger
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
