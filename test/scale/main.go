// Command scale is the operator's scale benchmark (`make bench-scale`; not part of
// `make test`). It starts the environment of `make dev` without the example API
// (internal/devenv: etcd, kube-apiserver and the real manager binary as a child
// process, with leader election as in a cluster), creates many OAuthClients, and
// measures
//
//   - the time until every client is Ready (status condition Ready=True), seen through
//     one watch;
//   - the manager's memory once settled: VmRSS, the Go heap after a collection, and a
//     heap profile (top entries, and the split between the informer caches of
//     OAuthClients and Secrets, the token server's registry and the rest);
//   - the token endpoint's latency with every client cached (sequential requests for
//     random clients, p50/p99) next to the same measurement taken before the clients
//     were created, and under concurrent load (16 and 64 connections: p50, p99,
//     p99.9 and the garbage collections meanwhile: latency under GC with a large
//     heap);
//   - the time a second replica takes to start and serve its first token with every
//     client present, and its memory;
//   - the API server's load (requests per second, by verb): while the clients are
//     created, while settled, while the second replica starts, and during a resync:
//     the first replica stops, the second takes the lead and reconciles every client
//     again from its cache.
//
// It prints a report against the targets of issue 21. A global timeout stops
// everything and reports what was reached.
//
//	go run ./test/scale -clients 100000 -timeout 40m
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
	"github.com/oauth-client-operator/oauth-client-operator/test/machine"
)

// Targets of issue 21.
const (
	targetReady       = 10 * time.Minute
	targetRSS         = 1 << 30
	targetPerClient   = 10 << 10
	targetReplica     = time.Minute
	targetLatencyGrow = 1.1
)

// scaleLabel marks the benchmark's namespaces and clients.
const scaleLabel = "scale.oauth.operator.dev/run"

// The sample OAuthAPI that admits every namespace (config/samples).
const (
	apiName = "storefront"
	scope   = "catalog:read"
)

type options struct {
	clients, namespaces, createWorkers int
	seqRequests, burstRequests         int
	concurrency                        []int
	settle                             time.Duration
	replica, resync                    bool
	managerEnv                         string
	timeout                            time.Duration
	dir                                string
	keep                               bool
}

func main() {
	var o options
	flag.IntVar(&o.clients, "clients", 10000, "number of OAuthClients to create")
	flag.IntVar(&o.namespaces, "namespaces", 20, "namespaces to spread them over")
	flag.IntVar(&o.createWorkers, "create-concurrency", 16, "goroutines creating clients")
	flag.IntVar(&o.seqRequests, "token-requests", 3000, "sequential token requests (random clients), before and after creating the clients")
	flag.IntVar(&o.burstRequests, "concurrent-requests", 30000, "token requests of each concurrent run")
	conc := flag.String("concurrency", "16,64", "connections of the concurrent runs, separated by commas")
	flag.DurationVar(&o.settle, "settle", 20*time.Second, "wait after the reconcile queue is empty before measuring memory")
	flag.BoolVar(&o.replica, "replica", true, "measure a second replica's start with every client present")
	flag.BoolVar(&o.resync, "resync", true, "measure a resync: stop the first replica, the second leads and reconciles every client")
	flag.StringVar(&o.managerEnv, "manager-env", "", "environment of the manager processes, NAME=value separated by commas (e.g. GOMEMLIMIT=512MiB)")
	flag.DurationVar(&o.timeout, "timeout", 40*time.Minute, "global timeout: stop everything and report what was reached")
	flag.StringVar(&o.dir, "dir", "", "folder for binaries, kubeconfig, logs and heap profiles (default: a temporary folder)")
	flag.BoolVar(&o.keep, "keep", false, "keep the folder (logs, heap profiles) afterwards")
	flag.Parse()
	for _, c := range strings.Split(*conc, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(c)); err == nil && n > 0 {
			o.concurrency = append(o.concurrency, n)
		} else if strings.TrimSpace(c) != "" {
			fmt.Fprintf(os.Stderr, "scale: -concurrency: %q is not a positive number\n", c)
			os.Exit(2)
		}
	}
	if o.clients < 1 || o.namespaces < 1 || o.createWorkers < 1 {
		fmt.Fprintln(os.Stderr, "scale: -clients, -namespaces and -create-concurrency must be positive")
		os.Exit(2)
	}
	// The readiness watch logs through controller-runtime; the progress lines say what
	// matters.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(run(o))
}

