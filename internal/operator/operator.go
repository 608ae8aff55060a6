// Package operator assembles the operator's controller-runtime manager: the cache (only
// the operator's Secrets), the token server and the signing keys, which run in every
// replica, and the controllers, which run while the replica leads (LeaderWork).
// cmd/manager calls it with flags; tests call it with a real API server.
package operator

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/controllers"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing/keysecret"
	"github.com/oauth-client-operator/oauth-client-operator/internal/trust"
	"github.com/oauth-client-operator/oauth-client-operator/internal/workloadidentity"
)

// DefaultLeaderElectionID names the Lease the replicas compete for, in the operator's
// namespace.
const DefaultLeaderElectionID = "oauth-client-operator.oauth.operator.dev"

// Options are the settings that come from flags rather than the config file.
type Options struct {
	// Config is the loaded operator config file.
	Config *config.Config
	// Namespace is the operator's own namespace (signing keys, leader-election lease).
	Namespace string
	// MetricsAddr is the metrics listen address; "0" disables metrics.
	MetricsAddr string
	// ProbeAddr is the health-probe listen address; "0" disables probes.
	ProbeAddr string
	// PprofAddr is the listen address of net/http/pprof (/debug/pprof/); "" or "0"
	// disables it. For profiling on loopback (the scale benchmark), never exposed.
	PprofAddr string
	// LeaderElection makes only one replica reconcile.
	LeaderElection bool
	// LeaderElectionID names the Lease.
	LeaderElectionID string
	// LeaseDuration, RenewDeadline and RetryPeriod are the leader-election timings;
	// zero takes controller-runtime's defaults (15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// SkipControllerNameValidation allows several managers in one process (tests).
	SkipControllerNameValidation bool
	// Clock is the clock of rotations and token lifetimes; the real one when nil
	// (tests inject one).
	Clock clock.PassiveClock
	// MaxConcurrentReconciles is how many OAuthClients are reconciled at once; the work
	// waits on the API server, so several workers fill the time. Default
	// config.DefaultReconcileWorkers.
	MaxConcurrentReconciles int
	// Audit receives the token server's audit records, JSON lines never sampled;
	// default: standard error, beside the manager's log.
	Audit io.Writer
}

// Scheme returns a scheme with the Kubernetes types and the operator's API.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(oauthv1alpha1.AddToScheme(s))
	return s
}

// ManagedSecrets selects the Secrets the operator manages; the cache holds no other.
func ManagedSecrets() labels.Selector {
	return labels.SelectorFromSet(labels.Set{oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue})
}

