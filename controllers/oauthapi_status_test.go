package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// The OAuthAPI status holds the effective audience and, while another API shares it, an
// AudienceConflict condition naming the others; nothing else survives a reconcile.
func TestAPIStatus(t *testing.T) {
	t.Parallel()
	since := metav1.NewTime(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	api := &oauthv1alpha1.OAuthAPI{
		ObjectMeta: metav1.ObjectMeta{Name: "back-office", Generation: 3},
		Status: oauthv1alpha1.OAuthAPIStatus{Conditions: []metav1.Condition{
			{Type: oauthv1alpha1.ConditionAudienceConflict, Status: metav1.ConditionTrue, Reason: oauthv1alpha1.ReasonSharedAudience, Message: "old", LastTransitionTime: since},
			{Type: "Forged", Status: metav1.ConditionTrue, Reason: "ByHand", LastTransitionTime: since},
		}},
	}
	st := apiStatus(api, []string{"a", "z"})
	if st.Audience != "back-office" || st.ObservedGeneration != 3 || len(st.Conditions) != 1 {
		t.Fatalf("status %+v", st)
	}
	c := meta.FindStatusCondition(st.Conditions, oauthv1alpha1.ConditionAudienceConflict)
	want := `audience "back-office" is also the audience of OAuthAPI "a", "z": no tokens are issued for it until only one OAuthAPI has it`
	if c.Message != want || c.ObservedGeneration != 3 || !c.LastTransitionTime.Equal(&since) {
		t.Errorf("condition %+v, want message %q and the transition time kept", c, want)
	}
	if st := apiStatus(api, nil); st.Conditions != nil {
		t.Errorf("without a conflict: conditions %+v, want none", st.Conditions)
	}
}
