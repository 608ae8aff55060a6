// Command manager runs oauth-client-operator: the token server, the signing keys and
// the caches in every replica, and the controllers (OAuthClient, signing-key rotation)
// in the replica that holds the leader-election Lease (--leader-elect), in one process.
package main

import (
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/operator"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		configFile string
		opts       operator.Options
	)
	flag.StringVar(&configFile, "config", "", "path of the operator config file (YAML); required")
	// --kubeconfig is registered by controller-runtime: in-cluster config, else
	// $KUBECONFIG, else ~/.kube/config.
	flag.StringVar(&opts.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the operator's namespace (signing keys, leader-election lease); default $POD_NAMESPACE")
	flag.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", `metrics listen address; "0" disables metrics`)
	flag.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", `health-probe listen address (/healthz, /readyz); "0" disables probes`)
	flag.StringVar(&opts.PprofAddr, "pprof-bind-address", "", `net/http/pprof listen address, e.g. 127.0.0.1:6060 (never a public one); "" disables it`)
	flag.BoolVar(&opts.LeaderElection, "leader-elect", false, "elect a leader so only one replica reconciles (every replica serves tokens)")
	flag.DurationVar(&opts.LeaseDuration, "leader-elect-lease-duration", operator.DefaultLeaseDuration, "how long a leader's Lease holds without renewal before another replica may take it")
	flag.DurationVar(&opts.RenewDeadline, "leader-elect-renew-deadline", operator.DefaultRenewDeadline, "how long the leader tries to renew its Lease before it stops the leader-only work (shorter than the lease duration)")
	flag.DurationVar(&opts.RetryPeriod, "leader-elect-retry-period", operator.DefaultRetryPeriod, "how often replicas try to acquire or renew the Lease")
	flag.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", config.DefaultReconcileWorkers, "OAuthClients reconciled at once")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if configFile == "" {
		return fmt.Errorf("--config is required")
	}
	cfg, err := config.Load(configFile)
	if err != nil {
		return err
	}
	opts.Config = cfg

	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("find a Kubernetes API server: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	mgr, err := operator.New(ctx, restCfg, opts)
	if err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("starting manager", "issuer", cfg.Issuer, "namespace", opts.Namespace, "tokenServer", cfg.TokenServer.Address)
	return mgr.Start(ctx)
}
