package operator

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
)

// TestWatchErrorHandlerWaitsForTheAPIServer: after a connection error an informer's
// retry waits until the API server answers a probe again (so the reflector does not
// back off for up to a minute through a long outage); an error the API server itself
// answered does not wait.
func TestWatchErrorHandlerWaitsForTheAPIServer(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	p := &APIServerProbe{
		check: func(context.Context) error {
			if down.Load() {
				return errors.New("connection refused")
			}
			return nil
		},
		grace: time.Minute, interval: time.Minute, timeout: time.Second,
		start: time.Now(), recovered: make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p.Start(ctx) }()
	reflector := toolscache.NewReflectorWithOptions(&toolscache.ListWatch{}, &corev1.Secret{},
		toolscache.NewStore(toolscache.MetaNamespaceKeyFunc), toolscache.ReflectorOptions{})

	returned := make(chan time.Time, 1)
	go func() {
		p.WatchErrorHandler(ctx, reflector, errors.New(`Get "https://127.0.0.1:1/api": dial tcp: connect: connection refused`))
		returned <- time.Now()
	}()
	select {
	case <-returned:
		t.Fatal("the handler returned while the API server was down")
	case <-time.After(2500 * time.Millisecond):
	}
	if !p.failing.Load() {
		t.Fatal("the probe did not notice the API server was down")
	}
	up := time.Now()
	down.Store(false)
	select {
	case at := <-returned:
		// Probes come every failingInterval while the API server is down.
		if d := at.Sub(up); d > failingInterval+time.Second {
			t.Errorf("the handler returned %s after the API server came back, want within about %s", d, failingInterval)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not return after the API server came back")
	}

	// The API server answered with an error: no wait.
	start := time.Now()
	p.WatchErrorHandler(ctx, reflector, apierrors.NewResourceExpired("too old resource version"))
	p.WatchErrorHandler(ctx, reflector, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "", errors.New("no")))
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("an API error waited %s", d)
	}
}