// report collects what was reached; it is printed whatever happens.
type report struct {
	mu         sync.Mutex
	start      time.Time
	envStart   time.Duration
	created    int64
	createErrs int64
	createTime time.Duration
	ready      int
	readyTime  time.Duration // from the first create until all were Ready; 0: not reached
	readyCurve []string
	baseline   *latencies
	seq        *latencies
	concurrent []*latencies // by o.concurrency
	seqSample  *latencies   // the sample client alone, alternating with seq
	// seqQuiet and seqSampleQuiet are the rounds of seq and seqSample during which the
	// manager ran no collection.
	seqQuiet, seqSampleQuiet *latencies
	// baselineCPU and seqCPU are how the machine's CPU was spent during the baseline
	// and the sequential runs with every client present.
	baselineCPU, seqCPU *cpuUse
	hwm, rss            int64 // bytes, of the first manager process
	maxRSS              int64

	settled      *memory
	heapTop      []string
	heapGroups   []string
	heapProfile  string
	replica      *replicaStart
	loads        []*apiLoad
	resync       *resyncResult
	managerCalls []string
	notes        []string
}

// memory is a manager's memory at one moment.
type memory struct {
	rss, heapInuse, heapAlloc, sys float64 // bytes
}

func (m *memory) String() string {
	if m == nil {
		return "not measured"
	}
	return fmt.Sprintf("VmRSS %s, Go heap in use %s (live after GC %s), Go runtime total %s",
		mib(int64(m.rss)), mib(int64(m.heapInuse)), mib(int64(m.heapAlloc)), mib(int64(m.sys)))
}

type replicaStart struct {
	firstToken, firstScaleToken, ready time.Duration
	mem                                *memory
	profile                            string
	groups                             []string
	err                                string
}

type resyncResult struct {
	leadAfter, reconciledAfter time.Duration
	reconciles                 float64
	mem                        *memory // the new leader's, 5 s after the resync
	groups                     []string
	err                        string
}

func (r *report) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func run(o options) int {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "oauth-scale-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err)
			return 1
		}
		dir = d
		if !o.keep {
			defer func() { _ = os.RemoveAll(d) }()
		}
	}
	var managerEnv []string
	if o.managerEnv != "" {
		managerEnv = strings.Split(o.managerEnv, ",")
	}

	rep := &report{start: time.Now()}
	logf("starting the environment in %s", dir)
	env, err := devenv.Start(ctx, devenv.Options{
		Dir:            dir,
		NoExampleAPI:   true,
		Log:            os.Stderr,
		LeaderElection: true,
		Pprof:          true,
		ManagerEnv:     managerEnv,
		StopTimeout:    30 * time.Second,
		ReadyTimeout:   5 * time.Minute,
		// The benchmark authenticates thousands of times from 127.0.0.1; none fails,
		// but keep the failed-authentication limit out of the way regardless.
		ManagerConfig: "rateLimit: {failedAuthPerMinute: 60000, failedAuthBurst: 100000}\n",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale: start the environment:", err)
		return 1
	}
	rep.envStart = time.Since(rep.start)
	defer func() {
		logf("stopping the environment")
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "scale: stop:", err)
		}
		if o.keep {
			logf("kept: %s (manager logs, heap profiles)", dir)
		}
	}()

	managerPID := env.ManagerPIDs()[0]
	// Sample the first manager's memory throughout.
	samplerDone := make(chan struct{})
	samplerCtx, stopSampler := context.WithCancel(context.Background())
	go func() {
		defer close(samplerDone)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if hwm, rss, err := procMemory(managerPID); err == nil {
				rep.mu.Lock()
				rep.hwm, rep.rss = hwm, rss
				rep.maxRSS = max(rep.maxRSS, rss)
				rep.mu.Unlock()
			}
			select {
			case <-samplerCtx.Done():
				return
			case <-t.C:
			}
		}
	}()

	code := measure(ctx, o, env, rep, dir)

	stopSampler()
	<-samplerDone
	if ctx.Err() != nil {
		rep.note("stopped early: %v", context.Cause(ctx))
		code = 1
	}
	// Wait with a done context: it returns at once, with the error of a child that
	// exited unexpectedly, if any.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if err := env.Wait(done); err != nil {
		rep.note("a child exited: %v", err)
		code = 1
	}
	printReport(os.Stdout, o, rep)
	return code
}

