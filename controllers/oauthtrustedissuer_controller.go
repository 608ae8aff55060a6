package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/source"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/trust"
	"github.com/oauth-client-operator/oauth-client-operator/pkg/verifier"
)

// Event reasons a user may see on an OAuthTrustedIssuer.
const (
	// EventIssuerNotReady (Warning): the issuer became not Ready, or not Ready for
	// another reason (its condition's reason and message).
	EventIssuerNotReady = "IssuerNotReady"
	// EventIssuerReady (Normal): the issuer's keys are loaded and its rules compile.
	EventIssuerReady = "IssuerReady"
)

// issuerRecheck is how often an issuer's status is looked at again besides the key
// fetches that change it.
const issuerRecheck = 5 * time.Minute

// OAuthTrustedIssuerReconciler reports in each OAuthTrustedIssuer's status whether its
// tokens can be verified: its rules compile (CEL, cost-estimated), its key source is
// usable, how many keys are cached, when they were fetched, and whether they are
// stale. It shares the process's trust.Registry with the token server, so the issuer's
// keys are fetched once per process. Only the leader runs it.
type OAuthTrustedIssuerReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	client.Client
	// Recorder receives the IssuerReady and IssuerNotReady events.
	Recorder events.EventRecorder
	// Trust builds and holds the issuers. Required.
	Trust *trust.Registry
}

// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthtrustedissuers,verbs=get;list;watch
// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthtrustedissuers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile builds (or finds) the issuer in the registry and writes its status when it
// differs from what the issuer says now: one status patch, or nothing.
func (r *OAuthTrustedIssuerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj := &oauthv1alpha1.OAuthTrustedIssuer{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone: out of the registry too (the token server removes it on the
			// deletion event; this catches a reconcile of a stale copy that rebuilt it
			// in between).
			r.Trust.Remove(req.Name, "")
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	issuer := r.Trust.Ensure(obj)
	if issuer.UID == obj.UID && issuer.Generation > obj.Generation {
		// The token server has seen a newer generation than this cache: its event
		// comes next.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	want := issuerStatus(obj, issuer)
	if equality.Semantic.DeepEqual(obj.Status, want) {
		return ctrl.Result{RequeueAfter: issuerRecheck}, nil
	}
	before := obj.DeepCopy()
	obj.Status = want
	// An issuer deleted meanwhile needs no status.
	if err := client.IgnoreNotFound(r.Status().Patch(ctx, obj, client.MergeFrom(before))); err != nil {
		return ctrl.Result{}, fmt.Errorf("update status of OAuthTrustedIssuer %s: %w", obj.Name, err)
	}
	r.report(ctx, before, obj)
	return ctrl.Result{RequeueAfter: issuerRecheck}, nil
}

// issuerStatus is the status of obj as the issuer built from it stands. It holds only
// what this controller writes; the Ready condition keeps its transition time while its
// status stays.
func issuerStatus(obj *oauthv1alpha1.OAuthTrustedIssuer, issuer *trust.Issuer) oauthv1alpha1.OAuthTrustedIssuerStatus {
	keys := issuer.Keys()
	st := oauthv1alpha1.OAuthTrustedIssuerStatus{ObservedGeneration: obj.Generation, Keys: int32(keys.Keys)}
	if !keys.FetchedAt.IsZero() {
		st.LastKeyFetch = &metav1.Time{Time: keys.FetchedAt.Truncate(time.Second)}
	}
	if c := meta.FindStatusCondition(obj.Status.Conditions, oauthv1alpha1.ConditionReady); c != nil {
		st.Conditions = []metav1.Condition{*c}
	}
	cond := metav1.Condition{Type: oauthv1alpha1.ConditionReady, ObservedGeneration: obj.Generation}
	cond.Status, cond.Reason, cond.Message = issuerReadiness(issuer, keys)
	cond.Message = bounded(cond.Message)
	meta.SetStatusCondition(&st.Conditions, cond)
	return st
}

// maxConditionMessage bounds a condition message: an issuer's fetch errors hold what the
// issuer serves (its URLs), and a message over the API server's limit (32 KiB) would
// fail the status write and leave a stale Ready=True in place.
const maxConditionMessage = 1 << 10

// bounded cuts msg to maxConditionMessage bytes, at a rune boundary.
func bounded(msg string) string {
	if len(msg) <= maxConditionMessage {
		return msg
	}
	cut := maxConditionMessage - len("…")
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

// issuerReadiness is the Ready condition's status, reason and message: the same state
// always gives the same message.
func issuerReadiness(issuer *trust.Issuer, keys verifier.KeySetStatus) (metav1.ConditionStatus, string, string) {
	switch {
	case issuer.Problem() != nil:
		return metav1.ConditionFalse, issuer.Problem().Reason, issuer.Problem().Message + "; no token of this issuer is accepted"
	case keys.Keys == 0 && keys.LastError != nil:
		return metav1.ConditionFalse, oauthv1alpha1.ReasonKeysUnavailable,
			fmt.Sprintf("no key obtained yet: %v; retried at least every %s", keys.LastError, trust.DefaultRefreshInterval)
	case keys.Keys == 0:
		return metav1.ConditionFalse, oauthv1alpha1.ReasonKeysUnavailable, "the keys are being fetched"
	case !keys.StaleSince.IsZero():
		return metav1.ConditionFalse, oauthv1alpha1.ReasonKeysStale,
			fmt.Sprintf("the issuer's keys have not been refreshed since %s (%v); the %d cached keys stay in use",
				keys.StaleSince.UTC().Format(time.RFC3339), keys.LastError, keys.Keys)
	}
	return metav1.ConditionTrue, oauthv1alpha1.ReasonIssuerReady,
		fmt.Sprintf("%d keys; tokens of %s are verified", keys.Keys, issuer.URL)
}

// report emits an event and a log line when the issuer's readiness changes.
func (r *OAuthTrustedIssuerReconciler) report(ctx context.Context, before, after *oauthv1alpha1.OAuthTrustedIssuer) {
	was := meta.FindStatusCondition(before.Status.Conditions, oauthv1alpha1.ConditionReady)
	is := meta.FindStatusCondition(after.Status.Conditions, oauthv1alpha1.ConditionReady)
	log := logf.FromContext(ctx)
	switch {
	case is.Status == metav1.ConditionTrue && (was == nil || was.Status != metav1.ConditionTrue):
		log.Info("trusted issuer ready", "issuer", after.Spec.Issuer, "keys", after.Status.Keys)
		r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, EventIssuerReady, "Reconcile", "%s", is.Message)
	case is.Status != metav1.ConditionTrue && (was == nil || was.Reason != is.Reason):
		log.Info("trusted issuer not ready", "issuer", after.Spec.Issuer, "reason", is.Reason, "message", is.Message)
		r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, EventIssuerNotReady, "Reconcile", "%s: %s", is.Reason, is.Message)
	}
}

// SetupWithManager registers the controller on one manager (a leader term's): every
// change of an OAuthTrustedIssuer, and every key fetch of one (the registry's
// Changes).
func (r *OAuthTrustedIssuerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Trust == nil {
		return errors.New("set up OAuthTrustedIssuer controller: no trust registry")
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&oauthv1alpha1.OAuthTrustedIssuer{}).
		WatchesRawSource(source.Channel(r.Trust.Changes(), &handler.EnqueueRequestForObject{})).
		Named("oauthtrustedissuer").
		Complete(r)
}
