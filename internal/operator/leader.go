package operator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	crleaderelection "sigs.k8s.io/controller-runtime/pkg/leaderelection"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Leader-election timings: controller-runtime's defaults.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// LeaderWork runs the leader-only work (the reconcilers, signing-key rotation) in terms:
// a term starts when this replica becomes leader and ends when it stops leading; the
// process, its cache and its token server go on, and the replica campaigns again.
//
// controller-runtime's own leader election cannot do this: its manager starts its
// leader-elected runnables once and exits the process when the lease is lost. So the
// process's manager runs without leader election (cache, token server, probes,
// metrics: every replica), and LeaderWork, one of its runnables, loops on client-go's
// leader election (the same Lease, ReleaseOnCancel) and runs each term in a manager of
// its own built on the process's cache and client (termCache): nothing is listed or
// watched again, and nothing is started twice.
//
// A term ends when
//   - the lease was not renewed for the renew deadline (the API server is unreachable,
//     or another replica took the lease): the term's controllers are stopped before the
//     lease can expire for the others (lease duration - renew deadline later);
//   - the process stops (SIGTERM): the controllers stop first, then the lease is
//     released at once so another replica takes over without waiting for it to expire;
//   - the term's manager fails: the lease is released and the replica campaigns again
//     after a retry period.
//
// Without leader election there is one term, as long as the process.
type LeaderWork struct {
	parent manager.Manager
	setup  func(term manager.Manager) error
	log    logr.Logger

	election             bool
	lock                 *renewTrackingLock
	name                 string
	leaseDuration, renew time.Duration
	retry                time.Duration

	leading atomic.Bool
	terms   atomic.Int64
}

var _ manager.LeaderElectionRunnable = (*LeaderWork)(nil)

// LeaderElection configures LeaderWork's election.
type LeaderElection struct {
	// Enabled turns leader election on; off, the leader-only work runs for the life
	// of the process.
	Enabled bool
	// ID names the Lease; Namespace is its namespace.
	ID, Namespace string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's timings; zero
	// takes the defaults above.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

func (le *LeaderElection) setDefaults() error {
	if le.LeaseDuration == 0 {
		le.LeaseDuration = DefaultLeaseDuration
	}
	if le.RenewDeadline == 0 {
		le.RenewDeadline = DefaultRenewDeadline
	}
	if le.RetryPeriod == 0 {
		le.RetryPeriod = DefaultRetryPeriod
	}
	switch {
	case le.RetryPeriod < 0 || le.RenewDeadline < 0 || le.LeaseDuration < 0:
		return fmt.Errorf("leader election: durations must be positive")
	case le.LeaseDuration <= le.RenewDeadline:
		return fmt.Errorf("leader election: lease duration (%s) must be longer than the renew deadline (%s)", le.LeaseDuration, le.RenewDeadline)
	case le.RenewDeadline <= time.Duration(leaderelection.JitterFactor*float64(le.RetryPeriod)):
		return fmt.Errorf("leader election: renew deadline (%s) must be longer than %.1f x the retry period (%s)", le.RenewDeadline, leaderelection.JitterFactor, le.RetryPeriod)
	case le.LeaseDuration < time.Second:
		return fmt.Errorf("leader election: lease duration (%s) must be at least 1s (the Lease counts whole seconds)", le.LeaseDuration)
	}
	return nil
}

// newLeaderWork prepares the loop; setup registers the leader-only controllers on a
// term's manager, once per term.
func newLeaderWork(parent manager.Manager, cfg *rest.Config, le LeaderElection, setup func(manager.Manager) error, log logr.Logger) (*LeaderWork, error) {
	w := &LeaderWork{parent: parent, setup: setup, log: log, election: le.Enabled}
	if !le.Enabled {
		return w, nil
	}
	if err := le.setDefaults(); err != nil {
		return nil, err
	}
	if le.ID == "" || le.Namespace == "" {
		return nil, errors.New("leader election: the Lease needs a name and a namespace")
	}
	// controller-runtime's lock: a Lease, identity <hostname>_<uuid>, a client timeout
	// of half the renew deadline, events on the Lease.
	lock, err := crleaderelection.NewResourceLock(cfg, parent, crleaderelection.Options{
		LeaderElection:          true,
		LeaderElectionNamespace: le.Namespace,
		LeaderElectionID:        le.ID,
		RenewDeadline:           le.RenewDeadline,
	})
	if err != nil {
		return nil, fmt.Errorf("leader election: Lease %s/%s: %w", le.Namespace, le.ID, err)
	}
	w.lock = &renewTrackingLock{Interface: lock}
	w.name = le.ID
	w.leaseDuration, w.renew, w.retry = le.LeaseDuration, le.RenewDeadline, le.RetryPeriod
	return w, nil
}

// NeedLeaderElection is false: LeaderWork runs in every replica and elects itself.
func (w *LeaderWork) NeedLeaderElection() bool { return false }

// Leading reports whether the leader-only work runs in this process now.
func (w *LeaderWork) Leading() bool { return w.leading.Load() }

// Terms is how many terms have started in this process.
func (w *LeaderWork) Terms() int64 { return w.terms.Load() }

// Identity is this replica's identity in the Lease ("" without leader election).
func (w *LeaderWork) Identity() string {
	if w.lock == nil {
		return ""
	}
	return w.lock.Identity()
}

// Start runs terms until ctx ends.
func (w *LeaderWork) Start(ctx context.Context) error {
	if !w.election {
		return w.runTerm(ctx)
	}
	for {
		if err := w.campaign(ctx); err != nil || ctx.Err() != nil {
			return err
		}
		// Give the others a retry period before competing again.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(w.retry):
		}
	}
}

