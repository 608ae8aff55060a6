package main

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// readiness counts the benchmark's Ready clients from one watch (an informer whose
// cache keeps only each client's name and Ready condition), rather than listing
// every client again and again: a list of 100,000 clients every few seconds would be
// the API server's heaviest work of the run.
type readiness struct {
	mu      sync.Mutex
	ready   map[types.NamespacedName]bool
	nReady  int
	changed chan struct{} // receives (without blocking) after every change
}

func watchReadiness(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme) (*readiness, error) {
	c, err := cache.New(cfg, cache.Options{
		Scheme: scheme,
		ByObject: map[client.Object]cache.ByObject{
			&oauthv1alpha1.OAuthClient{}: {
				Label:     labels.SelectorFromSet(labels.Set{scaleLabel: "true"}),
				Transform: readyOnly,
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("readiness watch: %w", err)
	}
	inf, err := c.GetInformer(ctx, &oauthv1alpha1.OAuthClient{})
	if err != nil {
		return nil, fmt.Errorf("readiness watch: %w", err)
	}
	r := &readiness{ready: map[types.NamespacedName]bool{}, changed: make(chan struct{}, 1)}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { r.set(o, true) },
		UpdateFunc: func(_, o any) { r.set(o, true) },
		DeleteFunc: func(o any) { r.set(o, false) },
	}); err != nil {
		return nil, fmt.Errorf("readiness watch: %w", err)
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("readiness watch: cache did not sync: %w", ctx.Err())
	}
	return r, nil
}

// readyOnly keeps of an OAuthClient its name and whether it is Ready.
func readyOnly(obj any) (any, error) {
	oc, ok := obj.(*oauthv1alpha1.OAuthClient)
	if !ok {
		return obj, nil
	}
	out := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{
		Namespace: oc.Namespace, Name: oc.Name, ResourceVersion: oc.ResourceVersion,
	}}
	if meta.IsStatusConditionTrue(oc.Status.Conditions, oauthv1alpha1.ConditionReady) {
		out.Status.Conditions = []metav1.Condition{{Type: oauthv1alpha1.ConditionReady, Status: metav1.ConditionTrue}}
	}
	return out, nil
}

func (r *readiness) set(o any, present bool) {
	if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = tomb.Obj
	}
	oc, ok := o.(*oauthv1alpha1.OAuthClient)
	if !ok {
		return
	}
	key := types.NamespacedName{Namespace: oc.Namespace, Name: oc.Name}
	ready := present && meta.IsStatusConditionTrue(oc.Status.Conditions, oauthv1alpha1.ConditionReady)
	r.mu.Lock()
	if was := r.ready[key]; was != ready {
		if ready {
			r.nReady++
		} else {
			r.nReady--
		}
	}
	if present {
		r.ready[key] = ready
	} else {
		delete(r.ready, key)
	}
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// counts returns how many clients are known and how many of them are Ready.
func (r *readiness) counts() (ready, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nReady, len(r.ready)
}