// New builds the manager with every controller and runnable registered.
func New(ctx context.Context, restCfg *rest.Config, opts Options) (*Operator, error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	a := &assembly{
		opts: opts, restCfg: restCfg, scheme: Scheme(),
		keySecret:   types.NamespacedName{Namespace: opts.Namespace, Name: opts.Config.Signing.SecretName},
		keys:        &signing.Keyring{},
		revocations: &signing.Revocations{},
	}
	for _, step := range []func(context.Context) error{
		a.newManager, a.addTrust, a.addLeaderWork, a.addSigningKeys, a.addServiceAccountIssuer, a.addTokenService, a.addProbes,
	} {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	return &a.op, nil
}

// complete checks opts and fills in the defaults.
func (o *Options) complete() error {
	if o.Config == nil {
		return fmt.Errorf("operator options: no config")
	}
	if o.Namespace == "" {
		return fmt.Errorf("operator options: no namespace (set POD_NAMESPACE or --namespace)")
	}
	o.LeaderElectionID = cmp.Or(o.LeaderElectionID, DefaultLeaderElectionID)
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Audit == nil {
		o.Audit = os.Stderr
	}
	return nil
}

// assembly is the operator while New puts it together, one step at a time.
type assembly struct {
	opts    Options
	restCfg *rest.Config
	scheme  *runtime.Scheme
	// keySecret is the signing-key Secret.
	keySecret types.NamespacedName
	keys      *signing.Keyring
	// revocations are every revoked signing key this process has seen: the key source
	// never loads one again, and the leader's rotation revokes one again that comes
	// back.
	revocations *signing.Revocations
	// reviewer confirms bound ServiceAccount tokens with the API server.
	reviewer *workloadidentity.Reviewer
	// trust holds the OAuthTrustedIssuers, shared by the token server and the
	// controller.
	trust *trust.Registry
	op    Operator
}

// addTrust adds the registry of trusted external issuers, in every replica: one
// pkg/verifier KeySet per OAuthTrustedIssuer, refreshed while the process runs.
func (a *assembly) addTrust(context.Context) error {
	a.trust = trust.NewRegistry(trust.Options{Clock: a.opts.Clock, Log: ctrl.Log.WithName("trusted-issuers")})
	if err := a.op.Manager.Add(a.trust); err != nil {
		return fmt.Errorf("add trusted issuers: %w", err)
	}
	a.op.Trust = a.trust
	return nil
}

// newManager creates the process's manager. It runs without leader election: its
// cache, token server, probes and metrics serve in every replica whatever happens to
// the lease; LeaderWork elects and runs the leader-only controllers in terms.
func (a *assembly) newManager(ctx context.Context) error {
	probe, err := newAPIServerProbe(a.restCfg, a.opts.Config.TokenServer.APIServerGrace.Duration)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(a.restCfg, ctrl.Options{
		Scheme:                 a.scheme,
		Metrics:                metricsserver.Options{BindAddress: a.opts.MetricsAddr},
		HealthProbeBindAddress: a.opts.ProbeAddr,
		PprofBindAddress:       a.opts.PprofAddr,
		LeaderElection:         false,
		Cache: cache.Options{
			// Secrets hold every tenant's credentials: cache only the operator's own.
			// Of those, a Secret no OAuthClient controls (a tenant can label any Secret)
			// is kept without its data: the controller needs only its owner to report
			// the conflict.
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}:             {Label: ManagedSecrets(), Transform: secretTransform(a.keySecret)},
				&oauthv1alpha1.OAuthClient{}: {Transform: oauthClientTransform()},
			},
			DefaultTransform: objectTransform(),
			// Informers watch again within seconds of an outage, however long it was.
			NewInformer: probe.NewInformer,
		},
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(a.opts.SkipControllerNameValidation)},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := controllers.IndexFields(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	a.op.Manager, a.op.APIServer, a.op.Keys = mgr, probe, a.keys
	return nil
}

// addLeaderWork adds the leader-only work: the controllers, which run in terms of
// leadership on a term's manager sharing the process's cache and client.
func (a *assembly) addLeaderWork(context.Context) error {
	mgr, opts := a.op.Manager, a.opts
	leader, err := newLeaderWork(mgr, a.restCfg, LeaderElection{
		Enabled:       opts.LeaderElection,
		ID:            opts.LeaderElectionID,
		Namespace:     opts.Namespace,
		LeaseDuration: opts.LeaseDuration,
		RenewDeadline: opts.RenewDeadline,
		RetryPeriod:   opts.RetryPeriod,
	}, a.setupControllers(mgr.GetEventRecorder("oauth-client-operator"), mgr.GetAPIReader()), ctrl.Log.WithName("leader"))
	if err != nil {
		return err
	}
	if err := mgr.Add(leader); err != nil {
		return fmt.Errorf("add leader-only work: %w", err)
	}
	a.op.Leader = leader
	return nil
}

// setupControllers returns what registers the leader-only controllers on one term's
// manager.
func (a *assembly) setupControllers(recorder events.EventRecorder, apiReader client.Reader) func(ctrl.Manager) error {
	cfg := a.opts.Config
	return func(term ctrl.Manager) error {
		if err := (&controllers.OAuthClientReconciler{
			Client:    term.GetClient(),
			APIReader: apiReader,
			Scheme:    a.scheme,
			Recorder:  recorder,
			Config:    cfg,
			Clock:     a.opts.Clock,
			Workers:   a.opts.MaxConcurrentReconciles,
		}).SetupControllerWithManager(term); err != nil {
			return fmt.Errorf("set up OAuthClient controller: %w", err)
		}
		if err := (&controllers.OAuthAPIReconciler{Client: term.GetClient(), Recorder: recorder}).SetupWithManager(term); err != nil {
			return fmt.Errorf("set up OAuthAPI controller: %w", err)
		}
		if err := (&controllers.OAuthTrustedIssuerReconciler{Client: term.GetClient(), Recorder: recorder, Trust: a.trust}).SetupWithManager(term); err != nil {
			return fmt.Errorf("set up OAuthTrustedIssuer controller: %w", err)
		}
		if err := (&controllers.SigningKeyReconciler{
			Client:   term.GetClient(),
			Recorder: recorder,
			Key:      a.keySecret,
			Policy: signing.Policy{
				Algorithm:        cfg.Signing.Algorithm,
				Interval:         cfg.Signing.RotationInterval.Duration,
				PropagationDelay: cfg.Signing.PropagationDelay.Duration,
				RetireAfter:      cfg.Tokens.MaxTTL.Duration + config.RetirementLeeway,
			},
			Clock:       a.opts.Clock,
			Revocations: a.revocations,
		}).SetupWithManager(term); err != nil {
			return fmt.Errorf("set up signing-key rotation: %w", err)
		}
		return nil
	}
}

// addSigningKeys adds the source of the signing keys, in every replica.
func (a *assembly) addSigningKeys(context.Context) error {
	mgr := a.op.Manager
	if err := mgr.Add(&keysecret.Source{
		Key:         a.keySecret,
		Algorithm:   a.opts.Config.Signing.Algorithm,
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Cache:       mgr.GetCache(),
		Keyring:     a.keys,
		Revocations: a.revocations,
		Log:         ctrl.Log.WithName("signing-keys"),
		Clock:       a.opts.Clock,
	}); err != nil {
		return fmt.Errorf("add signing-key source: %w", err)
	}
	return nil
}

// addServiceAccountIssuer adds the cluster's ServiceAccount token issuer, and the
// reviewer of tokens bound to pods.
func (a *assembly) addServiceAccountIssuer(context.Context) error {
	mgr := a.op.Manager
	issuer, err := workloadidentity.New(workloadidentity.Options{
		Config: mgr.GetConfig(),
		Issuer: a.opts.Config.WorkloadIdentity.Issuer,
		Log:    ctrl.Log.WithName("serviceaccount-issuer"),
	})
	if err != nil {
		return err
	}
	if err := mgr.Add(issuer); err != nil {
		return fmt.Errorf("add ServiceAccount issuer: %w", err)
	}
	reviewer, err := workloadidentity.NewReviewer(workloadidentity.ReviewerOptions{
		Config:    mgr.GetConfig(),
		Audiences: []string{a.opts.Config.Issuer, a.opts.Config.TokenURL()},
		Clock:     a.opts.Clock,
		Log:       ctrl.Log.WithName("serviceaccount-issuer"),
	})
	if err != nil {
		return err
	}
	a.op.ServiceAccountIssuer, a.reviewer = issuer, reviewer
	return nil
}

// addTokenService adds the token server, in every replica.
func (a *assembly) addTokenService(context.Context) error {
	mgr := a.op.Manager
	tokens := newTokenService(tokenServiceOptions{
		config:    a.opts.Config,
		informers: mgr.GetCache(),
		keys:      a.keys,
		clock:     a.opts.Clock,
		metrics:   metrics.Registry,
		saIssuer:  a.op.ServiceAccountIssuer,
		reviewer:  a.reviewer,
		trust:     a.trust,
		audit:     a.opts.Audit,
		log:       ctrl.Log.WithName("token-server"),
	})
	if err := mgr.Add(tokens); err != nil {
		return fmt.Errorf("add token server: %w", err)
	}
	a.op.TokenServer = tokens
	return nil
}

// addProbes adds the health and readiness checks and the API-server probe.
func (a *assembly) addProbes(context.Context) error {
	mgr := a.op.Manager
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("token-server", a.op.TokenServer.Ready); err != nil {
		return fmt.Errorf("add readiness check: %w", err)
	}
	if err := mgr.Add(a.op.APIServer); err != nil {
		return fmt.Errorf("add API server probe: %w", err)
	}
	if err := mgr.AddReadyzCheck("api-server", a.op.APIServer.Ready); err != nil {
		return fmt.Errorf("add readiness check: %w", err)
	}
	return nil
}

type funcClock func() time.Time

func (f funcClock) Now() time.Time                  { return f() }
func (f funcClock) Since(t time.Time) time.Duration { return f().Sub(t) }

// Operator is the assembled manager with handles on its parts, for callers that need
// to observe them (tests, the dev runner).
type Operator struct {
	ctrl.Manager
	// TokenServer is the token server runnable.
	TokenServer *TokenService
	// Keys holds the signing keys in force.
	Keys *signing.Keyring
	// APIServer tracks whether the API server answers (readiness check "api-server").
	APIServer *APIServerProbe
	// ServiceAccountIssuer verifies the ServiceAccount tokens of ServiceAccountToken
	// clients.
	ServiceAccountIssuer *workloadidentity.Issuer
	// Leader runs the leader-only work (reconcilers, key rotation) while this replica
	// leads.
	Leader *LeaderWork
	// Trust holds the trusted external issuers (OAuthTrustedIssuers) and their keys.
	Trust *trust.Registry
}

// replicaName names this process in audit records: the pod name (its hostname in
// Kubernetes), or the host name.
func replicaName() string {
	if name := os.Getenv("POD_NAME"); name != "" {
		return name
	}
	name, _ := os.Hostname()
	return name
}