// measure runs the phases and returns the exit code.
func measure(ctx context.Context, o options, env *devenv.Env, rep *report, dir string) int {
	hc := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute},
	}

	// Baseline: token latency with only the sample clients.
	sampleSecret, err := secretOf(ctx, env.Client, devenv.SampleNamespace, "web-shop")
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale: sample secret:", err)
		return 1
	}
	base := []cred{{id: oauthv1alpha1.ClientID(devenv.SampleNamespace, "web-shop"), secret: sampleSecret}}
	logf("baseline: %d token requests with the sample clients only", o.seqRequests)
	baselineCPU := cpuFrom(managerPIDOf(env, 0))
	rep.baseline = tokenLoad(ctx, hc, env.TokenURL, base, o.seqRequests, 1)
	rep.baselineCPU = baselineCPU()

	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := oauthv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale: client:", err)
		return 1
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	readyWatch, err := watchReadiness(watchCtx, cfg, s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		return 1
	}

	nsName := func(i int) string { return fmt.Sprintf("scale-%02d", i) }
	for i := range o.namespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName(i), Labels: map[string]string{scaleLabel: "true"}}}
		if err := c.Create(ctx, ns); err != nil {
			fmt.Fprintln(os.Stderr, "scale: create namespace:", err)
			return 1
		}
	}

	// Create the clients with bounded concurrency, and watch them become Ready.
	apiBefore, apiErr := apiServerRequests(ctx, env.Config)
	logf("creating %d OAuthClients in %d namespaces with %d goroutines", o.clients, o.namespaces, o.createWorkers)
	createStart := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range o.createWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= o.clients || ctx.Err() != nil {
					return
				}
				oc := &oauthv1alpha1.OAuthClient{
					ObjectMeta: metav1.ObjectMeta{
						Namespace: nsName(i % o.namespaces), Name: fmt.Sprintf("client-%06d", i),
						Labels: map[string]string{scaleLabel: "true"},
					},
					Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{apiName}, Scopes: []oauthv1alpha1.Scope{scope}},
				}
				if err := createWithRetry(ctx, c, oc); err != nil {
					if ctx.Err() == nil {
						if atomic.AddInt64(&rep.createErrs, 1) <= 5 {
							rep.note("create %s/%s: %v", oc.Namespace, oc.Name, err)
						}
					}
					continue
				}
				atomic.AddInt64(&rep.created, 1)
			}
		})
	}
	createdCh := make(chan struct{})
	var createTime time.Duration
	go func() { wg.Wait(); createTime = time.Since(createStart); close(createdCh) }()

	var lastLog time.Time
	createdLogged := false
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			<-createdCh
			return 1
		case <-tick.C:
		case <-readyWatch.changed:
		}
		select {
		case <-createdCh:
			if !createdLogged {
				createdLogged = true
				rep.createTime = createTime
				logf("created %d clients in %s (%d errors)", atomic.LoadInt64(&rep.created), rep.createTime.Round(time.Millisecond), atomic.LoadInt64(&rep.createErrs))
			}
		default:
		}
		ready, total := readyWatch.counts()
		elapsed := time.Since(createStart)
		rep.mu.Lock()
		rep.ready = ready
		rep.mu.Unlock()
		done := ready >= o.clients && createdLogged
		if time.Since(lastLog) >= 15*time.Second || done {
			lastLog = time.Now()
			hwm, rss := memNow(rep)
			line := fmt.Sprintf("t=%6.1fs created=%6d seen=%6d ready=%6d  manager VmRSS=%s VmHWM=%s",
				elapsed.Seconds(), atomic.LoadInt64(&rep.created), total, ready, mib(rss), mib(hwm))
			logf("%s", line)
			rep.mu.Lock()
			rep.readyCurve = append(rep.readyCurve, line)
			rep.mu.Unlock()
		}
		if done {
			rep.readyTime = elapsed
			break
		}
	}
	stopWatch()
	if apiErr == nil {
		if after, err := apiServerRequests(ctx, env.Config); err == nil {
			rep.loads = append(rep.loads, after.since(apiBefore, "creation until all Ready (the benchmark's creates included)"))
		}
	}

	// Settle: the reconcile queue empty, then a quiet while; then memory.
	logf("settling: waiting for an empty reconcile queue, then %s", o.settle)
	if err := waitQueueDrained(ctx, env.MetricsPort, 0); err != nil {
		rep.note("settle: %v", err)
	}
	idleBefore, _ := apiServerRequests(ctx, env.Config)
	select {
	case <-ctx.Done():
		return 1
	case <-time.After(o.settle):
	}
	if idleAfter, err := apiServerRequests(ctx, env.Config); err == nil {
		rep.loads = append(rep.loads, idleAfter.since(idleBefore, "settled, idle"))
	}
	rep.heapProfile = filepath.Join(dir, fmt.Sprintf("heap-%d.pb.gz", o.clients))
	if err := heapProfile(env.Replicas[0].PprofPort, rep.heapProfile); err != nil {
		rep.note("heap profile: %v", err)
	} else {
		rep.heapTop = pprofTop(ctx, rep.heapProfile, 20)
		groups, err := pprofGroups(ctx, rep.heapProfile, memoryGroups)
		if err != nil {
			rep.note("heap groups: %v", err)
		}
		rep.heapGroups = groups
	}
	rep.settled = managerMemory(env.MetricsPort, managerPIDOf(env, 0))

	// Token latency with every client cached.
	logf("reading the %d client secrets", o.clients)
	creds, err := scaleCredentials(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale: read secrets:", err)
		return 1
	}
	// Alternating runs, so that the machine's drift falls on both: random clients of
	// all, and the sample client alone (what the baseline measured) at the same time.
	logf("token latency: %d sequential requests for random clients of %d, alternating with the sample client's", o.seqRequests, len(creds))
	// Short rounds, each also kept apart when the manager ran no collection during it:
	// what the client count costs, without the collector's share of the two cores.
	rep.seq, rep.seqSample = &latencies{workers: 1}, &latencies{workers: 1}
	rep.seqQuiet, rep.seqSampleQuiet = &latencies{workers: 1}, &latencies{workers: 1}
	const rounds = 30
	seqCPU := cpuFrom(managerPIDOf(env, 0))
	for range rounds {
		for _, run := range []struct {
			all, quiet *latencies
			creds      []cred
		}{{rep.seq, rep.seqQuiet, creds}, {rep.seqSample, rep.seqSampleQuiet, base}} {
			gc0 := gcCycles(env.MetricsPort)
			l := tokenLoad(ctx, hc, env.TokenURL, run.creds, o.seqRequests/rounds, 1)
			gc1 := gcCycles(env.MetricsPort)
			run.all.add(l)
			if gc0 >= 0 && gc1 == gc0 {
				run.quiet.add(l)
			}
		}
	}
	rep.seqCPU = seqCPU()
	for _, n := range o.concurrency {
		logf("token latency: %d requests on %d connections", o.burstRequests, n)
		chc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n, MaxConnsPerHost: n}}
		gc0 := gcCycles(env.MetricsPort)
		l := tokenLoad(ctx, chc, env.TokenURL, creds, o.burstRequests, n)
		if gc0 >= 0 {
			l.gcCycles = gcCycles(env.MetricsPort) - gc0
		}
		rep.concurrent = append(rep.concurrent, l)
		chc.CloseIdleConnections()
	}
	if calls, err := managerMetrics(env.MetricsPort, "rest_client_requests_total"); err == nil {
		rep.managerCalls = restCalls(calls)
	}

	if o.replica {
		rep.replica = startSecondReplica(ctx, env, hc, creds, rep)
		if o.resync && rep.replica.err == "" {
			rep.resync = measureResync(ctx, env, o.clients, rep)
		}
	}
	return 0
}

