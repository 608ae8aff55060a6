package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// OAuthAPIReconciler records in each OAuthAPI's status the audience its tokens carry
// (spec.audience, or the name when that is unset), so `kubectl get oauthapis` shows it
// either way. Only the leader runs it; the token server reads the spec itself and does
// not depend on the status.
type OAuthAPIReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	client.Client
}

// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthapis,verbs=get;list;watch
// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthapis/status,verbs=get;update;patch

// Reconcile writes the API's status when it differs from the spec it observes: one
// status patch, or nothing.
func (r *OAuthAPIReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	api := &oauthv1alpha1.OAuthAPI{}
	if err := r.Get(ctx, req.NamespacedName, api); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !api.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	want := oauthv1alpha1.OAuthAPIStatus{
		Audience:           api.EffectiveAudience(),
		ObservedGeneration: api.Generation,
	}
	if equality.Semantic.DeepEqual(api.Status, want) {
		return ctrl.Result{}, nil
	}
	before := api.DeepCopy()
	api.Status = want
	// Only this controller writes the status, and the leader runs one at a time: a
	// merge patch from a stale copy is followed by the event of the newer one.
	// An API deleted meanwhile needs no status.
	if err := client.IgnoreNotFound(r.Status().Patch(ctx, api, client.MergeFrom(before))); err != nil {
		return ctrl.Result{}, fmt.Errorf("update status of OAuthAPI %s: %w", api.Name, err)
	}
	return ctrl.Result{}, nil
}

// SetupWithManager registers the controller on one manager (a leader term's). Every
// change of an OAuthAPI is reconciled, status edits included, so a status changed by
// hand is written back.
func (r *OAuthAPIReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&oauthv1alpha1.OAuthAPI{}).
		Named("oauthapi").
		Complete(r)
}
