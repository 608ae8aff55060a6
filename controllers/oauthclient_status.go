package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// clientStatus is the status an observation of the client says; reconcileErr is what
// kept the reconcile from finishing, if anything. It reads nothing but its arguments.
func (r *OAuthClientReconciler) clientStatus(oc *oauthv1alpha1.OAuthClient, obs observation, reconcileErr error) oauthv1alpha1.OAuthClientStatus {
	st := *oc.Status.DeepCopy()
	if obs.secret != nil {
		times := oauthv1alpha1.ReadRotationTimes(obs.secret)
		st.LastSecretRotationTime = timeOrNil(times.RotatedAt)
		st.PreviousSecretExpiryTime = timeOrNil(times.PreviousExpiresAt)
		st.NextSecretRotationTime = nil
		if interval := oc.SecretRotationInterval(); interval > 0 && !times.RotatedAt.IsZero() {
			st.NextSecretRotationTime = timeOrNil(times.RotatedAt.Add(interval))
		}
	}
	st.ClientID = oc.ClientID()
	st.TokenURL = r.Config.TokenURL()
	st.ObservedGeneration = oc.Generation
	if reconcileErr == nil && (obs.problem == nil || obs.problem.reason != oauthv1alpha1.ReasonSecretConflict) {
		st.SecretName = oc.EffectiveSecretName()
	}
	meta.SetStatusCondition(&st.Conditions, readyCondition(oc, obs, reconcileErr))
	return st
}

// readyCondition is the client's Ready condition: True with reason Ready, or False with
// the reason of the problem (oauthv1alpha1.Reason*) or ReconcileError. The same state
// always gives the same message.
func readyCondition(oc *oauthv1alpha1.OAuthClient, obs observation, reconcileErr error) metav1.Condition {
	cond := metav1.Condition{
		Type:               oauthv1alpha1.ConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             oauthv1alpha1.ReasonReady,
		Message:            readyMessage(oc) + obs.note,
		ObservedGeneration: oc.Generation,
	}
	switch {
	case reconcileErr != nil:
		cond.Status, cond.Reason = metav1.ConditionFalse, oauthv1alpha1.ReasonReconcileError
		cond.Message = reconcileErr.Error() + "; the operator retries"
	case obs.problem != nil:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, obs.problem.reason, obs.problem.message
	}
	return cond
}

func readyMessage(oc *oauthv1alpha1.OAuthClient) string {
	switch {
	case oc.AuthMethod() == oauthv1alpha1.AuthServiceAccountToken:
		return fmt.Sprintf("Secret %s holds where to ask; the client authenticates with tokens of ServiceAccount %s", oc.EffectiveSecretName(), oc.Spec.Authentication.ServiceAccountName)
	case oc.AuthMethod() == oauthv1alpha1.AuthFederatedToken:
		var issuers []string
		for _, r := range oc.FederatedRules() {
			if !slices.Contains(issuers, r.Issuer) {
				issuers = append(issuers, r.Issuer)
			}
		}
		return fmt.Sprintf("Secret %s holds where to ask; the client authenticates with tokens of OAuthTrustedIssuer %s", oc.EffectiveSecretName(), strings.Join(issuers, ", "))
	case oc.AuthMethod() == oauthv1alpha1.AuthPrivateKeyJWT && !oc.GeneratesKey():
		return fmt.Sprintf("Secret %s holds where to ask; the client signs assertions with the private halves of its %d public key(s)", oc.EffectiveSecretName(), len(oc.Spec.Authentication.PublicKeys))
	}
	return "credentials are in Secret " + oc.EffectiveSecretName()
}

// writeStatus writes st as the client's status when it differs from the one read: one
// merge patch, or nothing. Only this controller writes the status.
func (r *OAuthClientReconciler) writeStatus(ctx context.Context, oc *oauthv1alpha1.OAuthClient, st oauthv1alpha1.OAuthClientStatus) error {
	if equality.Semantic.DeepEqual(oc.Status, st) {
		return nil
	}
	before := oc.DeepCopy()
	oc.Status = st
	// A client deleted meanwhile needs no status.
	if err := client.IgnoreNotFound(r.Status().Patch(ctx, oc, client.MergeFrom(before))); err != nil {
		return fmt.Errorf("update status of OAuthClient %s/%s: %w", oc.Namespace, oc.Name, err)
	}
	return nil
}

func hasReason(oc *oauthv1alpha1.OAuthClient, reason string) bool {
	c := meta.FindStatusCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady)
	return c != nil && c.Reason == reason
}
