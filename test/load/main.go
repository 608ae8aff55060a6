// Command load measures the token endpoint of the real operator binary under a bounded
// loopback load, side by side with a minimal token endpoint, in one run on one machine:
//
//	go run ./test/load            # what `make bench` runs after the handler benchmark
//	go run ./test/load -h         # flags; each has a LOAD_* environment variable
//
// It starts the control plane, the samples and the manager with internal/devenv
// (exactly as `make dev`, without the example API), and the minimal endpoint
// (minimal.go: encoding/json, a map, crypto/subtle, golang-jwt ES256) as a child process
// of its own, so both servers are separate processes on the same cores. The same load
// generator (loadgen.go: N workers, a request limit and a time limit per run) drives
// both with the sample client's JSON body, alternately (real, minimal, minimal, real,
// …) after a warm-up of each. Four parts, each in an environment of its own:
//
//  1. plain HTTP, keep-alive, ES256: operator vs minimal;
//  2. plain HTTP, RS256: the operator alone;
//  3. TLS (`make dev --tls`: an ECDSA P-256 certificate of a local CA; the minimal
//     endpoint serves the same certificate with the same TLS settings,
//     httpserver.TLSConfig), operator vs minimal in three modes: keep-alive, a new
//     connection per request resuming the TLS session, a new connection per request
//     with a full handshake;
//  4. latency under load over TLS keep-alive at 16 and 64 connections (p99, p99.9),
//     operator vs minimal.
//
// Every manager runs with GOMEMLIMIT as the Helm chart sets it for its default memory
// limit (512Mi). Each run also measures the CPU time the server process spent, so
// the report gives requests per second of wall time and per CPU-second of the server
// (its throughput per core, whatever the load generator takes of the same cores).
// Everything listens on 127.0.0.1 and stops by itself.
//
// The command fails if any request was answered with a non-2xx status or not at all,
// or if -min-ratio is set and the ES256 keep-alive ratio is not met.
package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
)

// chartGOMEMLIMIT is what the chart's GOMEMLIMIT comes to with its default memory
// limit, 512Mi (the limit in bytes, from resourceFieldRef limits.memory).
const chartGOMEMLIMIT = "536870912"

type options struct {
	workers    int
	requests   int64
	duration   time.Duration
	warmup     time.Duration
	rounds     int
	rs256      bool
	tls        bool
	latency    []int
	latencyDur time.Duration
	gomemlimit string
	minRatio   float64
	timeout    time.Duration
	verbose    bool
}

func main() {
	serve := flag.Bool("serve-minimal", false, "internal: run as the minimal token server (config on stdin)")
	var o options
	flag.IntVar(&o.workers, "workers", envInt("LOAD_WORKERS", 8), "concurrent workers (LOAD_WORKERS)")
	flag.Int64Var(&o.requests, "requests", int64(envInt("LOAD_REQUESTS", 60000)), "request limit of one measured run (LOAD_REQUESTS)")
	flag.DurationVar(&o.duration, "duration", envDuration("LOAD_DURATION", 5*time.Second), "time limit of one measured run (LOAD_DURATION)")
	flag.DurationVar(&o.warmup, "warmup", envDuration("LOAD_WARMUP", 2*time.Second), "warm-up of each server before measuring, not counted (LOAD_WARMUP)")
	flag.IntVar(&o.rounds, "rounds", envInt("LOAD_ROUNDS", 4), "measured runs per server and mode, alternating real and minimal (LOAD_ROUNDS)")
	flag.BoolVar(&o.rs256, "rs256", envBool("LOAD_RS256", true), "also measure the real server with RS256 keys (LOAD_RS256)")
	flag.BoolVar(&o.tls, "tls", envBool("LOAD_TLS", true), "also measure over TLS: three connection modes, and latency at -latency-conns (LOAD_TLS)")
	conns := flag.String("latency-conns", envString("LOAD_LATENCY_CONNS", "16,64"), "connection counts of the latency runs over TLS keep-alive; empty: none (LOAD_LATENCY_CONNS)")
	flag.DurationVar(&o.latencyDur, "latency-duration", envDuration("LOAD_LATENCY_DURATION", 6*time.Second), "time of one latency run; two per server and connection count (LOAD_LATENCY_DURATION)")
	flag.StringVar(&o.gomemlimit, "gomemlimit", envString("LOAD_GOMEMLIMIT", chartGOMEMLIMIT), "GOMEMLIMIT of the manager (default: the chart's, for its 512Mi memory limit); empty: none (LOAD_GOMEMLIMIT)")
	flag.Float64Var(&o.minRatio, "min-ratio", envFloat("LOAD_MIN_RATIO", 0), "fail if real/minimal ES256 keep-alive throughput is below this; 0: report only (LOAD_MIN_RATIO)")
	flag.DurationVar(&o.timeout, "timeout", envDuration("LOAD_TIMEOUT", 15*time.Minute), "bound of the whole command (LOAD_TIMEOUT)")
	flag.BoolVar(&o.verbose, "v", envBool("LOAD_VERBOSE", false), "print the environment's progress (LOAD_VERBOSE)")
	flag.Parse()

	if *serve {
		if err := serveMinimal(30 * time.Minute); err != nil {
			fmt.Fprintln(os.Stderr, "minimal server:", err)
			os.Exit(1)
		}
		return
	}
	for _, c := range strings.Split(*conns, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "load: -latency-conns: %q is not a positive number\n", c)
			os.Exit(2)
		}
		o.latency = append(o.latency, n)
	}
	if o.workers < 1 || o.requests < 1 || o.duration <= 0 || o.rounds < 1 {
		fmt.Fprintln(os.Stderr, "load: -workers, -requests, -duration and -rounds must be positive")
		os.Exit(2)
	}
	// envtest logs through controller-runtime; the progress lines say what matters.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := mainErr(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		cancel()
		stop()
		os.Exit(1)
	}
}

