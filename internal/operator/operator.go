// Package operator assembles the operator's controller-runtime manager: the cache (only
// the operator's Secrets), the controllers and the token server. cmd/manager calls it
// with flags; tests call it with a real API server.
package operator

import (
	"cmp"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
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
	// SkipControllerNameValidation allows several managers in one process (tests).
	SkipControllerNameValidation bool
	// Now is the clock of rotations and token lifetimes; time.Now when nil (tests
	// inject one).
	Now func() time.Time
	// MaxConcurrentReconciles is how many OAuthClients are reconciled at once; the work
	// waits on the API server, so several workers fill the time. Default 4.
	MaxConcurrentReconciles int
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

// New builds the manager with every controller and runnable registered.
func New(ctx context.Context, restCfg *rest.Config, opts Options) (*Operator, error) {
	if opts.Config == nil {
		return nil, fmt.Errorf("operator options: no config")
	}
	if opts.Namespace == "" {
		return nil, fmt.Errorf("operator options: no namespace (set POD_NAMESPACE or --namespace)")
	}
	if opts.LeaderElectionID == "" {
		opts.LeaderElectionID = "oauth-client-operator.oauth.operator.dev"
	}
	scheme := Scheme()
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:  opts.ProbeAddr,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        opts.LeaderElectionID,
		LeaderElectionNamespace: opts.Namespace,
		// Release the lease on shutdown so a successor takes over at once.
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{
			// Secrets hold every tenant's credentials: cache only the operator's own.
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}: {Label: ManagedSecrets()},
			},
			DefaultTransform: cache.TransformStripManagedFields(),
		},
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(opts.SkipControllerNameValidation)},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}

	if err := (&controllers.OAuthClientReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    scheme,
		Recorder:  mgr.GetEventRecorder("oauth-client-operator"),
		Issuer:    opts.Config.Issuer,
		Now:       opts.Now,
		Workers:   cmp.Or(opts.MaxConcurrentReconciles, 4),
		// Generated client key pairs are of the signing algorithm's family.
		KeyAlgorithm: signing.Algorithm(opts.Config.Signing.Algorithm),
	}).SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("set up OAuthClient controller: %w", err)
	}

	keySecret := types.NamespacedName{Namespace: opts.Namespace, Name: opts.Config.Signing.SecretName}
	if err := (&controllers.SigningKeyReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("oauth-client-operator"),
		Key:      keySecret,
		Policy: signing.Policy{
			Algorithm:        signing.Algorithm(opts.Config.Signing.Algorithm),
			Interval:         opts.Config.Signing.RotationInterval.Duration,
			PropagationDelay: opts.Config.Signing.PropagationDelay.Duration,
			RetireAfter:      opts.Config.Tokens.MaxTTL.Duration + config.RetirementLeeway,
		},
		Now: opts.Now,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up signing-key rotation: %w", err)
	}

	keys := &signing.Keyring{}
	if err := mgr.Add(&signing.SecretSource{
		Key:       keySecret,
		Algorithm: signing.Algorithm(opts.Config.Signing.Algorithm),
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Cache:     mgr.GetCache(),
		Keyring:   keys,
		Log:       ctrl.Log.WithName("signing-keys"),
		Now:       opts.Now,
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
	apiServer, err := newAPIServerProbe(mgr.GetConfig(), opts.Config.TokenServer.APIServerGrace.Duration)
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(apiServer); err != nil {
		return nil, fmt.Errorf("add API server probe: %w", err)
	}
	if err := mgr.AddReadyzCheck("api-server", apiServer.Ready); err != nil {
		return nil, fmt.Errorf("add readiness check: %w", err)
	}
	return &Operator{Manager: mgr, TokenServer: tokens, Keys: keys, APIServer: apiServer, ServiceAccountIssuer: saIssuer}, nil
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
}
