// Package devenv runs the whole operator on one machine without a cluster: etcd and
// kube-apiserver on loopback (envtest's control plane) with the CRDs of
// config/crd/bases, the objects of config/samples, the real manager binary as a child
// process with its token server, and the example API (cmd/example-api) when the
// repository has one; with Options.ClusterB, a second control plane standing for
// another cluster whose ServiceAccount tokens the operator trusts. `make dev` (cmd/dev)
// runs it for people; the end-to-end tests run it for the real binaries.
//
// With Options.TLS the token server serves HTTPS with a certificate of a local CA
// written into Dir (`make dev --tls`). Everything listens on 127.0.0.1 only. Children run in their own process groups (so a
// terminal's Ctrl-C reaches only the runner, which stops them in order) and, on Linux,
// get SIGTERM if the runner dies. The envtest binaries are found as internal/testenv
// finds them: $KUBEBUILDER_ASSETS, else bin/k8s (`make envtest`).
package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/operator"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
)

// Defaults of cmd/dev. Start itself picks free ports for ports left at 0.
const (
	DefaultTokenPort   = 18443
	DefaultAPIPort     = 18080
	DefaultMetricsPort = 18081
	DefaultProbePort   = 18082
)

const (
	// OperatorNamespace is the manager's own namespace (signing keys).
	OperatorNamespace = "oauth-system"
	// APIAudience is the audience the example API accepts: the sample OAuthAPI.
	APIAudience = "back-office"
	// SampleNamespace and SampleClient name the sample OAuthClient whose token request
	// tells that the environment is ready; its client_id is SampleClientID.
	SampleNamespace = "shop"
	SampleClient    = "erp-sync"
	SampleClientID  = SampleNamespace + "." + SampleClient
	// SampleServiceAccountClient is the sample client of method ServiceAccountToken;
	// its ServiceAccount has the same name.
	SampleServiceAccountClient = "inventory"
	// SamplePrivateKeyClient is the sample client of method PrivateKeyJWT, with a
	// generated key pair.
	SamplePrivateKeyClient = "reports"
	// SampleDPoPClient is the sample client with requireDPoP: its tokens are
	// DPoP-bound.
	SampleDPoPClient = "ledger"
)

// Options configure Start. The zero value works from a checkout with the envtest
// binaries in bin/k8s (or $KUBEBUILDER_ASSETS).
type Options struct {
	// Root is the repository's root folder (go.mod, cmd/, config/). Default: the
	// source tree this package was compiled from.
	Root string
	// Dir receives the built binaries, the kubeconfig, the manager's config file and
	// the children's logs. Default: Root/bin/dev.
	Dir string
	// TokenPort, APIPort, MetricsPort and ProbePort are ports on 127.0.0.1 for the token
	// server, the example API, and the manager's metrics and health probes. 0 picks a
	// free port. Start fails with a *PortInUseError when one is taken.
	TokenPort, APIPort, MetricsPort, ProbePort int
	// Binaries are prebuilt binaries; nil builds them into Dir with BuildBinaries.
	Binaries *Binaries
	// NoExampleAPI skips the example API even when it was built.
	NoExampleAPI bool
	// ReadyTimeout bounds the wait for the token endpoint (and the example API) to
	// answer after a (re)start. Default 2 minutes.
	ReadyTimeout time.Duration
	// StopTimeout bounds a child's graceful stop (SIGTERM) before SIGKILL. Default 20s.
	StopTimeout time.Duration
	// Log receives progress messages, one a line. Default: discarded.
	Log io.Writer
	// ManagerConfig is YAML merged over the manager's config file (issuer and
	// address are set by Start), e.g. short rotation times for tests.
	ManagerConfig string
	// Replicas is the number of manager processes. 0 or 1: one, without leader
	// election. More: each with --leader-elect (one Lease, one leader reconciles),
	// each serving tokens on its own port (the first on TokenPort, the others on free
	// ports) with the first one's issuer, so their tokens are interchangeable; one
	// that exits is reported and the others go on.
	Replicas int
	// APIArgs are extra flags of the example API (e.g. --leeway).
	APIArgs []string
	// ClusterB starts a second control plane standing for another cluster of a fleet,
	// whose ServiceAccount tokens the operator trusts (OAuthTrustedIssuer cluster-b)
	// for the FederatedToken client shop.cluster-b-sync (clusterb.go).
	ClusterB bool
	// TLS makes the token server serve HTTPS with a certificate of a local CA that
	// Start writes into Dir (WriteLocalTLS); the issuer and every token URL are then
	// https://…, Env.CAFile names the CA, and the example API trusts it.
	TLS bool
	// LeaderElection runs every manager replica with --leader-elect, even a single
	// one (replicas added later with StartReplica then follow it, as in a cluster).
	// More than one replica always elects.
	LeaderElection bool
	// ManagerArgs are extra flags of every manager replica.
	ManagerArgs []string
	// Pprof serves net/http/pprof in every manager replica, each on a free port of
	// 127.0.0.1 (Replica.PprofPort).
	Pprof bool
	// ManagerEnv are extra environment variables (NAME=value) of every manager replica
	// (e.g. GOMEMLIMIT), besides this process's own.
	ManagerEnv []string
}

