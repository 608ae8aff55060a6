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
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
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
	"github.com/oauth-client-operator/oauth-client-operator/internal/tokenserver"
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
	// LeaderElection makes only one replica reconcile.
	LeaderElection bool
	// LeaderElectionID names the Lease.
	LeaderElectionID string
	// LeaseDuration, RenewDeadline and RetryPeriod are the leader-election timings;
	// zero takes controller-runtime's defaults (15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// SkipControllerNameValidation allows several managers in one process (tests).
	SkipControllerNameValidation bool
	// Now is the clock of rotations and token lifetimes; time.Now when nil (tests
	// inject one).
	Now func() time.Time
	// MaxConcurrentReconciles is how many OAuthClients are reconciled at once; the work
	// waits on the API server, so several workers fill the time. Default 4.
	MaxConcurrentReconciles int
	// Audit receives the token server's audit records, JSON lines never sampled;
	// default: standard error, beside the manager's log.
	Audit io.Writer
}

// Scheme returns a scheme with the Kubernetes types and the operator's API.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntimeMust(clientgoscheme.AddToScheme(s))
	utilruntimeMust(oauthv1alpha1.AddToScheme(s))
	return s
}

func utilruntimeMust(err error) {
	if err != nil {
		panic(err)
	}
}

// ManagedSecrets selects the Secrets the operator manages; the cache holds no other.
func ManagedSecrets() labels.Selector {
	return labels.SelectorFromSet(labels.Set{oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue})
}

// secretTransform prepares a Secret for the cache: without managed fields, and, unless
// an OAuthClient controls it or it is the signing-key Secret, without its data and
// annotations. Anyone who can write a Secret can give it the managed-by label; such a
// Secret then costs its metadata in memory, not up to a megabyte of data. The
// OAuthClient controller still sees its owner and reports the conflict; the token
// server never accepts credentials from it anyway.
func secretTransform(keySecret types.NamespacedName) toolscache.TransformFunc {
	strip := cache.TransformStripManagedFields()
	return func(obj any) (any, error) {
		obj, err := strip(obj)
		if err != nil {
			return obj, err
		}
		s, ok := obj.(*corev1.Secret)
		if !ok || oauthv1alpha1.SecretOwner(s) != "" || (s.Namespace == keySecret.Namespace && s.Name == keySecret.Name) {
			return obj, nil
		}
		s.Data, s.StringData, s.Annotations = nil, nil, nil
		return s, nil
	}
}