// row is one line of a table.
type row struct {
	group, mode, server string
	res                 *result
	gcCycles            float64 // the operator's GC cycles during the runs; -1: not measured
}

// report is everything measured, printed at the end.
type report struct {
	plain      []row     // ES256 operator, minimal (keep-alive); then RS256 operator
	pairRatios []float64 // per round, plain ES256
	tlsRows    []row     // by mode: operator, minimal
	tlsRatios  map[connMode][]float64
	latency    []row // by connections: operator, minimal
}

func mainErr(ctx context.Context, o options) (err error) {
	dir, err := os.MkdirTemp("", "oauth-load-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	logw := io.Discard
	if o.verbose {
		logw = os.Stderr
	}

	t0 := time.Now()
	progress("building the binaries")
	bins, err := devenv.BuildBinaries(ctx, testenv.Root(), dir+"/bin")
	if err != nil {
		return err
	}
	progress("built in %s", time.Since(t0).Round(100*time.Millisecond))
	rep := &report{tlsRatios: map[connMode][]float64{}}

	if err := plainES256(ctx, o, bins, dir, logw, rep); err != nil {
		return err
	}
	if o.rs256 {
		if err := plainRS256(ctx, o, bins, dir, logw, rep); err != nil {
			return err
		}
	}
	if o.tls {
		if err := overTLS(ctx, o, bins, dir, logw, rep); err != nil {
			return err
		}
	}

	printReport(os.Stdout, o, rep)
	progress("done in %s", time.Since(t0).Round(time.Second))

	var bad []string
	for _, r := range slices.Concat(rep.plain, rep.tlsRows, rep.latency) {
		if r.res.Non2xx+r.res.Errors > 0 {
			bad = append(bad, fmt.Sprintf("%s %s %s: %d non-2xx, %d errors (first: %s)", r.group, r.mode, r.server, r.res.Non2xx, r.res.Errors, r.res.FirstBad))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	if ratio := rep.plain[0].res.rate() / rep.plain[1].res.rate(); o.minRatio > 0 && ratio < o.minRatio {
		return fmt.Errorf("real/minimal ES256 throughput %.2f is below -min-ratio %.2f", ratio, o.minRatio)
	}
	return nil
}

// bench is one environment with its minimal counterpart.
type bench struct {
	env     *devenv.Env
	minimal *minimalProcess
	body    string
	roots   *x509.CertPool
	realAlg string // the alg of the operator's tokens
}

func (b *bench) stop() error {
	var errs []error
	if b.minimal != nil {
		errs = append(errs, b.minimal.stop())
	}
	if b.env != nil {
		errs = append(errs, stopEnv(b.env))
	}
	return errors.Join(errs...)
}

// server is one side of a comparison.
type server struct {
	name, url string
	pid       int
}

func (b *bench) servers() []server {
	return []server{
		{"operator", b.env.TokenURL, b.env.ManagerPIDs()[0]},
		{"minimal", b.minimal.url, b.minimal.cmd.Process.Pid},
	}
}

// startBench starts an environment, and with minimal the minimal endpoint issuing the
// same tokens (same issuer, audience, scope and lifetime, read from a token of the
// real server; over TLS with the same certificate).
func startBench(ctx context.Context, o options, bins *devenv.Binaries, dir, managerConfig string, tls, minimal bool, logw io.Writer) (_ *bench, err error) {
	b := &bench{}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.stop())
		}
	}()
	if b.env, err = startEnv(ctx, o, bins, dir, managerConfig, tls, logw); err != nil {
		return nil, err
	}
	if b.env.CAFile != "" {
		pem, err := os.ReadFile(b.env.CAFile)
		if err != nil {
			return nil, err
		}
		b.roots = x509.NewCertPool()
		b.roots.AppendCertsFromPEM(pem)
	}
	id, secret, err := b.env.SampleCredentials(ctx)
	if err != nil {
		return nil, err
	}
	b.body = tokenBody(id, secret)
	client := newClient(1, keepAlive, b.roots)
	defer client.CloseIdleConnections()
	realClaims, err := sampleToken(ctx, client, b.env.TokenURL, b.body)
	if err != nil {
		return nil, fmt.Errorf("real server: %w", err)
	}
	b.realAlg = fmt.Sprint(realClaims.header["alg"])
	if !minimal {
		return b, nil
	}
	cfg := minimalConfig{
		Issuer: realClaims.str("iss"), ClientID: id, Secret: secret,
		Audience: realClaims.str("aud"), Scope: realClaims.str("scope"),
		TTL: realClaims.int("exp") - realClaims.int("iat"),
	}
	if tls {
		cfg.CertFile, cfg.KeyFile = b.env.TLSFiles.CertFile, b.env.TLSFiles.KeyFile
	}
	if b.minimal, err = startMinimal(cfg); err != nil {
		return nil, err
	}
	minClaims, err := sampleToken(ctx, client, b.minimal.url, b.body)
	if err != nil {
		return nil, fmt.Errorf("minimal server: %w", err)
	}
	if err := sameShape(realClaims, minClaims); err != nil {
		return nil, err
	}
	return b, nil
}

