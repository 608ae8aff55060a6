package operator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// maxWatchErrorWait bounds how long an informer waits for the API server in
// WatchErrorHandler: client-go's longest back-off step.
const maxWatchErrorWait = 30 * time.Second

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

// WatchErrorHandler is the informers' watch error handler: it logs as client-go's
// does, then, when the API server did not answer (a connection error, not an API
// status), waits until a probe after the error succeeds (at most
// maxWatchErrorWait). client-go's reflector backs off after every failed list or
// watch, up to 30s plus as much jitter, so through a long outage the informers would
// relist up to a minute after the API server's return; waiting here keeps them from
// failing often enough to back off that far, and they relist a second or two after
// the return.
func (p *APIServerProbe) WatchErrorHandler(ctx context.Context, r *toolscache.Reflector, err error) {
	toolscache.DefaultWatchErrorHandler(ctx, r, err)
	var status apierrors.APIStatus
	if errors.As(err, &status) && !p.failing.Load() {
		return // the API server answered: client-go's back-off as usual
	}
	p.waitForSuccess(ctx, maxWatchErrorWait)
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