// memoryGroups split the manager's heap: each sample goes to the first group whose
// expression matches one of its frames.
var memoryGroups = []heapGroup{
	{"token server registry (tokenserver.Store)", regexp.MustCompile(`tokenserver\.\(\*Store\)|tokenserver\.new(Client|Credentials|API)`)},
	{"event recorder (events/v1 series cache)", regexp.MustCompile(`client-go/tools/events\.|k8s\.io/api/events/`)},
	// Secrets and Namespaces come as protobuf; custom resources and metadata-only
	// ServiceAccounts as JSON: with many clients, the JSON-decoded objects are the
	// OAuthClients.
	{"informer cache: Secrets (protobuf-decoded, transform)", regexp.MustCompile(`secretTransform|k8s\.io/api/core/v1\.\(\*Secret\)|serializer/protobuf`)},
	{"informer cache: OAuthClients (JSON-decoded, transform)", regexp.MustCompile(`sigs\.k8s\.io/json|encoding/json\.\(\*decodeState\)|oauthClientTransform|serializer/json\.\(\*Serializer\)\.Decode`)},
	{"informer indexes and queues (client-go cache)", regexp.MustCompile(`client-go/tools/cache\.`)},
	{"reconcile queue", regexp.MustCompile(`client-go/util/workqueue|controller-runtime/pkg/internal/controller`)},
}