// plainES256 is part 1: plain HTTP keep-alive, operator vs minimal.
func plainES256(ctx context.Context, o options, bins *devenv.Binaries, dir string, logw io.Writer, rep *report) (err error) {
	progress("part 1: plain HTTP, keep-alive, ES256")
	b, err := startBench(ctx, o, bins, dir+"/es256", "", false, true, logw)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.stop()) }()
	rows, ratios, err := compare(ctx, o, b, "plain", keepAlive, o.workers)
	if err != nil {
		return err
	}
	rep.plain = append(rep.plain, rows...)
	rep.pairRatios = ratios
	return nil
}

// plainRS256 is part 2: the operator alone with RS256 keys.
func plainRS256(ctx context.Context, o options, bins *devenv.Binaries, dir string, logw io.Writer, rep *report) (err error) {
	progress("part 2: plain HTTP, keep-alive, RS256")
	b, err := startBench(ctx, o, bins, dir+"/rs256", "signing: {algorithm: RS256}", false, false, logw)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.stop()) }()
	if b.realAlg != "RS256" {
		return fmt.Errorf("real server (RS256): token has alg %v", b.realAlg)
	}
	client := newClient(o.workers, keepAlive, nil)
	defer client.CloseIdleConnections()
	pid := b.env.ManagerPIDs()[0]
	progress("warm-up operator (RS256) for %s", o.warmup)
	if w := run(ctx, client, b.env.TokenURL, b.body, warmSpec(o, o.workers), pid); w.Non2xx+w.Errors > 0 {
		return fmt.Errorf("warm-up (RS256): %d non-2xx, %d errors; first: %s", w.Non2xx, w.Errors, w.FirstBad)
	}
	total := &result{}
	for round := range o.rounds {
		if err := stopped(ctx, o); err != nil {
			return err
		}
		r := run(ctx, client, b.env.TokenURL, b.body, measureSpec(o, o.workers), pid)
		progress("round %d operator %7d requests in %5.1fs: %7.0f req/s (RS256)", round+1, r.Requests, r.Elapsed.Seconds(), r.rate())
		total.add(r)
	}
	rep.plain = append(rep.plain, row{group: "RS256", mode: keepAlive.String(), server: "operator", res: total, gcCycles: -1})
	return nil
}

