// Command scale is the operator's scale benchmark (`make bench-scale`; not part of
// `make test`). It starts the environment of `make dev` without the example API
// (internal/devenv: etcd, kube-apiserver and the real manager binary as a child
// process), creates many OAuthClients, and measures
//
//   - the time until every client is Ready (status condition Ready=True),
//   - the operator process's peak resident memory (VmHWM of /proc/<pid>/status, sampled
//     throughout, and the final VmRSS),
//   - the token endpoint's latency with all those clients cached: sequential requests
//     for random clients (p50/p99) and a burst from several goroutines, next to the
//     same measurement taken before the clients were created.
//
// It prints a report against the targets: all Ready within 5 minutes, RSS under
// 300 MiB, token latency independent of the number of clients. A global timeout stops
// everything and reports what was reached.
//
//	go run ./test/scale -clients 10000 -timeout 10m
package main

import (
	"bufio"
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
)

// Targets of the issue.
const (
	targetReady = 5 * time.Minute
	targetRSS   = 300 << 20
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
	seqRequests, burstRequests, burst  int
	timeout                            time.Duration
	dir                                string
	keep                               bool
}

func main() {
	var o options
	flag.IntVar(&o.clients, "clients", 10000, "number of OAuthClients to create")
	flag.IntVar(&o.namespaces, "namespaces", 20, "namespaces to spread them over")
	flag.IntVar(&o.createWorkers, "create-concurrency", 16, "goroutines creating clients")
	flag.IntVar(&o.seqRequests, "token-requests", 2000, "sequential token requests (random clients)")
	flag.IntVar(&o.burstRequests, "burst-requests", 400, "token requests of the concurrent burst")
	flag.IntVar(&o.burst, "burst-concurrency", 8, "goroutines of the concurrent burst")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "global timeout: stop everything and report what was reached")
	flag.StringVar(&o.dir, "dir", "", "folder for binaries, kubeconfig and logs (default: a temporary folder)")
	flag.BoolVar(&o.keep, "keep", false, "keep the folder (manager log) afterwards")
	flag.Parse()
	if o.clients < 1 || o.namespaces < 1 || o.createWorkers < 1 || o.burst < 1 {
		fmt.Fprintln(os.Stderr, "scale: -clients, -namespaces, -create-concurrency and -burst-concurrency must be positive")
		os.Exit(2)
	}
	os.Exit(run(o))
}

