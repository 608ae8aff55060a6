package controllers

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// countingReader is the reconciler's API reader: it counts the reads that reach the
// API server.
type countingReader struct {
	client.Reader
	reads *int
}

func (c countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	*c.reads++
	return c.Reader.Get(ctx, key, obj, opts...)
}

// cacheGet answers a fake client's Get as the manager's cache does: it holds only
// Secrets with the managed-by label.
func cacheGet(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if err := c.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	if s, ok := obj.(*corev1.Secret); ok && s.Labels[oauthv1alpha1.ManagedByLabel] != oauthv1alpha1.ManagedByValue {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, key.Name)
	}
	return nil
}

// Which Secret a client's reconcile looks for on the API server, and what it finds:
// the fake client answers like the manager's cache (Secrets only with the managed-by
// label); the API reader sees every object.
func TestSecretLookup(t *testing.T) {
	t.Parallel()
	ready := func(oc *oauthv1alpha1.OAuthClient) {
		oc.Status.SecretName = oc.EffectiveSecretName()
		meta.SetStatusCondition(&oc.Status.Conditions, metav1.Condition{Type: oauthv1alpha1.ConditionReady,
			Status: metav1.ConditionTrue, Reason: oauthv1alpha1.ReasonReady, Message: "credentials are in Secret erp"})
	}
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "erp"},
		Data: map[string][]byte{"password": []byte("hunter2")}}
	// unlabelled is the client's own Secret without the managed-by label: removed by
	// hand, or not in the cache yet.
	unlabelled := func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
		s := storedSecret(oc, map[string]string{kSecret: goodSecret}, map[string]string{aRotatedAt: at(-time.Hour)})
		s.Labels = nil
		s.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(oc, oauthv1alpha1.GroupVersion.WithKind("OAuthClient"))}
		return s
	}
	tests := []struct {
		name string
		// client is the OAuthClient; secret the Secret of its name already stored, if any.
		client func() *oauthv1alpha1.OAuthClient
		secret func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret
		// liveReads and creates are the requests the reconcile makes for the Secret.
		liveReads, creates int
		ready              metav1.ConditionStatus
		reason             string
		event              string
	}{
		{
			name:    "a new client's Secret is created without looking for it first",
			client:  func() *oauthv1alpha1.OAuthClient { return planClient() },
			creates: 1, ready: metav1.ConditionTrue, reason: oauthv1alpha1.ReasonReady, event: EventSecretCreated,
		},
		{
			name:      "a new client whose Secret name is taken by someone's Secret: the create fails, the read finds it, it is left alone",
			client:    func() *oauthv1alpha1.OAuthClient { return planClient() },
			secret:    func(*oauthv1alpha1.OAuthClient) *corev1.Secret { return foreign.DeepCopy() },
			liveReads: 1, creates: 1, ready: metav1.ConditionFalse, reason: oauthv1alpha1.ReasonSecretConflict, event: EventSecretConflict,
		},
		{
			name:      "a new client whose own Secret is not cached yet: the create fails, the read finds it, nothing is generated again",
			client:    func() *oauthv1alpha1.OAuthClient { return planClient() },
			secret:    unlabelled,
			liveReads: 1, creates: 1, ready: metav1.ConditionTrue, reason: oauthv1alpha1.ReasonReady, event: EventSecretRepaired,
		},
		{
			name:      "a Ready client whose Secret lost its label is looked for first, and repaired",
			client:    func() *oauthv1alpha1.OAuthClient { return planClient(ready) },
			secret:    unlabelled,
			liveReads: 1, ready: metav1.ConditionTrue, reason: oauthv1alpha1.ReasonReady, event: EventSecretRepaired,
		},
		{
			name:      "a Ready client's Secret that is gone is looked for, then created again",
			client:    func() *oauthv1alpha1.OAuthClient { return planClient(ready) },
			liveReads: 1, creates: 1, ready: metav1.ConditionTrue, reason: oauthv1alpha1.ReasonReady, event: EventSecretRecreated,
		},
		{
			name:      "a Ready client whose Secret name someone took is looked for first: no create",
			client:    func() *oauthv1alpha1.OAuthClient { return planClient(ready) },
			secret:    func(*oauthv1alpha1.OAuthClient) *corev1.Secret { return foreign.DeepCopy() },
			liveReads: 1, ready: metav1.ConditionFalse, reason: oauthv1alpha1.ReasonSecretConflict, event: EventSecretConflict,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			scheme := fakeScheme(t)
			oc := tc.client()
			objs := append(admitting(oc), oc)
			var stored *corev1.Secret
			if tc.secret != nil {
				stored = tc.secret(oc)
				objs = append(objs, stored)
			}
			creates, liveReads := 0, 0
			// api is what the API server holds; cache answers as the manager's cache does.
			api := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
				WithStatusSubresource(&oauthv1alpha1.OAuthClient{}).Build()
			cache := interceptor.NewClient(api, interceptor.Funcs{
				Get: cacheGet,
				Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
					if _, ok := obj.(*corev1.Secret); ok {
						creates++
					}
					return c.Create(ctx, obj, opts...)
				},
			})
			recorder := events.NewFakeRecorder(16)
			r := fakeReconciler(t, scheme, cache, countingReader{api, &liveReads}, recorder)

			if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(oc)}); err != nil {
				t.Fatalf("Reconcile: %v", err)
			}
			if liveReads != tc.liveReads || creates != tc.creates {
				t.Errorf("%d reads of the Secret from the API server and %d creates, want %d and %d", liveReads, creates, tc.liveReads, tc.creates)
			}
			got := &oauthv1alpha1.OAuthClient{}
			if err := api.Get(context.Background(), client.ObjectKeyFromObject(oc), got); err != nil {
				t.Fatal(err)
			}
			if cond := meta.FindStatusCondition(got.Status.Conditions, oauthv1alpha1.ConditionReady); cond == nil || cond.Status != tc.ready || cond.Reason != tc.reason {
				t.Errorf("Ready = %+v, want %s %s", cond, tc.ready, tc.reason)
			}
			var reasons []string
			for len(recorder.Events) > 0 {
				reasons = append(reasons, strings.Fields(<-recorder.Events)[1])
			}
			if !slices.Contains(reasons, tc.event) {
				t.Errorf("events %v, want %s", reasons, tc.event)
			}
			secret := &corev1.Secret{}
			if err := api.Get(context.Background(), client.ObjectKey{Namespace: oc.Namespace, Name: oc.EffectiveSecretName()}, secret); err != nil {
				t.Fatal(err)
			}
			if tc.reason == oauthv1alpha1.ReasonSecretConflict {
				if !reflect.DeepEqual(secret.Data, foreign.Data) || len(secret.Labels) != 0 || len(secret.OwnerReferences) != 0 {
					t.Errorf("someone's Secret was changed: %+v", secret)
				}
				return
			}
			if oauthv1alpha1.SecretOwner(secret) != oc.UID || len(secret.Data[kSecret]) < minClientSecretLen {
				t.Errorf("the client's Secret: owner %q, client_secret of %d bytes", oauthv1alpha1.SecretOwner(secret), len(secret.Data[kSecret]))
			}
			if stored != nil && string(secret.Data[kSecret]) != goodSecret {
				t.Error("the stored client secret was replaced")
			}
		})
	}
}