// overTLS is parts 3 and 4: the three connection modes, then latency at several
// connection counts.
func overTLS(ctx context.Context, o options, bins *devenv.Binaries, dir string, logw io.Writer, rep *report) (err error) {
	progress("part 3: TLS (ECDSA P-256 certificate), ES256, three connection modes")
	b, err := startBench(ctx, o, bins, dir+"/tls", "", true, true, logw)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.stop()) }()
	for _, mode := range []connMode{keepAlive, resumed, fullHandshake} {
		rows, ratios, err := compare(ctx, o, b, "TLS", mode, o.workers)
		if err != nil {
			return err
		}
		rep.tlsRows = append(rep.tlsRows, rows...)
		rep.tlsRatios[mode] = ratios
	}
	if len(o.latency) > 0 {
		progress("part 4: latency over TLS keep-alive at %v connections", o.latency)
	}
	for _, conns := range o.latency {
		lo := o
		lo.rounds, lo.duration, lo.requests = 2, o.latencyDur, 1<<40
		rows, _, err := compare(ctx, lo, b, fmt.Sprintf("%d conns", conns), keepAlive, conns)
		if err != nil {
			return err
		}
		rep.latency = append(rep.latency, rows...)
	}
	return nil
}

func measureSpec(o options, workers int) loadSpec {
	return loadSpec{Workers: workers, Requests: o.requests, Duration: o.duration}
}

func warmSpec(o options, workers int) loadSpec {
	return loadSpec{Workers: workers, Requests: 1 << 40, Duration: o.warmup}
}

// compare drives the operator and the minimal endpoint of b alternately (ABBA), with
// workers connecting as mode says, after a warm-up of each; it returns their rows and
// the per-round throughput ratios.
func compare(ctx context.Context, o options, b *bench, group string, mode connMode, workers int) ([]row, []float64, error) {
	client := newClient(workers, mode, b.roots)
	defer client.CloseIdleConnections()
	servers := b.servers()
	results := []*result{{}, {}}
	for _, s := range servers {
		progress("%s %s, %d workers: warm-up %s for %s", group, mode, workers, s.name, o.warmup)
		if w := run(ctx, client, s.url, b.body, warmSpec(o, workers), s.pid); w.Non2xx+w.Errors > 0 {
			return nil, nil, fmt.Errorf("warm-up of %s (%s %s): %d non-2xx, %d errors; first: %s", s.name, group, mode, w.Non2xx, w.Errors, w.FirstBad)
		}
	}
	gc0 := gcCycles(b.env.MetricsPort)
	var gcDuring float64
	var ratios []float64
	for round := range o.rounds {
		var rates [2]float64
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0} // ABBA: drift of a noisy machine falls on both
		}
		for _, i := range order {
			if err := stopped(ctx, o); err != nil {
				return nil, nil, err
			}
			s := servers[i]
			before := gcCycles(b.env.MetricsPort)
			r := run(ctx, client, s.url, b.body, measureSpec(o, workers), s.pid)
			if i == 0 {
				gcDuring += gcCycles(b.env.MetricsPort) - before
			}
			progress("%s %s, %d workers, round %d %-8s %7d requests in %5.1fs: %7.0f req/s, %6.0f per CPU-second",
				group, mode, workers, round+1, s.name, r.Requests, r.Elapsed.Seconds(), r.rate(), r.perCore())
			results[i].add(r)
			rates[i] = r.rate()
		}
		ratios = append(ratios, rates[0]/rates[1])
	}
	if gc0 < 0 {
		gcDuring = -1
	}
	return []row{
		{group: group, mode: mode.String(), server: "operator", res: results[0], gcCycles: gcDuring},
		{group: group, mode: mode.String(), server: "minimal", res: results[1], gcCycles: -1},
	}, ratios, nil
}