// campaign competes for the lease, runs one term if it wins, and returns when the term
// is over and the lease given up (or ctx ends). An error is a term that could not be
// set up: the process stops, as it does when the manager cannot be built.
func (w *LeaderWork) campaign(ctx context.Context) error {
	leading := make(chan context.Context, 1)
	elector, err := w.newElector(leading)
	if err != nil {
		return err
	}
	// The elector outlives ctx: on shutdown it is cancelled only after the term has
	// stopped, and then it releases the lease (if it still holds it; it may not reach
	// the API server: that takes at most its client timeout).
	electCtx, stopElector := context.WithCancel(logr.NewContext(context.WithoutCancel(ctx), w.log.WithName("election")))
	electorDone := make(chan struct{})
	go func() {
		defer close(electorDone)
		elector.Run(electCtx)
	}()
	defer func() {
		stopElector()
		<-electorDone
	}()
	w.log.Info("competing for the lease", "lease", w.name, "identity", w.lock.Identity())
	select {
	case <-ctx.Done():
		return nil
	case leaseCtx := <-leading:
		return w.lead(ctx, leaseCtx)
	}
}

// newElector builds the elector of one campaign; it sends the term's context on
// leading when it wins.
func (w *LeaderWork) newElector(leading chan<- context.Context) (*leaderelection.LeaderElector, error) {
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          w.lock,
		LeaseDuration: w.leaseDuration,
		RenewDeadline: w.renew,
		RetryPeriod:   w.retry,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(c context.Context) { leading <- c },
			OnStoppedLeading: func() {},
			OnNewLeader: func(identity string) {
				w.log.Info("leader observed", "lease", w.name, "leader", identity, "self", identity == w.lock.Identity())
			},
		},
		// Released after the term has stopped (SIGTERM), so a successor starts at once.
		ReleaseOnCancel: true,
		Name:            w.name,
	})
	if err != nil {
		return nil, fmt.Errorf("leader election: Lease %s: %w", w.name, err)
	}
	return elector, nil
}

// lead runs one term until the elector gives up, the lease goes unrenewed for the
// renew deadline, or ctx ends; an error is a term that could not be set up.
func (w *LeaderWork) lead(ctx, leaseCtx context.Context) error {
	termCtx, endTerm := context.WithCancelCause(leaseCtx)
	stopOnShutdown := context.AfterFunc(ctx, func() { endTerm(errShutdown) })
	watchdogDone := make(chan struct{})
	go func() {
		defer close(watchdogDone)
		w.watchRenewals(termCtx, endTerm)
	}()
	w.log.Info("became leader: starting the leader-only work", "lease", w.name, "identity", w.lock.Identity())
	started := time.Now()
	termErr := w.runTerm(termCtx)
	stopOnShutdown()
	endTerm(errTermReturned)
	<-watchdogDone
	cause := context.Cause(termCtx)
	if leaseCtx.Err() != nil && !errors.Is(cause, errShutdown) && !errors.Is(cause, errLeaseUnrenewed) {
		cause = errors.New("the elector stopped renewing the lease")
	}
	led := time.Since(started).Round(time.Millisecond).String()
	var setupErr *termSetupError
	switch {
	case errors.As(termErr, &setupErr):
		w.log.Error(termErr, "cannot set up the leader-only work; releasing the lease", "lease", w.name)
		return termErr
	case errors.Is(cause, errShutdown):
		w.log.Info("shutting down: leader-only work stopped; releasing the lease", "lease", w.name, "led", led)
	case errors.Is(cause, errTermReturned):
		w.log.Error(termErr, "the leader-only work stopped by itself; releasing the lease and competing again", "lease", w.name)
	default:
		w.log.Info("lost the lease: leader-only work stopped; the token server keeps serving; competing again",
			"lease", w.name, "reason", cause.Error(), "led", led)
	}
	return nil
}

