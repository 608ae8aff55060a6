package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// Event reasons a user may see on an OAuthAPI.
const (
	// EventAudienceConflict (Warning): another OAuthAPI has the same effective audience.
	EventAudienceConflict = "AudienceConflict"
	// EventAudienceConflictResolved (Normal): no other OAuthAPI has its audience any more.
	EventAudienceConflictResolved = "AudienceConflictResolved"
)

// OAuthAPIReconciler records in each OAuthAPI's status the audience its tokens carry
// (spec.audience, or the name when that is unset), so `kubectl get oauthapis` shows it
// either way, and whether another OAuthAPI claims the same audience
// (oauthv1alpha1.AudienceConflicts decides; the token server refuses tokens for such an
// audience by the same rule). Only the leader runs it.
type OAuthAPIReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	client.Client
	// Recorder receives the AudienceConflict events.
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthapis,verbs=get;list;watch
// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthapis/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile writes the API's status when it differs from what it observes (one status
// patch, or nothing), with an event when an audience conflict starts or ends.
func (r *OAuthAPIReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	api := &oauthv1alpha1.OAuthAPI{}
	if err := r.Get(ctx, req.NamespacedName, api); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !api.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	all := &oauthv1alpha1.OAuthAPIList{}
	if err := r.List(ctx, all); err != nil {
		return ctrl.Result{}, fmt.Errorf("list OAuthAPIs for OAuthAPI %s: %w", api.Name, err)
	}
	others := oauthv1alpha1.AudienceConflicts(all.Items)[api.Name]
	want := apiStatus(api, others)
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
	r.reportConflict(ctx, api, before, others)
	return ctrl.Result{}, nil
}

// apiStatus is the status of api when the OAuthAPIs named others share its audience.
// It holds only what this controller writes: anything else is dropped.
func apiStatus(api *oauthv1alpha1.OAuthAPI, others []string) oauthv1alpha1.OAuthAPIStatus {
	st := oauthv1alpha1.OAuthAPIStatus{
		Audience:           api.EffectiveAudience(),
		ObservedGeneration: api.Generation,
	}
	if len(others) == 0 {
		return st
	}
	// The condition as it was keeps its lastTransitionTime while it stays True.
	if c := meta.FindStatusCondition(api.Status.Conditions, oauthv1alpha1.ConditionAudienceConflict); c != nil {
		st.Conditions = []metav1.Condition{*c}
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type:               oauthv1alpha1.ConditionAudienceConflict,
		Status:             metav1.ConditionTrue,
		Reason:             oauthv1alpha1.ReasonSharedAudience,
		Message:            conflictMessage(api.EffectiveAudience(), others),
		ObservedGeneration: api.Generation,
	})
	return st
}

func conflictMessage(audience string, others []string) string {
	return fmt.Sprintf("audience %q is also the audience of OAuthAPI %s: no tokens are issued for it until only one OAuthAPI has it",
		audience, strings.Join(quoteAll(others), ", "))
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%q", n)
	}
	return out
}

// reportConflict emits an event and a log line when the API's audience conflict
// starts, changes or ends.
func (r *OAuthAPIReconciler) reportConflict(ctx context.Context, api, before *oauthv1alpha1.OAuthAPI, others []string) {
	was := meta.FindStatusCondition(before.Status.Conditions, oauthv1alpha1.ConditionAudienceConflict)
	is := meta.FindStatusCondition(api.Status.Conditions, oauthv1alpha1.ConditionAudienceConflict)
	log := logf.FromContext(ctx)
	switch {
	case is != nil && (was == nil || was.Message != is.Message):
		log.Info("OAuthAPIs share an audience: no tokens for it", "audience", api.EffectiveAudience(), "others", others)
		r.Recorder.Eventf(api, nil, corev1.EventTypeWarning, EventAudienceConflict, "Reconcile", "%s", is.Message)
	case is == nil && was != nil:
		log.Info("audience conflict resolved", "audience", api.EffectiveAudience())
		r.Recorder.Eventf(api, nil, corev1.EventTypeNormal, EventAudienceConflictResolved, "Reconcile",
			"no other OAuthAPI has audience %q any more", api.EffectiveAudience())
	}
}

// SetupWithManager registers the controller on one manager (a leader term's). Every
// change of an OAuthAPI is reconciled, status edits included, so a status changed by
// hand is written back; a change of one API's effective audience also reconciles
// every API that had or has that audience.
func (r *OAuthAPIReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&oauthv1alpha1.OAuthAPI{}).
		Watches(&oauthv1alpha1.OAuthAPI{}, handler.EnqueueRequestsFromMapFunc(r.apisWithAudienceOf),
			builder.WithPredicates(audienceChanged())).
		Named("oauthapi").
		Complete(r)
}

// apisWithAudienceOf lists the OAuthAPIs whose effective audience is o's. On an update
// it is called for the old and the new object, so both audiences are looked at again.
func (r *OAuthAPIReconciler) apisWithAudienceOf(ctx context.Context, o client.Object) []reconcile.Request {
	aud := o.(*oauthv1alpha1.OAuthAPI).EffectiveAudience()
	all := &oauthv1alpha1.OAuthAPIList{}
	if err := r.List(ctx, all); err != nil {
		logf.FromContext(ctx).Error(err, "list OAuthAPIs sharing an audience", "audience", aud)
		return nil
	}
	var reqs []reconcile.Request
	for i := range all.Items {
		if all.Items[i].Name != o.GetName() && all.Items[i].EffectiveAudience() == aud {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&all.Items[i])})
		}
	}
	return reqs
}

// audienceChanged passes creations, deletions and updates that change the effective
// audience.
func audienceChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.(*oauthv1alpha1.OAuthAPI).EffectiveAudience() != e.ObjectNew.(*oauthv1alpha1.OAuthAPI).EffectiveAudience()
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}