// gcCycles is the number of garbage collections the manager has run
// (go_gc_duration_seconds_count); -1 when unknown.
func gcCycles(metricsPort int) float64 {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if err != nil {
		return -1
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "go_gc_duration_seconds_count "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// stopped is an error once the command was interrupted or its -timeout passed.
func stopped(ctx context.Context, o options) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stopped before the end (interrupted, or -timeout %s passed): %w", o.timeout, err)
	}
	return nil
}

func startEnv(ctx context.Context, o options, bins *devenv.Binaries, dir, managerConfig string, tls bool, logw io.Writer) (*devenv.Env, error) {
	t := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var env []string
	if o.gomemlimit != "" {
		env = append(env, "GOMEMLIMIT="+o.gomemlimit)
	}
	e, err := devenv.Start(sctx, devenv.Options{
		Dir:           dir,
		Binaries:      bins,
		NoExampleAPI:  true,
		ManagerConfig: managerConfig,
		ManagerEnv:    env,
		TLS:           tls,
		StopTimeout:   10 * time.Second,
		Log:           logw,
	})
	if err != nil {
		return nil, fmt.Errorf("start the environment: %w", err)
	}
	progress("environment ready in %s: %s", time.Since(t).Round(100*time.Millisecond), e.TokenURL)
	return e, nil
}

func stopEnv(env *devenv.Env) error {
	if err := env.Stop(); err != nil {
		return fmt.Errorf("stop the environment: %w", err)
	}
	return nil
}

func tokenBody(id, secret string) string {
	// The exact body of the README, byte for byte.
	return fmt.Sprintf(`{"grant_type": "client_credentials", "client_id": %q, "client_secret": %q}`, id, secret)
}

// jwtParts is a decoded (not verified) token: both servers are checked to issue the
// same shape, so the comparison is fair.
type jwtParts struct {
	header, claims map[string]any
}

func (p jwtParts) str(k string) string { s, _ := p.claims[k].(string); return s }
func (p jwtParts) int(k string) int64  { f, _ := p.claims[k].(float64); return int64(f) }

func sampleToken(ctx context.Context, client *http.Client, url, body string) (jwtParts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return jwtParts{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return jwtParts{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return jwtParts{}, fmt.Errorf("token request: %s: %s", resp.Status, data)
	}
	var answer struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(data, &answer); err != nil {
		return jwtParts{}, fmt.Errorf("token response %q: %w", data, err)
	}
	segs := strings.Split(answer.AccessToken, ".")
	if len(segs) != 3 {
		return jwtParts{}, fmt.Errorf("access_token is not a JWS: %q", answer.AccessToken)
	}
	var p jwtParts
	for i, dst := range []*map[string]any{&p.header, &p.claims} {
		raw, err := base64.RawURLEncoding.DecodeString(segs[i])
		if err != nil {
			return jwtParts{}, fmt.Errorf("token segment %d: %w", i, err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return jwtParts{}, fmt.Errorf("token segment %d: %w", i, err)
		}
	}
	return p, nil
}

func sameShape(real, minimal jwtParts) error {
	for _, part := range []struct {
		name string
		a, b map[string]any
	}{{"header", real.header, minimal.header}, {"claims", real.claims, minimal.claims}} {
		ka, kb := slices.Sorted(maps.Keys(part.a)), slices.Sorted(maps.Keys(part.b))
		if !slices.Equal(ka, kb) {
			return fmt.Errorf("the minimal server's token %s %v differ from the real one's %v", part.name, kb, ka)
		}
	}
	for _, k := range []string{"alg", "typ"} {
		if real.header[k] != minimal.header[k] {
			return fmt.Errorf("token header %s: real %v, minimal %v", k, real.header[k], minimal.header[k])
		}
	}
	for _, k := range []string{"iss", "sub", "aud", "client_id", "scope"} {
		if real.claims[k] != minimal.claims[k] {
			return fmt.Errorf("token claim %s: real %v, minimal %v", k, real.claims[k], minimal.claims[k])
		}
	}
	return nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "load: "+format+"\n", args...)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, err := strconv.ParseBool(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envString(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
