package operator

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// APIServerProbe tells whether the Kubernetes API server answered recently. A
// background loop (a Runnable of every replica, leader or not) asks the API server's
// /readyz every few seconds; the readiness check only compares the time of the last
// answer with the grace (tokenServer.apiServerGrace), so probes never call the API
// server. Within the grace a replica stays ready and keeps issuing tokens from its
// cache; past it, its cache may be stale and the replica reports not ready.
type APIServerProbe struct {
	check    func(context.Context) error
	grace    time.Duration
	interval time.Duration
	timeout  time.Duration
	// lastOK is the time of the last successful probe, in nanoseconds of monotonic
	// time since start (0 before the probe runs: the start counts as a success).
	lastOK atomic.Int64
	// failing is true while the last probe failed: probes come every second then, so
	// the return of the API server is seen at once.
	failing atomic.Bool
	start   time.Time
	// recovered is closed and replaced at each successful probe.
	mu        sync.Mutex
	recovered chan struct{}
}

// failingInterval is the probe interval while the API server does not answer.
const failingInterval = time.Second

// maxHold bounds how long NewInformer's informers wait for the API server before a
// list or watch: client-go's longest back-off step.
const maxHold = 30 * time.Second

var _ manager.LeaderElectionRunnable = (*APIServerProbe)(nil)

func newAPIServerProbe(cfg *rest.Config, grace time.Duration) (*APIServerProbe, error) {
	if grace <= 0 {
		return nil, fmt.Errorf("API server probe: grace must be positive, got %s", grace)
	}
	cfg = rest.CopyConfig(cfg)
	// The probe must not queue behind the manager's requests, nor hang.
	cfg.QPS, cfg.Burst, cfg.RateLimiter = -1, 0, nil
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("API server probe: %w", err)
	}
	// At least four probes within the grace, at most one every 5s.
	interval := min(max(grace/4, 100*time.Millisecond), 5*time.Second)
	p := &APIServerProbe{
		check: func(ctx context.Context) error {
			return dc.RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
		},
		grace:     grace,
		interval:  interval,
		timeout:   min(max(interval, time.Second), 5*time.Second),
		start:     time.Now(),
		recovered: make(chan struct{}),
	}
	return p, nil
}

// NeedLeaderElection is false: every replica serves tokens, so every replica probes.
func (p *APIServerProbe) NeedLeaderElection() bool { return false }

// Start probes the API server until ctx ends: every interval, and every second
// while it does not answer.
func (p *APIServerProbe) Start(ctx context.Context) error {
	for {
		p.probe(ctx)
		next := p.interval
		if p.failing.Load() {
			next = min(next, failingInterval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next):
		}
	}
}

func (p *APIServerProbe) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := p.check(ctx); err != nil {
		p.failing.Store(true)
		return
	}
	p.lastOK.Store(int64(time.Since(p.start)))
	p.failing.Store(false)
	p.mu.Lock()
	close(p.recovered)
	p.recovered = make(chan struct{})
	p.mu.Unlock()
}

// NewInformer is the cache's informer constructor (cache.Options.NewInformer):
// client-go's, with list and watch calls held while the API server does not answer.
//
// client-go's reflector retries a failed list or watch after a back-off that doubles
// up to 30s, plus as much jitter, so after an outage of a minute its next try can
// come a minute after the API server's return, and the caches (new clients for the
// token server, the leader's reconcilers) lag that long. Held here until a probe
// succeeds again (at most maxHold), the reflector fails a few times per outage rather
// than dozens, its back-off stays short, and it watches again within a second or two
// of the return. While the API server answers nothing is held.
func (p *APIServerProbe) NewInformer(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
	if l, ok := lw.(*toolscache.ListWatch); ok {
		if list := l.ListWithContextFunc; list != nil {
			l.ListWithContextFunc = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				p.holdWhileDown(ctx)
				return list(ctx, o)
			}
		}
		if watchFn := l.WatchFuncWithContext; watchFn != nil {
			l.WatchFuncWithContext = func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				p.holdWhileDown(ctx)
				return watchFn(ctx, o)
			}
		}
	}
	return toolscache.NewSharedIndexInformer(lw, obj, resync, indexers)
}

// holdWhileDown returns at once while the API server answers; after a failed probe it
// waits for the next successful one (at most maxHold, or until ctx ends).
func (p *APIServerProbe) holdWhileDown(ctx context.Context) {
	if p.failing.Load() {
		p.waitForSuccess(ctx, maxHold)
	}
}

// waitForSuccess returns after the next successful probe, or after max, or when ctx
// ends.
func (p *APIServerProbe) waitForSuccess(ctx context.Context, max time.Duration) {
	p.mu.Lock()
	recovered := p.recovered
	p.mu.Unlock()
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-recovered:
	case <-t.C:
	case <-ctx.Done():
	}
}

// Unreachable reports how long the API server has not answered (0 when it answered
// at the last probe, or shortly before).
func (p *APIServerProbe) Unreachable() time.Duration {
	return time.Since(p.start) - time.Duration(p.lastOK.Load())
}

// Ready is the readiness check: an error once the API server has not answered for
// longer than the grace. It makes no API call.
func (p *APIServerProbe) Ready(*http.Request) error {
	if d := p.Unreachable(); d > p.grace {
		return fmt.Errorf("API server unreachable for %s (grace %s)", d.Truncate(time.Second), p.grace)
	}
	return nil
}
