// Command load measures the token endpoint of the real operator binary under a bounded
// loopback load, side by side with a minimal token handler, in one run on one machine:
//
//	go run ./test/load            # what `make bench` runs after the handler benchmark
//	go run ./test/load -h         # flags; each has a LOAD_* environment variable
//
// It starts the control plane, the samples and the manager with internal/devenv
// (exactly as `make dev`, without the example API), and the minimal handler (minimal.go:
// encoding/json, a map, crypto/subtle, golang-jwt ES256) as a child process of its own,
// so both servers are separate processes on the same cores. The same load generator
// (loadgen.go: N keep-alive workers, a request limit and a time limit per run) drives
// both with the sample client's JSON body, alternately (real, minimal, minimal, real,
// …) after a warm-up of each. The manager is then started again with RS256 keys and
// measured alone. Everything listens on 127.0.0.1 and stops by itself.
//
// The output is one table (algorithm, server, requests, req/s, p50, p99, non-2xx) and
// the ratio of the real server's throughput to the minimal one's. The command fails if
// any request was answered with a non-2xx status or not at all, or if -min-ratio is set
// and not met.
package main

import (
	"context"
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
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
)

type options struct {
	workers  int
	requests int64
	duration time.Duration
	warmup   time.Duration
	rounds   int
	rs256    bool
	minRatio float64
	timeout  time.Duration
	verbose  bool
}

func main() {
	serve := flag.Bool("serve-minimal", false, "internal: run as the minimal token server (config on stdin)")
	var o options
	flag.IntVar(&o.workers, "workers", envInt("LOAD_WORKERS", 8), "concurrent keep-alive workers (LOAD_WORKERS)")
	flag.Int64Var(&o.requests, "requests", int64(envInt("LOAD_REQUESTS", 12500)), "request limit of one measured run (LOAD_REQUESTS)")
	flag.DurationVar(&o.duration, "duration", envDuration("LOAD_DURATION", 5*time.Second), "time limit of one measured run (LOAD_DURATION)")
	flag.DurationVar(&o.warmup, "warmup", envDuration("LOAD_WARMUP", 2*time.Second), "warm-up of each server before measuring, not counted (LOAD_WARMUP)")
	flag.IntVar(&o.rounds, "rounds", envInt("LOAD_ROUNDS", 4), "measured runs per server, alternating real and minimal (LOAD_ROUNDS)")
	flag.BoolVar(&o.rs256, "rs256", envBool("LOAD_RS256", true), "also measure the real server with RS256 keys (LOAD_RS256)")
	flag.Float64Var(&o.minRatio, "min-ratio", envFloat("LOAD_MIN_RATIO", 0), "fail if real/minimal ES256 throughput is below this; 0: report only (LOAD_MIN_RATIO)")
	flag.DurationVar(&o.timeout, "timeout", envDuration("LOAD_TIMEOUT", 6*time.Minute), "bound of the whole command (LOAD_TIMEOUT)")
	flag.BoolVar(&o.verbose, "v", envBool("LOAD_VERBOSE", false), "print the environment's progress (LOAD_VERBOSE)")
	flag.Parse()

	if *serve {
		if err := serveMinimal(30 * time.Minute); err != nil {
			fmt.Fprintln(os.Stderr, "minimal server:", err)
			os.Exit(1)
		}
		return
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

// row is one line of the table.
type row struct {
	alg, server string
	res         *result
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
	progress("built in %s; starting the environment (ES256)", time.Since(t0).Round(100*time.Millisecond))

	spec := loadSpec{Workers: o.workers, Requests: o.requests, Duration: o.duration}
	warm := loadSpec{Workers: o.workers, Requests: 1 << 40, Duration: o.warmup}
	client := newClient(o.workers)
	defer client.CloseIdleConnections()
	var rows []row

	// ES256: the real server and the minimal one, alternately.
	env, err := startEnv(ctx, bins, dir+"/es256", "", logw)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopEnv(env)) }()
	id, secret, err := env.SampleCredentials(ctx)
	if err != nil {
		return err
	}
	body := tokenBody(id, secret)

	// The minimal server issues what the real one issues: same issuer, audience, scope
	// and lifetime, read from a token of the real server.
	realClaims, err := sampleToken(ctx, client, env.TokenURL, body)
	if err != nil {
		return fmt.Errorf("real server: %w", err)
	}
	minimal, err := startMinimal(minimalConfig{
		Issuer: realClaims.str("iss"), ClientID: id, Secret: secret,
		Audience: realClaims.str("aud"), Scope: realClaims.str("scope"),
		TTL: realClaims.int("exp") - realClaims.int("iat"),
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, minimal.stop()) }()
	minClaims, err := sampleToken(ctx, client, minimal.url, body)
	if err != nil {
		return fmt.Errorf("minimal server: %w", err)
	}
	if err := sameShape(realClaims, minClaims); err != nil {
		return err
	}

	servers := []struct {
		name, url string
		res       *result
	}{{"operator", env.TokenURL, &result{}}, {"minimal", minimal.url, &result{}}}
	for _, s := range servers {
		progress("warm-up %s for %s", s.name, o.warmup)
		if w := run(ctx, client, s.url, body, warm); w.Non2xx+w.Errors > 0 {
			return fmt.Errorf("warm-up of %s: %d non-2xx, %d errors; first: %s", s.name, w.Non2xx, w.Errors, w.FirstBad)
		}
	}
	var pairRatios []float64
	for round := range o.rounds {
		var rates [2]float64
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0} // ABBA: drift of a noisy machine falls on both
		}
		for _, i := range order {
			if err := stopped(ctx, o); err != nil {
				return err
			}
			s := servers[i]
			r := run(ctx, client, s.url, body, spec)
			progress("round %d %-8s %7d requests in %5.1fs: %7.0f req/s", round+1, s.name, r.Requests, r.Elapsed.Seconds(), r.rate())
			s.res.add(r)
			rates[i] = r.rate()
		}
		pairRatios = append(pairRatios, rates[0]/rates[1])
	}
	rows = append(rows, row{"ES256", "operator", servers[0].res}, row{"ES256", "minimal", servers[1].res})

	if o.rs256 {
		if err := minimal.stop(); err != nil {
			return err
		}
		if err := stopEnv(env); err != nil {
			return err
		}
		progress("starting the environment (RS256)")
		env, err = startEnv(ctx, bins, dir+"/rs256", "signing: {algorithm: RS256}", logw)
		if err != nil {
			return err
		}
		id, secret, err := env.SampleCredentials(ctx)
		if err != nil {
			return err
		}
		body := tokenBody(id, secret)
		c, err := sampleToken(ctx, client, env.TokenURL, body)
		if err != nil {
			return fmt.Errorf("real server (RS256): %w", err)
		}
		if alg := c.header["alg"]; alg != "RS256" {
			return fmt.Errorf("real server (RS256): token has alg %v", alg)
		}
		progress("warm-up operator (RS256) for %s", o.warmup)
		client.CloseIdleConnections()
		if w := run(ctx, client, env.TokenURL, body, warm); w.Non2xx+w.Errors > 0 {
			return fmt.Errorf("warm-up (RS256): %d non-2xx, %d errors; first: %s", w.Non2xx, w.Errors, w.FirstBad)
		}
		total := &result{}
		for round := range o.rounds {
			if err := stopped(ctx, o); err != nil {
				return err
			}
			r := run(ctx, client, env.TokenURL, body, spec)
			progress("round %d operator %7d requests in %5.1fs: %7.0f req/s (RS256)", round+1, r.Requests, r.Elapsed.Seconds(), r.rate())
			total.add(r)
		}
		rows = append(rows, row{"RS256", "operator", total})
	}

	printReport(os.Stdout, o, rows, pairRatios)
	progress("done in %s", time.Since(t0).Round(time.Second))

	var bad []string
	for _, r := range rows {
		if r.res.Non2xx+r.res.Errors > 0 {
			bad = append(bad, fmt.Sprintf("%s %s: %d non-2xx, %d errors (first: %s)", r.alg, r.server, r.res.Non2xx, r.res.Errors, r.res.FirstBad))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	if ratio := rows[0].res.rate() / rows[1].res.rate(); o.minRatio > 0 && ratio < o.minRatio {
		return fmt.Errorf("real/minimal ES256 throughput %.2f is below -min-ratio %.2f", ratio, o.minRatio)
	}
	return nil
}

// stopped is an error once the command was interrupted or its -timeout passed.
func stopped(ctx context.Context, o options) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stopped before the end (interrupted, or -timeout %s passed): %w", o.timeout, err)
	}
	return nil
}