var (
	errShutdown       = errors.New("shutdown")
	errLeaseUnrenewed = errors.New("the lease was not renewed within the renew deadline")
	errTermReturned   = errors.New("the term's manager returned")
)

// watchRenewals ends the term once the lease has gone unrenewed for the renew deadline.
// client-go's elector notices this too, but tells only after trying to release the
// lease, which takes up to a client timeout more while the API server is unreachable;
// the controllers must stop before the lease expires for the other replicas.
func (w *LeaderWork) watchRenewals(ctx context.Context, end context.CancelCauseFunc) {
	tick := time.NewTicker(max(w.retry/4, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if since := w.lock.sinceRenewal(); since > w.renew {
				end(fmt.Errorf("%w (last renewal %s ago)", errLeaseUnrenewed, since.Round(time.Millisecond)))
				return
			}
		}
	}
}

// termSetupError is a term whose manager or controllers could not be built.
type termSetupError struct{ err error }

func (e *termSetupError) Error() string { return "set up the leader-only work: " + e.err.Error() }
func (e *termSetupError) Unwrap() error { return e.err }

// runTerm builds the term's manager on the process's cache and client, registers the
// controllers on it and runs it until ctx ends.
func (w *LeaderWork) runTerm(ctx context.Context) error {
	tc := &termCache{Cache: w.parent.GetCache()}
	defer func() {
		if err := tc.release(); err != nil {
			w.log.Error(err, "leadership term ended")
		}
	}()
	// The stop budget of the term: what is left of the lease after the renew deadline
	// (reconciles get a cancelled context and return quickly).
	stopTimeout := 10 * time.Second
	if w.election {
		stopTimeout = max(w.leaseDuration-w.renew, time.Second)
	}
	parentClient := w.parent.GetClient()
	mapper := w.parent.GetRESTMapper()
	term, err := ctrl.NewManager(w.parent.GetConfig(), ctrl.Options{
		Scheme:                 w.parent.GetScheme(),
		MapperProvider:         func(*rest.Config, *http.Client) (meta.RESTMapper, error) { return mapper, nil },
		NewCache:               func(*rest.Config, cache.Options) (cache.Cache, error) { return tc, nil },
		NewClient:              func(*rest.Config, client.Options) (client.Client, error) { return parentClient, nil },
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		LeaderElection:         false,
		// Terms follow each other in one process: the same controller names again.
		Controller:              ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
		GracefulShutdownTimeout: &stopTimeout,
		Logger:                  w.log,
	})
	if err != nil {
		return &termSetupError{fmt.Errorf("create the term's manager: %w", err)}
	}
	if err := w.setup(term); err != nil {
		return &termSetupError{err}
	}
	n := w.terms.Add(1)
	w.leading.Store(true)
	defer w.leading.Store(false)
	w.log.V(1).Info("leadership term starts", "term", n)
	if err := term.Start(ctx); err != nil {
		return fmt.Errorf("leadership term %d: %w", n, err)
	}
	return nil
}

// renewTrackingLock is the Lease lock, remembering when this replica last wrote the
// Lease as its holder (acquired or renewed).
type renewTrackingLock struct {
	resourcelock.Interface
	// renewed is the monotonic time of the last renewal, in ns since start.
	renewed atomic.Int64
}

var lockClockStart = time.Now()

func (l *renewTrackingLock) Create(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, r)
	l.noteWrite(r, err)
	return err
}

func (l *renewTrackingLock) Update(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, r)
	l.noteWrite(r, err)
	return err
}

func (l *renewTrackingLock) noteWrite(r resourcelock.LeaderElectionRecord, err error) {
	if err == nil && r.HolderIdentity == l.Identity() {
		l.renewed.Store(int64(time.Since(lockClockStart)))
	}
}

// sinceRenewal is the time since the last successful acquisition or renewal.
func (l *renewTrackingLock) sinceRenewal() time.Duration {
	return time.Since(lockClockStart) - time.Duration(l.renewed.Load())
}