// profiledMemory takes a replica's heap profile (after a collection) into path, then
// reads its memory, and splits its heap by memoryGroups.
func profiledMemory(ctx context.Context, r devenv.Replica, pid int, path string) (*memory, []string) {
	if err := heapProfile(r.PprofPort, path); err != nil {
		return managerMemory(r.MetricsPort, pid), []string{"heap profile: " + err.Error()}
	}
	m := managerMemory(r.MetricsPort, pid)
	groups, err := pprofGroups(ctx, path, memoryGroups)
	if err != nil {
		groups = []string{err.Error()}
	}
	return m, groups
}

// managerMemory reads a manager's memory: VmRSS and the Go runtime's figures.
func managerMemory(metricsPort, pid int) *memory {
	m := &memory{}
	if _, rss, err := procMemory(pid); err == nil {
		m.rss = float64(rss)
	}
	if s, err := managerMetrics(metricsPort, "go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes", "go_memstats_sys_bytes"); err == nil {
		m.heapInuse, m.heapAlloc, m.sys = s["go_memstats_heap_inuse_bytes"], s["go_memstats_heap_alloc_bytes"], s["go_memstats_sys_bytes"]
	}
	return m
}

func managerPIDOf(env *devenv.Env, i int) int {
	pids := env.ManagerPIDs()
	if i < len(pids) {
		return pids[i]
	}
	return 0
}

