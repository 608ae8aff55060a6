package operator

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
)

// TestInformersHeldWhileTheAPIServerIsDown: the informers' list and watch calls pass
// straight through while the API server answers; after a failed probe they wait until
// a probe succeeds again (probes come every second then), so client-go's reflector
// does not back off for up to a minute through a long outage.
func TestInformersHeldWhileTheAPIServerIsDown(t *testing.T) {
	var down atomic.Bool
	p := &APIServerProbe{
		check: func(context.Context) error {
			if down.Load() {
				return errors.New("connection refused")
			}
			return nil
		},
		grace: time.Minute, interval: time.Hour, timeout: time.Second,
		start: time.Now(), recovered: make(chan struct{}),
	}
	var lists, watches atomic.Int32
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			lists.Add(1)
			return &corev1.SecretList{}, nil
		},
		WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) {
			watches.Add(1)
			return watch.NewFake(), nil
		},
	}
	if p.NewInformer(lw, &corev1.Secret{}, 0, toolscache.Indexers{}) == nil {
		t.Fatal("no informer")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Up: no wait.
	p.probe(ctx)
	start := time.Now()
	if _, err := lw.ListWithContextFunc(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := lw.WatchFuncWithContext(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 500*time.Millisecond || lists.Load() != 1 || watches.Load() != 1 {
		t.Fatalf("with the API server up: %s, %d lists, %d watches", d, lists.Load(), watches.Load())
	}

	// Down: held until a probe succeeds.
	down.Store(true)
	go func() { _ = p.Start(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !p.failing.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the probe did not notice the API server was down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	returned := make(chan time.Time, 1)
	go func() {
		_, _ = lw.WatchFuncWithContext(ctx, metav1.ListOptions{})
		returned <- time.Now()
	}()
	select {
	case <-returned:
		t.Fatal("a watch went through while the API server was down")
	case <-time.After(2500 * time.Millisecond):
	}
	if watches.Load() != 1 {
		t.Fatalf("%d watches while held", watches.Load())
	}
	up := time.Now()
	down.Store(false)
	select {
	case at := <-returned:
		if d := at.Sub(up); d > failingInterval+time.Second {
			t.Errorf("the watch went through %s after the API server came back, want within about %s", d, failingInterval)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch was still held after the API server came back")
	}
	if watches.Load() != 2 {
		t.Fatalf("%d watches, want 2", watches.Load())
	}

	// Held calls end with their context.
	down.Store(true)
	p.probe(ctx) // the loop probes again only in an hour (interval)
	if !p.failing.Load() {
		t.Fatal("a failed probe did not count")
	}
	callCtx, callCancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer callCancel()
	start = time.Now()
	_, _ = lw.ListWithContextFunc(callCtx, metav1.ListOptions{})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a held list outlived its context by %s", d)
	}
}
