// Package clusterstate keeps a token server's State (tokenserver.Store) up to date from
// the manager's informers: OAuthClients, their Secrets (the cache holds only the
// operator's), OAuthAPIs, OAuthTrustedIssuers, Namespaces and ServiceAccounts (metadata
// only). The token server then reads the cluster from memory, and keeps serving while
// the API server is briefly unavailable.
package clusterstate

import (
	"context"
	"fmt"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/tokenserver"
)

// Objects are the kinds the token server reads, as the cache holds them.
func Objects() []client.Object {
	return []client.Object{
		&oauthv1alpha1.OAuthClient{}, &corev1.Secret{}, &oauthv1alpha1.OAuthAPI{}, &oauthv1alpha1.OAuthTrustedIssuer{},
		&corev1.Namespace{}, ServiceAccountMetadata(),
	}
}

// ServiceAccountMetadata is the metadata-only form of a ServiceAccount, as cached.
func ServiceAccountMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	return m
}

// Feed records every object of the kinds in Objects in the store, as the informers
// deliver them, from now on.
type Feed struct {
	// registrations are the informer handlers, set once by Start; Synced reads them
	// from the readiness probe's goroutine.
	registrations atomic.Pointer[[]toolscache.ResourceEventHandlerRegistration]
}

// Start registers the store's handlers on the informers. Requests before the
// informers' first lists are delivered find no client.
func (f *Feed) Start(ctx context.Context, informers cache.Informers, store *tokenserver.Store) error {
	regs := make([]toolscache.ResourceEventHandlerRegistration, 0, len(Objects()))
	for _, obj := range Objects() {
		inf, err := informers.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("token server: watch %T: %w", obj, err)
		}
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { apply(o, store.Set) },
			UpdateFunc: func(_, o any) { apply(o, store.Set) },
			DeleteFunc: func(o any) { apply(o, func(obj metav1.Object) bool { store.Remove(obj); return true }) },
		})
		if err != nil {
			return fmt.Errorf("token server: watch %T: %w", obj, err)
		}
		regs = append(regs, reg)
	}
	f.registrations.Store(&regs)
	return nil
}

// Synced reports whether the store has seen the informers' initial lists.
func (f *Feed) Synced() bool {
	regs := f.registrations.Load()
	if regs == nil {
		return false
	}
	for _, reg := range *regs {
		if !reg.HasSynced() {
			return false
		}
	}
	return true
}

func apply(o any, f func(metav1.Object) bool) {
	if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = tomb.Obj
	}
	if obj, ok := o.(metav1.Object); ok {
		f(obj)
	}
}