// waitQueueDrained waits until the manager at metricsPort has reconciled at least
// minReconciles OAuthClients and its reconcile queue is empty (at most 10 minutes).
func waitQueueDrained(ctx context.Context, metricsPort int, minReconciles float64) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	for {
		s, err := managerMetrics(metricsPort, "workqueue_depth", "controller_runtime_reconcile_total")
		if err == nil {
			depth := sum(s, "name", "oauthclient")
			done := sum(s, "controller", "oauthclient")
			if depth == 0 && done >= minReconciles {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reconcile queue not drained: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// gcCycles is the number of garbage collections the manager at metricsPort has run;
// -1 when unknown.
func gcCycles(metricsPort int) float64 {
	s, err := managerMetrics(metricsPort, "go_gc_duration_seconds_count")
	if err != nil || len(s) == 0 {
		return -1
	}
	return sum(s)
}

// restCalls summarizes a manager's own API requests (rest_client_requests_total) by
// method.
func restCalls(s map[string]float64) []string {
	by := map[string]float64{}
	for series, v := range s {
		by[label(series, "method")] += v
	}
	methods := make([]string, 0, len(by))
	for m := range by {
		methods = append(methods, m)
	}
	slices.Sort(methods)
	out := make([]string, 0, len(methods))
	for _, m := range methods {
		out = append(out, fmt.Sprintf("%s %.0f", m, by[m]))
	}
	return out
}

// startSecondReplica starts another manager with every client present and measures
// how long until it serves its first token (the sample client, and a random one of
// the benchmark's clients) and until it is ready (every client indexed).
func startSecondReplica(ctx context.Context, env *devenv.Env, hc *http.Client, creds []cred, rep *report) *replicaStart {
	res := &replicaStart{}
	before, apiErr := apiServerRequests(ctx, env.Config)
	logf("second replica: starting with %d clients present", len(creds))
	t0 := time.Now()
	i, err := env.StartReplica()
	if err != nil {
		res.err = err.Error()
		return res
	}
	r := env.Replicas[i]
	sampleSecret, _ := secretOf(ctx, env.Client, devenv.SampleNamespace, "web-shop")
	sample := cred{id: oauthv1alpha1.ClientID(devenv.SampleNamespace, "web-shop"), secret: sampleSecret}
	last := creds[len(creds)-1] // created last
	deadline := time.Now().Add(5 * time.Minute)
	for (res.firstToken == 0 || res.firstScaleToken == 0 || res.ready == 0) && time.Now().Before(deadline) && ctx.Err() == nil {
		if res.firstToken == 0 && tokenOK(ctx, hc, r.TokenURL, sample) {
			res.firstToken = time.Since(t0)
		}
		if res.firstScaleToken == 0 && tokenOK(ctx, hc, r.TokenURL, last) {
			res.firstScaleToken = time.Since(t0)
		}
		if res.ready == 0 && probeReady(r.ProbePort) {
			res.ready = time.Since(t0)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if res.ready == 0 || res.firstToken == 0 || res.firstScaleToken == 0 {
		res.err = "not ready, or no token, within 5 minutes"
	}
	logf("second replica: first token after %s, ready after %s", res.firstToken.Round(time.Millisecond), res.ready.Round(time.Millisecond))
	if apiErr == nil {
		if after, err := apiServerRequests(ctx, env.Config); err == nil {
			rep.loads = append(rep.loads, after.since(before, "second replica's start until ready"))
		}
	}
	time.Sleep(5 * time.Second)
	res.profile = strings.TrimSuffix(rep.heapProfile, ".pb.gz") + "-follower.pb.gz"
	res.mem, res.groups = profiledMemory(ctx, r, managerPIDOf(env, i), res.profile)
	return res
}

// measureResync stops the first replica: the second takes the lead and reconciles
// every client from its cache, as after a resync. It reports how long that took and
// the API server's load meanwhile.
func measureResync(ctx context.Context, env *devenv.Env, clients int, rep *report) *resyncResult {
	res := &resyncResult{}
	second := env.Replicas[1]
	before, apiErr := apiServerRequests(ctx, env.Config)
	logf("resync: stopping the first replica; the second leads and reconciles every client")
	t0 := time.Now()
	if err := env.StopReplica(0); err != nil {
		res.err = err.Error()
		return res
	}
	for ctx.Err() == nil && time.Since(t0) < 2*time.Minute {
		s, err := managerMetrics(second.MetricsPort, "leader_election_master_status")
		if err == nil && sum(s) == 1 {
			res.leadAfter = time.Since(t0)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res.leadAfter == 0 {
		res.err = "the second replica did not lead within 2 minutes"
		return res
	}
	if err := waitQueueDrained(ctx, second.MetricsPort, float64(clients)); err != nil {
		res.err = err.Error()
	}
	res.reconciledAfter = time.Since(t0)
	if s, err := managerMetrics(second.MetricsPort, "controller_runtime_reconcile_total"); err == nil {
		res.reconciles = sum(s, "controller", "oauthclient")
	}
	logf("resync: led after %s, %0.f reconciles done after %s", res.leadAfter.Round(time.Millisecond), res.reconciles, res.reconciledAfter.Round(time.Millisecond))
	time.Sleep(5 * time.Second)
	res.mem, res.groups = profiledMemory(ctx, second, managerPIDOf(env, 1), filepath.Join(filepath.Dir(env.ManagerLog), "heap-leader-after-resync.pb.gz"))
	if apiErr == nil {
		if after, err := apiServerRequests(ctx, env.Config); err == nil {
			rep.loads = append(rep.loads, after.since(before, "resync: the new leader reconciles every client"))
		}
	}
	return res
}

func tokenOK(ctx context.Context, hc *http.Client, tokenURL string, cr cred) bool {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {cr.id}, "client_secret": {cr.secret}}
	status, _, err := post(ctx, hc, tokenURL, form.Encode())
	return err == nil && status == http.StatusOK
}

func probeReady(port int) bool {
	resp, err := metricsClient.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func createWithRetry(ctx context.Context, c client.Client, oc *oauthv1alpha1.OAuthClient) error {
	var err error
	for attempt := range 5 {
		if err = c.Create(ctx, oc.DeepCopy()); err == nil || ctx.Err() != nil {
			return err
		}
		if strings.Contains(err.Error(), "already exists") {
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	return err
}

type cred struct{ id, secret string }

func secretOf(ctx context.Context, c client.Client, ns, name string) (string, error) {
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		return "", err
	}
	return string(s.Data[oauthv1alpha1.SecretKeyClientSecret]), nil
}

// scaleCredentials reads the client secrets of the benchmark's namespaces, paged, in
// the order the clients were created.
func scaleCredentials(ctx context.Context, c client.Client) ([]cred, error) {
	var out []cred
	cont := ""
	for {
		list := &corev1.SecretList{}
		if err := c.List(ctx, list, client.HasLabels{oauthv1alpha1.ClientLabel},
			client.MatchingLabels{oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue},
			client.Limit(500), client.Continue(cont)); err != nil {
			return nil, err
		}
		for _, s := range list.Items {
			if !strings.HasPrefix(s.Namespace, "scale-") {
				continue
			}
			ref := metav1.GetControllerOf(&s)
			if ref == nil || len(s.Data[oauthv1alpha1.SecretKeyClientSecret]) == 0 {
				continue
			}
			out = append(out, cred{id: oauthv1alpha1.ClientID(s.Namespace, ref.Name), secret: string(s.Data[oauthv1alpha1.SecretKeyClientSecret])})
		}
		if cont = list.Continue; cont == "" {
			break
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no client secrets found")
	}
	// client-%06d: the name orders them by creation.
	slices.SortFunc(out, func(a, b cred) int {
		return strings.Compare(a.id[strings.IndexByte(a.id, '.'):], b.id[strings.IndexByte(b.id, '.'):])
	})
	return out, nil
}

type latencies struct {
	d        []time.Duration
	failures int
	firstErr string
	wall     time.Duration
	workers  int
	gcCycles float64 // the manager's collections during the run; 0: not measured
}

// tokenLoad sends n token requests for random clients from `workers` goroutines.
func tokenLoad(ctx context.Context, hc *http.Client, tokenURL string, creds []cred, n, workers int) *latencies {
	l := &latencies{workers: workers}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(n)))
		wg.Go(func() {
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				cr := creds[rng.IntN(len(creds))]
				form := url.Values{"grant_type": {"client_credentials"}, "client_id": {cr.id}, "client_secret": {cr.secret}}
				t0 := time.Now()
				status, body, err := post(ctx, hc, tokenURL, form.Encode())
				d := time.Since(t0)
				mu.Lock()
				if err != nil || status != http.StatusOK {
					l.failures++
					if l.firstErr == "" {
						l.firstErr = fmt.Sprintf("%s: status %d %v %s", cr.id, status, err, body)
					}
				} else {
					l.d = append(l.d, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	l.wall = time.Since(start)
	slices.Sort(l.d)
	return l
}

func post(ctx context.Context, hc *http.Client, u, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	// Read to the end, or the connection is not used again: a token answer is longer
	// than what is kept for an error message.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), nil
}

// add merges o into l.
func (l *latencies) add(o *latencies) {
	l.d = append(l.d, o.d...)
	slices.Sort(l.d)
	l.failures += o.failures
	if l.firstErr == "" {
		l.firstErr = o.firstErr
	}
	l.wall += o.wall
}

func (l *latencies) pct(p float64) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(l.d)-1))
	return l.d[i]
}

func (l *latencies) String() string {
	if l == nil {
		return "not reached"
	}
	if len(l.d) == 0 {
		return fmt.Sprintf("no successful request (%d failures: %s)", l.failures, l.firstErr)
	}
	s := fmt.Sprintf("n=%d p50=%s p90=%s p99=%s p99.9=%s max=%s  (%.0f req/s, %d connection(s))",
		len(l.d), ms(l.pct(50)), ms(l.pct(90)), ms(l.pct(99)), ms(l.pct(99.9)), ms(l.d[len(l.d)-1]),
		float64(len(l.d))/l.wall.Seconds(), l.workers)
	if l.gcCycles > 0 {
		s += fmt.Sprintf(", %.0f GC cycles of the manager", l.gcCycles)
	}
	if l.failures > 0 {
		s += fmt.Sprintf("; %d FAILED, first: %s", l.failures, l.firstErr)
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func memNow(r *report) (hwm, rss int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hwm, r.rss
}

func mib(b int64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scale: %s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// cpuUse is how the CPU was spent during a phase: by the manager, by this benchmark,
// by the control plane.
type cpuUse struct {
	wall, manager, self, apiServer, etcd time.Duration
}

// cpuFrom starts measuring; the function it returns ends the measurement.
func cpuFrom(managerPID int) func() *cpuUse {
	apiServer, etcd := machine.Children(os.Getpid(), "kube-apiserver"), machine.Children(os.Getpid(), "etcd")
	sum := func(pids []int) time.Duration {
		var d time.Duration
		for _, p := range pids {
			d += machine.ProcessCPU(p)
		}
		return d
	}
	now := func() cpuUse {
		return cpuUse{manager: machine.ProcessCPU(managerPID), self: machine.ProcessCPU(os.Getpid()), apiServer: sum(apiServer), etcd: sum(etcd)}
	}
	t0, c0 := time.Now(), now()
	return func() *cpuUse {
		c1 := now()
		return &cpuUse{wall: time.Since(t0), manager: c1.manager - c0.manager, self: c1.self - c0.self,
			apiServer: c1.apiServer - c0.apiServer, etcd: c1.etcd - c0.etcd}
	}
}

func (c *cpuUse) String() string {
	if c == nil || c.wall <= 0 {
		return "not measured"
	}
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / c.wall.Seconds() }
	return fmt.Sprintf("the manager %.0f%% of one CPU, this benchmark %.0f%%, kube-apiserver %.0f%%, etcd %.0f%%; load average %s",
		pct(c.manager), pct(c.self), pct(c.apiServer), pct(c.etcd), machine.LoadAverage())
}