// New builds the manager with every controller and runnable registered.
func New(ctx context.Context, restCfg *rest.Config, opts Options) (*Operator, error) {
	if opts.Config == nil {
		return nil, fmt.Errorf("operator options: no config")
	}
	if opts.Namespace == "" {
		return nil, fmt.Errorf("operator options: no namespace (set POD_NAMESPACE or --namespace)")
	}
	if opts.LeaderElectionID == "" {
		opts.LeaderElectionID = DefaultLeaderElectionID
	}
	scheme := Scheme()
	keySecret := types.NamespacedName{Namespace: opts.Namespace, Name: opts.Config.Signing.SecretName}
	apiServer, err := newAPIServerProbe(restCfg, opts.Config.TokenServer.APIServerGrace.Duration)
	if err != nil {
		return nil, err
	}
	// The process's manager runs without leader election: its cache, token server,
	// probes and metrics serve in every replica whatever happens to the lease.
	// LeaderWork elects and runs the leader-only controllers in terms.
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress: opts.ProbeAddr,
		LeaderElection:         false,
		Cache: cache.Options{
			// Secrets hold every tenant's credentials: cache only the operator's own.
			// Of those, a Secret no OAuthClient controls (a tenant can label any Secret)
			// is kept without its data: the controller needs only its owner to report
			// the conflict.
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}: {Label: ManagedSecrets(), Transform: secretTransform(keySecret)},
			},
			DefaultTransform: cache.TransformStripManagedFields(),
			// Informers watch again within seconds of an outage, however long it was.
			NewInformer: apiServer.NewInformer,
		},
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(opts.SkipControllerNameValidation)},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if err := controllers.IndexFields(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}

	recorder := mgr.GetEventRecorder("oauth-client-operator")
	// Every revoked signing key this process has seen: the key source never loads one
	// again, and the leader's rotation revokes one again that comes back.
	revocations := &signing.Revocations{}
	workers := cmp.Or(opts.MaxConcurrentReconciles, 4)
	apiReader := mgr.GetAPIReader()
	// setupLeaderWork registers the leader-only controllers on one term's manager,
	// which shares the process's cache and client.
	setupLeaderWork := func(term ctrl.Manager) error {
		if err := (&controllers.OAuthClientReconciler{
			Client:    term.GetClient(),
			APIReader: apiReader,
			Scheme:    scheme,
			Recorder:  recorder,
			Issuer:    opts.Config.Issuer,
			Now:       opts.Now,
			Workers:   workers,
			// Generated client key pairs are of the signing algorithm's family.
			KeyAlgorithm: signing.Algorithm(opts.Config.Signing.Algorithm),
		}).SetupControllerWithManager(term); err != nil {
			return fmt.Errorf("set up OAuthClient controller: %w", err)
		}
		if err := (&controllers.OAuthAPIReconciler{Client: term.GetClient()}).SetupWithManager(term); err != nil {
			return fmt.Errorf("set up OAuthAPI controller: %w", err)
		}
		if err := (&controllers.SigningKeyReconciler{
			Client:   term.GetClient(),
			Recorder: recorder,
			Key:      keySecret,
			Policy: signing.Policy{
				Algorithm:        signing.Algorithm(opts.Config.Signing.Algorithm),
				Interval:         opts.Config.Signing.RotationInterval.Duration,
				PropagationDelay: opts.Config.Signing.PropagationDelay.Duration,
				RetireAfter:      opts.Config.Tokens.MaxTTL.Duration + config.RetirementLeeway,
			},
			Now:         opts.Now,
			Revocations: revocations,
		}).SetupWithManager(term); err != nil {
			return fmt.Errorf("set up signing-key rotation: %w", err)
		}
		return nil
	}
	leader, err := newLeaderWork(mgr, restCfg, LeaderElection{
		Enabled:       opts.LeaderElection,
		ID:            opts.LeaderElectionID,
		Namespace:     opts.Namespace,
		LeaseDuration: opts.LeaseDuration,
		RenewDeadline: opts.RenewDeadline,
		RetryPeriod:   opts.RetryPeriod,
	}, setupLeaderWork, ctrl.Log.WithName("leader"))
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(leader); err != nil {
		return nil, fmt.Errorf("add leader-only work: %w", err)
	}

	keys := &signing.Keyring{}
	if err := mgr.Add(&signing.SecretSource{
		Key:         keySecret,
		Algorithm:   signing.Algorithm(opts.Config.Signing.Algorithm),
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Cache:       mgr.GetCache(),
		Keyring:     keys,
		Revocations: revocations,
		Log:         ctrl.Log.WithName("signing-keys"),
		Clock:       passiveClock(opts.Now),
	}); err != nil {
		return nil, fmt.Errorf("add signing-key source: %w", err)
	}
	saIssuer, err := workloadidentity.New(workloadidentity.Options{
		Config: mgr.GetConfig(),
		Issuer: opts.Config.WorkloadIdentity.Issuer,
		Log:    ctrl.Log.WithName("serviceaccount-issuer"),
	})
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(saIssuer); err != nil {
		return nil, fmt.Errorf("add ServiceAccount issuer: %w", err)
	}
	tokens := tokenserver.New(tokenserver.Options{
		Config:               opts.Config,
		Informers:            mgr.GetCache(),
		Keys:                 keys,
		Log:                  ctrl.Log.WithName("token-server"),
		Now:                  opts.Now,
		Metrics:              metrics.Registry,
		ServiceAccountIssuer: saIssuer,
		Audit:                auditWriter(opts.Audit),
		Replica:              replicaName(),
	})
	if err := mgr.Add(tokens); err != nil {
		return nil, fmt.Errorf("add token server: %w", err)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("token-server", tokens.Ready); err != nil {
		return nil, fmt.Errorf("add readiness check: %w", err)
	}
	if err := mgr.Add(apiServer); err != nil {
		return nil, fmt.Errorf("add API server probe: %w", err)
	}
	if err := mgr.AddReadyzCheck("api-server", apiServer.Ready); err != nil {
		return nil, fmt.Errorf("add readiness check: %w", err)
	}
	return &Operator{Manager: mgr, TokenServer: tokens, Keys: keys, APIServer: apiServer, ServiceAccountIssuer: saIssuer, Leader: leader}, nil
}

// Operator is the assembled manager with handles on its parts, for callers that need
// to observe them (tests, the dev runner).
type Operator struct {
	ctrl.Manager
	// TokenServer is the token server runnable.
	TokenServer *tokenserver.Server
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

func auditWriter(w io.Writer) io.Writer {
	if w == nil {
		return os.Stderr
	}
	return w
}

// passiveClock is now as a clock.PassiveClock (signing's type); nil is the real clock.
func passiveClock(now func() time.Time) clock.PassiveClock {
	if now == nil {
		return clock.RealClock{}
	}
	return nowFunc(now)
}

type nowFunc func() time.Time

func (f nowFunc) Now() time.Time                  { return f() }
func (f nowFunc) Since(t time.Time) time.Duration { return f().Sub(t) }