// report collects what was reached; it is printed whatever happens.
type report struct {
	mu          sync.Mutex
	start       time.Time
	envStart    time.Duration
	created     int64
	createErrs  int64
	createTime  time.Duration
	ready       int
	readyTime   time.Duration // from the first create until all were Ready; 0: not reached
	readyCurve  []string
	baseline    *latencies
	seq, burstL *latencies
	hwm, rss    int64 // bytes, of the manager process
	maxRSS      int64
	metrics     []string
	notes       []string
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

	rep := &report{start: time.Now()}
	logf("starting the environment in %s", dir)
	env, err := devenv.Start(ctx, devenv.Options{
		Dir:          dir,
		NoExampleAPI: true,
		Log:          os.Stderr,
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
			logf("manager log kept: %s", env.ManagerLog)
		}
	}()

	pids := env.ChildPIDs()
	if len(pids) != 1 {
		fmt.Fprintf(os.Stderr, "scale: expected one child (the manager), got %v\n", pids)
		return 1
	}
	managerPID := pids[0]

	// Sample the manager's memory throughout.
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

	code := measure(ctx, o, env, rep)

	// Final memory, metrics, then stop sampling.
	if hwm, rss, err := procMemory(managerPID); err == nil {
		rep.mu.Lock()
		rep.hwm, rep.rss = hwm, rss
		rep.maxRSS = max(rep.maxRSS, rss)
		rep.mu.Unlock()
	}
	stopSampler()
	<-samplerDone
	rep.metrics = scrapeMetrics(env.MetricsPort)
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

// measure runs the phases: baseline token latency, creation, readiness, token latency
// with every client cached. It returns the exit code.
func measure(ctx context.Context, o options, env *devenv.Env, rep *report) int {
	hc := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute},
	}

	// Baseline: token latency with only the two sample clients.
	sampleSecret, err := secretOf(ctx, env.Client, devenv.SampleNamespace, "web-shop")
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale: sample secret:", err)
		return 1
	}
	base := []cred{{id: oauthv1alpha1.ClientID(devenv.SampleNamespace, "web-shop"), secret: sampleSecret}}
	logf("baseline: %d token requests with the sample clients only", min(o.seqRequests, 500))
	rep.baseline = tokenLoad(ctx, hc, env.TokenURL, base, min(o.seqRequests, 500), 1)

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

	nsName := func(i int) string { return fmt.Sprintf("scale-%02d", i) }
	for i := range o.namespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName(i), Labels: map[string]string{scaleLabel: "true"}}}
		if err := c.Create(ctx, ns); err != nil {
			fmt.Fprintln(os.Stderr, "scale: create namespace:", err)
			return 1
		}
	}

	// Create the clients with bounded concurrency, and watch them become Ready.
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
	ticker := time.NewTicker(2 * time.Second)
	defer ticker.Stop()
	createdLogged := false
	for {
		select {
		case <-ctx.Done():
			<-createdCh
			return 1
		case <-ticker.C:
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
		ready, total, err := countReady(ctx, c)
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			logf("list: %v", err)
			continue
		}
		elapsed := time.Since(createStart)
		rep.mu.Lock()
		rep.ready = ready
		rep.mu.Unlock()
		if time.Since(lastLog) >= 15*time.Second || ready == o.clients {
			lastLog = time.Now()
			hwm, rss := memNow(rep)
			line := fmt.Sprintf("t=%6.1fs created=%5d listed=%5d ready=%5d  manager VmRSS=%s VmHWM=%s",
				elapsed.Seconds(), atomic.LoadInt64(&rep.created), total, ready, mib(rss), mib(hwm))
			logf("%s", line)
			rep.mu.Lock()
			rep.readyCurve = append(rep.readyCurve, line)
			rep.mu.Unlock()
		}
		if ready == o.clients && createdLogged {
			rep.readyTime = elapsed
			break
		}
	}

	// Token latency with every client cached.
	logf("reading the %d client secrets", o.clients)
	creds, err := scaleCredentials(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale: read secrets:", err)
		return 1
	}
	logf("token latency: %d sequential requests for random clients of %d", o.seqRequests, len(creds))
	rep.seq = tokenLoad(ctx, hc, env.TokenURL, creds, o.seqRequests, 1)
	logf("token latency: %d requests from %d goroutines", o.burstRequests, o.burst)
	rep.burstL = tokenLoad(ctx, hc, env.TokenURL, creds, o.burstRequests, o.burst)
	return 0
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

// countReady lists the benchmark's clients, 500 a page, and counts the Ready ones.
func countReady(ctx context.Context, c client.Client) (ready, total int, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cont := ""
	for {
		list := &oauthv1alpha1.OAuthClientList{}
		if err := c.List(ctx, list, client.MatchingLabels{scaleLabel: "true"}, client.Limit(500), client.Continue(cont)); err != nil {
			return 0, 0, err
		}
		for i := range list.Items {
			total++
			if meta.IsStatusConditionTrue(list.Items[i].Status.Conditions, oauthv1alpha1.ConditionReady) {
				ready++
			}
		}
		if cont = list.Continue; cont == "" {
			return ready, total, nil
		}
	}
}

type cred struct{ id, secret string }

func secretOf(ctx context.Context, c client.Client, ns, name string) (string, error) {
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		return "", err
	}
	return string(s.Data[oauthv1alpha1.SecretKeyClientSecret]), nil
}

// scaleCredentials reads the client secrets of the benchmark's namespaces, paged.
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
	return out, nil
}