// A create that finds the Secret already there generated nothing the client keeps: it
// must not spend the client's credential-generation budget. Here a new client's Secret
// is created, but its status write fails and the cache has not seen the Secret yet
// (the race of a reconcile that follows a failed status write); each retry tries the
// create again and finds the client's own Secret. Once the status is written the client
// must be Ready with the credential first created, and the budget must have spent one
// generation, not one per retry.
func TestCreateFirstRetriesSpendNoBudget(t *testing.T) {
	t.Parallel()
	scheme := fakeScheme(t)
	oc := planClient()
	api := fake.NewClientBuilder().WithScheme(scheme).WithObjects(append(admitting(oc), oc)...).
		WithStatusSubresource(&oauthv1alpha1.OAuthClient{}).Build()
	failedStatusWrites := 0
	cache := interceptor.NewClient(api, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*corev1.Secret); ok { // not in the cache yet
				return apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, key.Name)
			}
			return c.Get(ctx, key, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			if failedStatusWrites < generationBurst {
				failedStatusWrites++
				return apierrors.NewTooManyRequests("slow down", 1)
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
	r := fakeReconciler(t, scheme, cache, api, events.NewFakeRecorder(64))
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(oc)}
	var first []byte
	for i := 0; i <= generationBurst; i++ {
		_, err := r.Reconcile(context.Background(), req)
		if (err != nil) != (i < generationBurst) {
			t.Fatalf("reconcile %d: %v", i, err)
		}
		secret := &corev1.Secret{}
		if err := api.Get(context.Background(), client.ObjectKey{Namespace: oc.Namespace, Name: oc.EffectiveSecretName()}, secret); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = secret.Data[kSecret]
		} else if string(secret.Data[kSecret]) != string(first) {
			t.Fatalf("reconcile %d replaced the client secret", i)
		}
	}
	got := &oauthv1alpha1.OAuthClient{}
	if err := api.Get(context.Background(), req.NamespacedName, got); err != nil {
		t.Fatal(err)
	}
	if cond := meta.FindStatusCondition(got.Status.Conditions, oauthv1alpha1.ConditionReady); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %+v, want True: the client's Secret exists and holds its credential", cond)
	}
	for i := 1; i < generationBurst; i++ {
		if _, ok := r.budget().take(oc.UID, planNow); !ok {
			t.Errorf("generation %d after the creation refused: creates that found the Secret spent the budget", i+1)
		}
	}
}

// A new client whose Secret name is taken by someone's Secret generated nothing: its
// budget is whole when the name is freed (a creation, a switch of method and a rotation
// in a row are never held back).
func TestCreateFirstConflictSpendsNoBudget(t *testing.T) {
	t.Parallel()
	scheme := fakeScheme(t)
	oc := planClient()
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "erp"},
		Data: map[string][]byte{"password": []byte("hunter2")}}
	api := fake.NewClientBuilder().WithScheme(scheme).WithObjects(append(admitting(oc), oc, foreign)...).
		WithStatusSubresource(&oauthv1alpha1.OAuthClient{}).Build()
	cache := interceptor.NewClient(api, interceptor.Funcs{
		Get: cacheGet,
	})
	r := fakeReconciler(t, scheme, cache, api, events.NewFakeRecorder(64))
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(oc)}); err != nil {
		t.Fatal(err)
	}
	for i := range generationBurst {
		if _, ok := r.budget().take(oc.UID, planNow); !ok {
			t.Fatalf("generation %d refused: the create that found someone's Secret spent the budget", i+1)
		}
	}
}