// Env is a running environment. Stop it, whatever happens.
type Env struct {
	// Issuer is the token server's base URL, http://127.0.0.1:<TokenPort> (https://
	// with Options.TLS).
	Issuer string
	// TokenURL is the token endpoint, Issuer + "/oauth2-token".
	TokenURL string
	// APIURL is the example API's users resource, http://127.0.0.1:<APIPort>/api/users;
	// empty when the example API is not running.
	APIURL string
	// Kubeconfig is the absolute path of a kubeconfig for the control plane (user
	// dev-admin in system:masters).
	Kubeconfig string
	// Config and Client talk to the control plane as its admin.
	Config *rest.Config
	Client client.Client
	// Dir holds the binaries, kubeconfig, manager config and logs.
	Dir string
	// CAFile is the local CA's certificate (PEM) with Options.TLS: what clients of the
	// token server trust; empty without TLS.
	CAFile string
	// TLSFiles are the local CA's and the token server's certificate files with
	// Options.TLS.
	TLSFiles LocalTLS
	// HTTP is a client for the environment's endpoints (it trusts CAFile).
	HTTP *http.Client
	// ManagerLog and APILog are the children's log files (stdout and stderr);
	// ManagerLog is the first replica's.
	ManagerLog, APILog string
	// The ports in use, all on 127.0.0.1; TokenPort, MetricsPort and ProbePort are the
	// first replica's.
	TokenPort, APIPort, MetricsPort, ProbePort int
	// Replicas are the manager processes (one unless Options.Replicas > 1).
	Replicas []Replica
	// ClusterB is the second control plane; nil unless Options.ClusterB.
	ClusterB *ClusterB

	opts         Options
	controlPlane *envtest.Environment

	mu            sync.Mutex // guards managers, api, Replicas once started
	managers      []*child   // by replica, as Replicas
	api           *child
	managerBinary string

	failOnce sync.Once
	failed   chan struct{} // closed when a child exited unexpectedly
	failErr  error
	stopOnce sync.Once
	stopped  chan struct{} // closed by Stop
	stopErr  error
}

// Replica is one manager process.
type Replica struct {
	// Name is "manager" for the first, then "manager-2", "manager-3", ….
	Name string
	// TokenURL is its token endpoint (all replicas share Env.Issuer).
	TokenURL string
	// TokenPort, MetricsPort and ProbePort are its ports on 127.0.0.1.
	TokenPort, MetricsPort, ProbePort int
	// PprofPort serves net/http/pprof with Options.Pprof; 0 without.
	PprofPort int
	// Log is its log file.
	Log string

	args []string
}

// scheme is the token server's URL scheme.
func (e *Env) scheme() string {
	if e.opts.TLS {
		return "https://"
	}
	return "http://"
}

// TokenURLs returns every replica's token endpoint, the first one first.
func (e *Env) TokenURLs() []string {
	urls := make([]string, len(e.Replicas))
	for i, r := range e.Replicas {
		urls[i] = r.TokenURL
	}
	return urls
}