func startEnv(ctx context.Context, bins *devenv.Binaries, dir, managerConfig string, logw io.Writer) (*devenv.Env, error) {
	t := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	env, err := devenv.Start(sctx, devenv.Options{
		Dir:           dir,
		Binaries:      bins,
		NoExampleAPI:  true,
		ManagerConfig: managerConfig,
		StopTimeout:   10 * time.Second,
		Log:           logw,
	})
	if err != nil {
		return nil, fmt.Errorf("start the environment: %w", err)
	}
	progress("environment ready in %s: %s", time.Since(t).Round(100*time.Millisecond), env.TokenURL)
	return env, nil
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

func printReport(w io.Writer, o options, rows []row, pairRatios []float64) {
	_, _ = fmt.Fprintf(w, "\n%d workers, %d rounds per server of at most %d requests or %s each, after a %s warm-up; 127.0.0.1\n\n",
		o.workers, o.rounds, o.requests, o.duration, o.warmup)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintln(tw, "algorithm\tserver\trequests\treq/s\tp50\tp99\tnon-2xx\terrors\t")
	for _, r := range rows {
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%s\t%s\t%d\t%d\t\n", r.alg, r.server, r.res.Requests, r.res.rate(),
			ms(r.res.percentile(50)), ms(r.res.percentile(99)), r.res.Non2xx, r.res.Errors)
	}
	_ = tw.Flush()
	ratio := rows[0].res.rate() / rows[1].res.rate()
	verdict := "met"
	if ratio < 0.8 {
		verdict = "NOT met"
	}
	_, _ = fmt.Fprintf(w, "\nES256 throughput real/minimal: %.2f (target >= 0.80: %s)\n", ratio, verdict)
	per := make([]string, len(pairRatios))
	for i, r := range pairRatios {
		per[i] = fmt.Sprintf("%.2f", r)
	}
	_, _ = fmt.Fprintf(w, "  per round (back-to-back runs; spread shows the machine's noise): %s\n", strings.Join(per, " "))
	if len(rows) > 2 {
		_, _ = fmt.Fprintf(w, "RS256/ES256 throughput of the real server: %.2f\n", rows[2].res.rate()/rows[0].res.rate())
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

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

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
