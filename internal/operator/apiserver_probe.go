package operator

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
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
	start  time.Time
}

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
		grace:    grace,
		interval: interval,
		timeout:  min(max(interval, time.Second), 5*time.Second),
		start:    time.Now(),
	}
	return p, nil
}

// NeedLeaderElection is false: every replica serves tokens, so every replica probes.
func (p *APIServerProbe) NeedLeaderElection() bool { return false }

// Start probes the API server until ctx ends.
func (p *APIServerProbe) Start(ctx context.Context) error {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.probe(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (p *APIServerProbe) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := p.check(ctx); err == nil {
		p.lastOK.Store(int64(time.Since(p.start)))
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