// Start builds the binaries (unless given), starts the control plane, applies the
// samples, starts the manager replicas (and the example API) and returns once the
// sample client gets a token from every replica. On error everything started is
// stopped again.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	e := &Env{opts: opts, Dir: opts.Dir, failed: make(chan struct{}), stopped: make(chan struct{})}
	defer func() {
		if err != nil {
			_ = e.Stop()
		}
	}()
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", opts.Dir, err)
	}
	withAPI := !opts.NoExampleAPI && HasExampleAPI(opts.Root)
	if opts.Binaries != nil {
		withAPI = !opts.NoExampleAPI && opts.Binaries.ExampleAPI != ""
	}
	if err := e.reservePorts(withAPI); err != nil {
		return nil, err
	}
	bins := opts.Binaries
	if bins == nil {
		e.logf("building the binaries into %s", opts.Dir)
		if bins, err = BuildBinaries(ctx, opts.Root, opts.Dir); err != nil {
			return nil, err
		}
	}
	if err := e.setUpTLS(); err != nil {
		return nil, err
	}
	e.Issuer = e.scheme() + hostPort(e.TokenPort)
	e.TokenURL = e.Issuer + config.TokenPath
	if err := e.startControlPlane(ctx); err != nil {
		return nil, err
	}
	if err := e.applySamples(ctx); err != nil {
		return nil, err
	}
	if opts.ClusterB {
		if err := e.startClusterB(ctx); err != nil {
			return nil, err
		}
		if err := e.trustClusterB(ctx); err != nil {
			return nil, err
		}
	}
	if err := e.startManagers(ctx, bins.Manager); err != nil {
		return nil, err
	}
	if opts.ClusterB {
		if err := e.waitForClusterB(ctx); err != nil {
			return nil, err
		}
	}
	if withAPI {
		if err := e.startExampleAPI(ctx, bins.ExampleAPI); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// setUpTLS writes the local CA and the token server's certificate with Options.TLS,
// and builds the client of the environment's endpoints.
func (e *Env) setUpTLS() error {
	if e.opts.TLS {
		files, err := WriteLocalTLS(e.opts.Dir)
		if err != nil {
			return err
		}
		e.TLSFiles, e.CAFile = files, files.CAFile
		e.logf("token server certificate %s from the local CA %s", files.CertFile, files.CAFile)
	}
	c, err := HTTPClient(e.CAFile, 5*time.Second)
	if err != nil {
		return err
	}
	e.HTTP = c
	return nil
}

// reservePorts picks the ports of every replica (and of the example API), failing with
// a *PortInUseError when a chosen one is taken.
func (e *Env) reservePorts(withAPI bool) error {
	opts := &e.opts
	ports := []*portRequest{
		{Role: RoleToken, Port: &opts.TokenPort},
		{Role: RoleMetrics, Port: &opts.MetricsPort},
		{Role: RoleProbe, Port: &opts.ProbePort},
	}
	if withAPI {
		ports = append(ports, &portRequest{Role: RoleAPI, Port: &opts.APIPort})
	}
	e.Replicas = make([]Replica, max(opts.Replicas, 1))
	for i := range e.Replicas {
		r := &e.Replicas[i]
		r.Name = "manager"
		if i > 0 {
			r.Name = fmt.Sprintf("manager-%d", i+1)
		}
		if opts.Pprof {
			ports = append(ports, &portRequest{Role: "pprof of " + r.Name, Port: &r.PprofPort})
		}
		if i == 0 {
			continue
		}
		ports = append(ports,
			&portRequest{Role: RoleToken + " of " + r.Name, Port: &r.TokenPort},
			&portRequest{Role: RoleMetrics + " of " + r.Name, Port: &r.MetricsPort},
			&portRequest{Role: RoleProbe + " of " + r.Name, Port: &r.ProbePort})
	}
	if err := reservePorts(ports); err != nil {
		return err
	}
	e.TokenPort, e.APIPort, e.MetricsPort, e.ProbePort = opts.TokenPort, opts.APIPort, opts.MetricsPort, opts.ProbePort
	e.Replicas[0].TokenPort, e.Replicas[0].MetricsPort, e.Replicas[0].ProbePort = e.TokenPort, e.MetricsPort, e.ProbePort
	return nil
}

// applySamples creates the operator's namespace and applies config/samples.
func (e *Env) applySamples(ctx context.Context) error {
	e.logf("applying %s", filepath.Join(e.opts.Root, "config", "samples"))
	if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: OperatorNamespace}}); err != nil {
		return fmt.Errorf("create namespace %s: %w", OperatorNamespace, err)
	}
	return ApplyDir(ctx, e.Client, filepath.Join(e.opts.Root, "config", "samples"))
}