type latencies struct {
	d        []time.Duration
	failures int
	firstErr string
	wall     time.Duration
	workers  int
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
	return resp.StatusCode, string(b), nil
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
	s := fmt.Sprintf("n=%d p50=%s p90=%s p99=%s max=%s  (%.0f req/s, %d goroutine(s))",
		len(l.d), ms(l.pct(50)), ms(l.pct(90)), ms(l.pct(99)), ms(l.d[len(l.d)-1]),
		float64(len(l.d))/l.wall.Seconds(), l.workers)
	if l.failures > 0 {
		s += fmt.Sprintf("; %d FAILED, first: %s", l.failures, l.firstErr)
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// procMemory reads VmHWM (peak) and VmRSS of a process, in bytes.
func procMemory(pid int) (hwm, rss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		fields := strings.Fields(v) // "123456 kB"
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if k == "VmHWM" {
			hwm = n << 10
		} else {
			rss = n << 10
		}
	}
	if hwm == 0 && rss == 0 {
		return 0, 0, fmt.Errorf("no VmHWM/VmRSS in /proc/%d/status", pid)
	}
	return hwm, rss, sc.Err()
}

func memNow(r *report) (hwm, rss int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hwm, r.rss
}

func mib(b int64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

// scrapeMetrics keeps a few lines of the manager's Prometheus metrics that tell where
// the time and memory go.
func scrapeMetrics(port int) []string {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return []string{"metrics: " + err.Error()}
	}
	defer func() { _ = resp.Body.Close() }()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, p := range []string{
			`controller_runtime_reconcile_time_seconds_sum{controller="oauthclient"}`,
			`controller_runtime_reconcile_time_seconds_count{controller="oauthclient"}`,
			`controller_runtime_reconcile_total{controller="oauthclient"`,
			`controller_runtime_max_concurrent_reconciles{controller="oauthclient"}`,
			`workqueue_queue_duration_seconds_sum{controller="oauthclient"`,
			`workqueue_queue_duration_seconds_count{controller="oauthclient"`,
			`workqueue_work_duration_seconds_sum{controller="oauthclient"`,
			`workqueue_work_duration_seconds_count{controller="oauthclient"`,
			`rest_client_requests_total`,
			"go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes", "go_memstats_sys_bytes",
			"go_goroutines", "process_resident_memory_bytes", "process_cpu_seconds_total",
		} {
			if strings.HasPrefix(line, p) {
				out = append(out, line)
				break
			}
		}
	}
	return out
}

func printReport(w io.Writer, o options, r *report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	host, _ := os.Hostname()
	cpu := cpuModel()
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format+"\n", args...) }
	verdict := func(ok bool) string {
		if ok {
			return "MET"
		}
		return "MISSED"
	}
	p("")
	p("=== oauth-client-operator scale benchmark ===")
	p("machine: %s, %d CPUs (%s), %s", host, numCPU(), cpu, time.Now().UTC().Format(time.RFC3339))
	p("clients: %d in %d namespaces, created by %d goroutines (client QPS 500, burst 1000); timeout %s", o.clients, o.namespaces, o.createWorkers, o.timeout)
	p("environment start (build, etcd, kube-apiserver, manager): %s", r.envStart.Round(time.Millisecond))
	p("")
	p("created:          %d (errors: %d) in %s", r.created, r.createErrs, durOr(r.createTime, "not finished"))
	if r.readyTime > 0 {
		p("all Ready after:  %s from the first create (%.0f clients/s)  target < %s: %s",
			r.readyTime.Round(time.Millisecond), float64(o.clients)/r.readyTime.Seconds(), targetReady, verdict(r.readyTime < targetReady))
	} else {
		p("all Ready:        NOT reached: %d of %d Ready  target < %s: MISSED", r.ready, o.clients, targetReady)
	}
	p("manager memory:   peak VmHWM %s, final VmRSS %s (max sampled VmRSS %s)  target < %s: %s",
		mib(r.hwm), mib(r.rss), mib(r.maxRSS), mib(targetRSS), verdict(r.hwm > 0 && r.hwm < targetRSS))
	p("token latency, sample clients only (baseline):  %s", r.baseline)
	p("token latency, %d clients cached, sequential:  %s", o.clients, r.seq)
	p("token latency, %d clients cached, concurrent:  %s", o.clients, r.burstL)
	if r.baseline != nil && r.seq != nil && len(r.baseline.d) > 0 && len(r.seq.d) > 0 {
		p("p50 ratio (%d clients / baseline): %.2f  (lookup cost: see BenchmarkRegistryCredentials)",
			o.clients, float64(r.seq.pct(50))/float64(r.baseline.pct(50)))
	}
	if len(r.readyCurve) > 0 {
		p("")
		p("progress:")
		for _, l := range r.readyCurve {
			p("  %s", l)
		}
	}
	if len(r.metrics) > 0 {
		p("")
		p("manager metrics at the end:")
		for _, l := range r.metrics {
			p("  %s", l)
		}
	}
	for _, n := range r.notes {
		p("note: %s", n)
	}
}

func durOr(d time.Duration, s string) string {
	if d == 0 {
		return s
	}
	return d.Round(time.Millisecond).String()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nprocessor") + boolInt(strings.HasPrefix(string(b), "processor"))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scale: %s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
