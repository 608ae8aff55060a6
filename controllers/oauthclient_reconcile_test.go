package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
)

// These tests run the OAuthClient reconciler against controller-runtime's fake client:
// no API server.

func fakeScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(oauthv1alpha1.AddToScheme(s))
	return s
}

// reconcileWorld is a Ready ClientSecret client with its Secret, whose rotate-secret
// annotation has a new value: the next reconcile rotates (patches) the Secret.
type reconcileWorld struct {
	client       *oauthv1alpha1.OAuthClient
	secret       *corev1.Secret
	secretPatch  func() error // the answer to a patch of the Secret; nil: the fake client's
	statusWrites int
	recorder     *events.FakeRecorder
}

func (w *reconcileWorld) reconciler(t *testing.T) *OAuthClientReconciler {
	t.Helper()
	scheme := fakeScheme(t)
	oc := planClient(withTrigger("new"))
	oc.Generation = 2
	meta.SetStatusCondition(&oc.Status.Conditions, metav1.Condition{Type: oauthv1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: oauthv1alpha1.ReasonReady, Message: "credentials are in Secret erp", ObservedGeneration: 2})
	oc.Status.ObservedGeneration = 2
	secret := storedSecret(oc, map[string]string{kSecret: goodSecret}, map[string]string{aRotatedAt: at(-time.Hour), aTrigger: "old"})
	if err := controllerutil.SetControllerReference(oc, secret, scheme); err != nil {
		t.Fatal(err)
	}
	w.client, w.secret, w.recorder = oc, secret, events.NewFakeRecorder(16)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(append(admitting(oc), oc, secret)...).
		WithStatusSubresource(&oauthv1alpha1.OAuthClient{}).
		WithInterceptorFuncs(interceptor.Funcs{
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				if _, ok := obj.(*corev1.Secret); ok && w.secretPatch != nil {
					return w.secretPatch()
				}
				return c.Patch(ctx, obj, patch, opts...)
			},
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				w.statusWrites++
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
		}).Build()
	return fakeReconciler(t, scheme, c, c, w.recorder)
}

// admitting are the objects that admit oc to the API back-office: its namespace and
// the OAuthAPI.
func admitting(oc *oauthv1alpha1.OAuthClient) []client.Object {
	return []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: oc.Namespace}},
		&oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: "back-office"},
			Spec: oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll}}},
	}
}

// fakeReconciler is the OAuthClient reconciler reading its cache through c and the
// API server through reader, for the issuer https://oauth.test, at planNow.
func fakeReconciler(t *testing.T, scheme *runtime.Scheme, c client.Client, reader client.Reader, recorder events.EventRecorder) *OAuthClientReconciler {
	t.Helper()
	cfg, err := config.Parse([]byte("issuer: https://oauth.test"))
	if err != nil {
		t.Fatal(err)
	}
	return &OAuthClientReconciler{Client: c, APIReader: reader, Scheme: scheme, Recorder: recorder, Config: cfg,
		Clock: clocktesting.NewFakePassiveClock(planNow)}
}

func (w *reconcileWorld) reconcile(t *testing.T, r *OAuthClientReconciler) (ctrl.Result, error, *oauthv1alpha1.OAuthClient, *corev1.Secret) {
	t.Helper()
	res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(w.client)})
	oc := &oauthv1alpha1.OAuthClient{}
	secret := &corev1.Secret{}
	if err := r.Get(context.Background(), client.ObjectKeyFromObject(w.client), oc); err != nil {
		t.Fatal(err)
	}
	if err := r.Get(context.Background(), client.ObjectKeyFromObject(w.secret), secret); err != nil {
		t.Fatal(err)
	}
	return res, err, oc, secret
}

// An optimistic-lock conflict on the Secret (another writer came first) requeues the
// client and leaves its status alone: it never shows as Ready=False, and nothing is
// reported of a rotation that was not written. The next reconcile rotates.
func TestReconcileConflictRequeuesWithoutStatus(t *testing.T) {
	t.Parallel()
	w := &reconcileWorld{}
	r := w.reconciler(t)
	w.secretPatch = func() error {
		return apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, w.secret.Name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	}
	res, err, oc, secret := w.reconcile(t, r)
	if err != nil || res.RequeueAfter != conflictRetry {
		t.Fatalf("Reconcile = %+v, %v; want a requeue after %s and no error", res, err, conflictRetry)
	}
	if w.statusWrites != 0 {
		t.Errorf("%d status writes after a conflict, want none", w.statusWrites)
	}
	if c := meta.FindStatusCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready after a conflict: %+v", c)
	}
	if len(w.recorder.Events) != 0 {
		t.Errorf("events after a conflict: %q", <-w.recorder.Events)
	}
	if string(secret.Data[kSecret]) != goodSecret {
		t.Error("the Secret changed although its patch conflicted")
	}

	w.secretPatch = nil
	res, err, oc, secret = w.reconcile(t, r)
	if err != nil || res.RequeueAfter != 24*time.Hour+time.Second {
		t.Fatalf("second Reconcile = %+v, %v; want the rotation and a requeue at the previous secret's expiry", res, err)
	}
	if string(secret.Data[kPrevSecret]) != goodSecret || secret.Annotations[aTrigger] != "new" {
		t.Errorf("the second reconcile did not rotate: %v", secret.Annotations)
	}
	if c := meta.FindStatusCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready after the rotation: %+v", c)
	}
	if got := <-w.recorder.Events; got != "Normal SecretRotated rotated the client secret in Secret \"erp\" (trigger: annotation); the previous one works for 24h0m0s more" {
		t.Errorf("event %q", got)
	}
}

// Any other failure is a ReconcileError condition that names the Secret, and an error
// the controller retries with back-off.
func TestReconcileErrorIsReported(t *testing.T) {
	t.Parallel()
	w := &reconcileWorld{}
	r := w.reconciler(t)
	w.secretPatch = func() error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, w.secret.Name, errors.New("no"))
	}
	_, err, oc, _ := w.reconcile(t, r)
	if !apierrors.IsForbidden(err) {
		t.Fatalf("Reconcile error = %v, want the Forbidden, wrapped", err)
	}
	c := meta.FindStatusCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady)
	want := `update Secret shop/erp: secrets "erp" is forbidden: no; the operator retries`
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != oauthv1alpha1.ReasonReconcileError || c.Message != want {
		t.Errorf("Ready = %+v, want False %s %q", c, oauthv1alpha1.ReasonReconcileError, want)
	}
	if w.statusWrites != 1 {
		t.Errorf("%d status writes, want 1", w.statusWrites)
	}
	// The same failure again writes nothing new: the message is stable.
	if _, err, _, _ = w.reconcile(t, r); err == nil || w.statusWrites != 1 {
		t.Errorf("second failure: error %v, %d status writes, want 1", err, w.statusWrites)
	}
}