// startManagers writes each replica's config, starts the replicas and waits until the
// sample client gets a token from every one.
func (e *Env) startManagers(ctx context.Context, binary string) error {
	e.managers = make([]*child, len(e.Replicas))
	e.managerBinary = binary
	for i := range e.Replicas {
		if err := e.prepareReplica(&e.Replicas[i], e.opts.LeaderElection || len(e.Replicas) > 1); err != nil {
			return err
		}
	}
	e.ManagerLog = e.Replicas[0].Log
	for i, r := range e.Replicas {
		e.logf("starting the %s (log: %s)", r.Name, r.Log)
		if err := e.startManager(i, false); err != nil {
			return err
		}
	}
	for i := range e.Replicas {
		if err := e.waitForToken(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// prepareReplica writes r's config file and sets its token URL, log and command line.
func (e *Env) prepareReplica(r *Replica, leaderElect bool) error {
	r.TokenURL = e.scheme() + hostPort(r.TokenPort) + config.TokenPath
	configFile, err := e.writeManagerConfig(r.Name, r.TokenPort)
	if err != nil {
		return err
	}
	r.Log = filepath.Join(e.opts.Dir, r.Name+".log")
	r.args = []string{e.managerBinary,
		"--config", configFile,
		"--kubeconfig", e.Kubeconfig,
		"--namespace", OperatorNamespace,
		"--metrics-bind-address", hostPort(r.MetricsPort),
		"--health-probe-bind-address", hostPort(r.ProbePort),
	}
	if leaderElect {
		r.args = append(r.args, "--leader-elect")
	}
	if r.PprofPort != 0 {
		r.args = append(r.args, "--pprof-bind-address", hostPort(r.PprofPort))
	}
	r.args = append(r.args, e.opts.ManagerArgs...)
	return nil
}

func (o *Options) setDefaults() error {
	if o.Root == "" {
		o.Root = testenv.Root()
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return fmt.Errorf("repository root: %w", err)
	}
	o.Root = root
	if o.Dir == "" {
		o.Dir = filepath.Join(o.Root, "bin", "dev")
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return fmt.Errorf("output folder: %w", err)
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 2 * time.Minute
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = 20 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

func (e *Env) logf(format string, args ...any) {
	_, _ = fmt.Fprintf(e.opts.Log, "dev: "+format+"\n", args...)
}

func hostPort(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func (e *Env) startControlPlane(ctx context.Context) error {
	assets, err := testenv.AssetsDir()
	if err != nil {
		return err
	}
	e.logf("starting etcd and kube-apiserver from %s", assets)
	cp := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(e.opts.Root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		cp.ControlPlaneStartTimeout = time.Minute // two busy cores: more than envtest's 20s
	}
	e.controlPlane = cp
	if _, err := cp.Start(); err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	user, err := cp.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, &rest.Config{QPS: 100, Burst: 200})
	if err != nil {
		return fmt.Errorf("add dev-admin user: %w", err)
	}
	e.Config = user.Config()
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig of dev-admin: %w", err)
	}
	e.Kubeconfig = filepath.Join(e.opts.Dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	if e.Client, err = client.New(e.Config, client.Options{Scheme: operator.Scheme()}); err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	return ctx.Err()
}

// writeManagerConfig writes a replica's config file (checked with the manager's own
// parser) and returns its path: every replica has the first one's issuer and its own
// token port.
func (e *Env) writeManagerConfig(name string, tokenPort int) (string, error) {
	tokenServer := map[string]any{"address": hostPort(tokenPort)}
	if e.opts.TLS {
		tokenServer["tls"] = map[string]any{"certFile": e.TLSFiles.CertFile, "keyFile": e.TLSFiles.KeyFile}
	}
	base := map[string]any{
		"issuer":      e.Issuer,
		"tokenServer": tokenServer,
		"tokens":      map[string]any{"defaultTTL": "1h"},
		"signing":     map[string]any{"algorithm": "ES256"},
	}
	if e.opts.ManagerConfig != "" {
		var extra map[string]any
		if err := yaml.Unmarshal([]byte(e.opts.ManagerConfig), &extra); err != nil {
			return "", fmt.Errorf("manager config overrides: %w", err)
		}
		merge(base, extra)
	}
	body, err := yaml.Marshal(base)
	if err != nil {
		return "", fmt.Errorf("manager config: %w", err)
	}
	text := "# Written by internal/devenv for the local dev environment.\n" + string(body)
	if _, err := config.Parse([]byte(text)); err != nil {
		return "", fmt.Errorf("manager config: %w", err)
	}
	path := filepath.Join(e.opts.Dir, name+"-config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return "", fmt.Errorf("write manager config: %w", err)
	}
	return path, nil
}

// merge copies src over dst, descending into maps present in both.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func (e *Env) startManager(i int, restart bool) error {
	r := e.Replicas[i]
	return e.startTracked(&e.managers[i], r.Name, r.Log, restart, r.args, e.opts.ManagerEnv)
}

// startTracked starts a child into *slot, unless Stop has begun: Stop then sees every
// child that was started.
func (e *Env) startTracked(slot **child, name, logPath string, appendLog bool, args, env []string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-e.stopped:
		return fmt.Errorf("start %s: environment stopped", name)
	default:
	}
	c, err := e.startChild(name, logPath, appendLog, args, env)
	if err != nil {
		return err
	}
	*slot = c
	return nil
}

// startExampleAPI runs cmd/example-api and waits until it answers HTTP. Its flags are
// here and nowhere else.
func (e *Env) startExampleAPI(ctx context.Context, binary string) error {
	e.APILog = filepath.Join(e.opts.Dir, "example-api.log")
	args := []string{binary,
		"--issuer", e.Issuer,
		"--audience", APIAudience,
		"--listen", hostPort(e.APIPort),
	}
	args = append(args, e.opts.APIArgs...)
	var env []string
	if e.CAFile != "" {
		// The example API fetches the JWKS from the issuer: it trusts the local CA
		// (crypto/x509 reads SSL_CERT_FILE instead of the system's roots).
		env = append(env, "SSL_CERT_FILE="+e.CAFile)
	}
	e.logf("starting the example API (log: %s)", e.APILog)
	if err := e.startTracked(&e.api, "example-api", e.APILog, false, args, env); err != nil {
		return err
	}
	e.APIURL = "http://" + hostPort(e.APIPort) + "/api/users"
	e.mu.Lock()
	api := e.api
	e.mu.Unlock()
	return e.waitForAPI(ctx, api)
}

// RestartOperator stops every manager process (SIGTERM, then SIGKILL after
// StopTimeout) and starts them again with the same binary, flags and config files,
// then waits until the sample client gets a token from each again.
func (e *Env) RestartOperator(ctx context.Context) error {
	e.mu.Lock()
	managers := slices.Clone(e.managers)
	e.mu.Unlock()
	select {
	case <-e.stopped:
		return errors.New("restart operator: environment stopped")
	case <-e.failed:
		return fmt.Errorf("restart operator: %w", e.failErr)
	default:
	}
	for _, m := range managers {
		if m != nil {
			if err := m.stop(e.opts.StopTimeout); err != nil {
				return fmt.Errorf("restart operator: %w", err)
			}
		}
	}
	for i, r := range e.Replicas {
		e.logf("restarting the %s", r.Name)
		if err := e.startManager(i, true); err != nil {
			return fmt.Errorf("restart operator: %w", err)
		}
	}
	for i := range e.Replicas {
		if err := e.waitForToken(ctx, i); err != nil {
			return fmt.Errorf("restart operator: %w", err)
		}
	}
	return nil
}

// StartReplica starts one more manager replica on free ports and returns its index in
// Replicas, without waiting for it to serve (WaitForReplica does). It runs with
// --leader-elect: start the environment with Options.LeaderElection so that it follows
// the replica that leads, as in a cluster. Call it from one goroutine, not during
// RestartOperator.
func (e *Env) StartReplica() (int, error) {
	if e.managerBinary == "" {
		return 0, errors.New("start replica: the environment has not started")
	}
	i := len(e.Replicas)
	r := Replica{Name: fmt.Sprintf("manager-%d", i+1)}
	ports := []*int{&r.TokenPort, &r.MetricsPort, &r.ProbePort}
	if e.opts.Pprof {
		ports = append(ports, &r.PprofPort)
	}
	for _, p := range ports {
		port, err := FreePort()
		if err != nil {
			return 0, fmt.Errorf("start replica: %w", err)
		}
		*p = port
	}
	if err := e.prepareReplica(&r, true); err != nil {
		return 0, fmt.Errorf("start replica: %w", err)
	}
	e.mu.Lock()
	e.Replicas = append(e.Replicas, r)
	e.managers = append(e.managers, nil)
	e.mu.Unlock()
	e.logf("starting the %s (log: %s)", r.Name, r.Log)
	if err := e.startManager(i, false); err != nil {
		return 0, err
	}
	return i, nil
}

// WaitForReplica waits until replica i serves the sample client a token (at most
// ReadyTimeout).
func (e *Env) WaitForReplica(ctx context.Context, i int) error { return e.waitForToken(ctx, i) }

// StopReplica stops replica i (SIGTERM, then SIGKILL after StopTimeout); the others go
// on. With leader election, one that leads hands over its Lease as it stops.
func (e *Env) StopReplica(i int) error {
	e.mu.Lock()
	var m *child
	if i >= 0 && i < len(e.managers) {
		m = e.managers[i]
	}
	e.mu.Unlock()
	if m == nil {
		return fmt.Errorf("stop replica %d: not running", i)
	}
	return m.stop(e.opts.StopTimeout)
}

// Wait blocks until a child process exits unexpectedly, and returns an error naming it
// with the last lines of its log (also on every later call); or until ctx is done or
// Stop is called, and returns nil. The caller still calls Stop.
func (e *Env) Wait(ctx context.Context) error {
	if e.hasFailed() {
		return e.failErr
	}
	select {
	case <-e.failed:
		return e.failErr
	case <-e.stopped:
		return nil
	case <-ctx.Done():
		return nil
	}
}

// ChildPIDs returns the process ids of the running children: the example API, then
// the manager replicas.
func (e *Env) ChildPIDs() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var pids []int
	for _, c := range append([]*child{e.api}, e.managers...) {
		if c != nil && !c.exited() {
			pids = append(pids, c.cmd.Process.Pid)
		}
	}
	return pids
}

// ManagerPIDs returns the process id of each manager replica, 0 for one that is not
// running.
func (e *Env) ManagerPIDs() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	pids := make([]int, len(e.Replicas))
	for i, c := range e.managers {
		if i < len(pids) && c != nil && !c.exited() {
			pids[i] = c.cmd.Process.Pid
		}
	}
	return pids
}

// Stop stops the example API, the manager (each SIGTERM, then SIGKILL after
// StopTimeout) and the control plane, and waits for them to exit. Files in Dir are
// kept. Stop is idempotent; later calls return the first call's result.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		close(e.stopped)
		e.mu.Lock()
		children := append([]*child{e.api}, e.managers...)
		e.mu.Unlock()
		var errs []error
		for _, c := range children {
			if c != nil {
				c.expect()
			}
		}
		for _, c := range children {
			if c != nil {
				errs = append(errs, c.stop(e.opts.StopTimeout))
			}
		}
		if e.controlPlane != nil {
			if err := e.controlPlane.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("stop control plane: %w", err))
			}
		}
		if e.ClusterB != nil {
			if err := e.ClusterB.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("stop cluster B: %w", err))
			}
		}
		e.stopErr = errors.Join(errs...)
	})
	return e.stopErr
}

// fail records the first unexpected child exit for Wait.
func (e *Env) fail(err error) {
	e.failOnce.Do(func() {
		e.failErr = err
		close(e.failed)
	})
}
