// Command dev runs the operator locally without a cluster (`make dev`): etcd and
// kube-apiserver on loopback, the CRDs and config/samples, the manager with its token
// server, the example API when the repository has one, and cluster B: a second control
// plane whose ServiceAccount tokens the operator trusts (--cluster-b=false skips it).
// It prints one `ready: token_url=… api_url=… kubeconfig=… token_urls=…,…
// cluster_b_kubeconfig=… ca=…` line and a short guide on stdout (with --tls the token
// server speaks HTTPS with a certificate of a local CA and ca= names the CA's
// certificate; empty without --tls), runs until SIGINT or SIGTERM, then stops
// everything and exits 0. It exits non-zero when something fails to start or a child
// process dies (with --replicas N, when the last manager replica has).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/operator"
	"github.com/oauth-client-operator/oauth-client-operator/internal/tokenserver"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// portFlags names, for each port, the flag and environment variable that set it.
var portFlags = map[string]struct{ flag, env string }{
	devenv.RoleToken:   {"--token-port", "DEV_TOKEN_PORT"},
	devenv.RoleAPI:     {"--api-port", "DEV_API_PORT"},
	devenv.RoleMetrics: {"--metrics-port", "DEV_METRICS_PORT"},
	devenv.RoleProbe:   {"--probe-port", "DEV_PROBE_PORT"},
}

func run(args []string, stdout, stderr io.Writer) int {
	opts := devenv.Options{Log: stderr}
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var portErrs []error
	portVar := func(p *int, role string, def int, usage string) {
		f := portFlags[role]
		*p = def
		if v := os.Getenv(f.env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				portErrs = append(portErrs, fmt.Errorf("%s=%q is not a port number", f.env, v))
			}
			*p = n
		}
		fs.IntVar(p, f.flag[2:], *p, usage+" on 127.0.0.1 (env "+f.env+"; 0 picks a free port)")
	}
	portVar(&opts.TokenPort, devenv.RoleToken, devenv.DefaultTokenPort, "token server port")
	portVar(&opts.APIPort, devenv.RoleAPI, devenv.DefaultAPIPort, "example API port")
	portVar(&opts.MetricsPort, devenv.RoleMetrics, devenv.DefaultMetricsPort, "manager metrics port")
	portVar(&opts.ProbePort, devenv.RoleProbe, devenv.DefaultProbePort, "manager health-probe port")
	fs.StringVar(&opts.Dir, "dir", "", "folder for the binaries, kubeconfig, manager config and logs (default <repo>/bin/dev)")
	fs.DurationVar(&opts.ReadyTimeout, "ready-timeout", 2*time.Minute, "how long to wait for the token endpoint to answer")
	fs.IntVar(&opts.Replicas, "replicas", 1, "manager processes; more than 1 runs them with leader election, each serving tokens on its own port")
	fs.BoolVar(&opts.ClusterB, "cluster-b", true, "start a second control plane, another cluster whose ServiceAccount tokens the operator trusts (OAuthTrustedIssuer cluster-b)")
	fs.BoolVar(&opts.TLS, "tls", false, "serve the token server over HTTPS with a certificate of a local CA written into --dir (ca.crt: use curl --cacert)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if opts.Replicas < 1 || opts.Replicas > 9 {
		_, _ = fmt.Fprintf(stderr, "dev: --replicas %d: want 1 to 9\n", opts.Replicas)
		return 2
	}
	if err := errors.Join(portErrs...); err != nil {
		_, _ = fmt.Fprintln(stderr, "dev:", err)
		return 2
	}

	// Signals stay caught until everything is stopped: a second Ctrl-C must not orphan
	// etcd or kube-apiserver.
	ctx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()
	stopWithParent()

	env, err := devenv.Start(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			_, _ = fmt.Fprintln(stderr, "dev: interrupted while starting; stopped")
			return 0
		}
		var inUse *devenv.PortInUseError
		if errors.As(err, &inUse) {
			f := portFlags[inUse.Role]
			_, _ = fmt.Fprintf(stderr, "dev: %v\ndev: choose another port with %s=<port> (or env %s), e.g. %s=0 for a free one\n", err, f.flag, f.env, f.flag)
			return 1
		}
		_, _ = fmt.Fprintln(stderr, "dev:", err)
		return 1
	}

	// Scripts parse this line: fields are only ever added, never renamed or removed.
	_, _ = fmt.Fprintf(stdout, "ready: token_url=%s api_url=%s kubeconfig=%s token_urls=%s cluster_b_kubeconfig=%s ca=%s\n",
		env.TokenURL, env.APIURL, env.Kubeconfig, strings.Join(env.TokenURLs(), ","), clusterBKubeconfig(env), env.CAFile)
	writeGuide(stdout, env)

	code := 0
	if err := env.Wait(ctx); err != nil {
		_, _ = fmt.Fprintln(stderr, "dev:", err)
		code = 1
	}
	_, _ = fmt.Fprintln(stderr, "dev: stopping")
	if err := env.Stop(); err != nil {
		_, _ = fmt.Fprintln(stderr, "dev: stop:", err)
		code = 1
	}
	_, _ = fmt.Fprintln(stderr, "dev: stopped")
	return code
}

// writeGuide prints the commands a newcomer runs next.
func writeGuide(w io.Writer, env *devenv.Env) {
	kc := shellQuote(env.Kubeconfig)
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format+"\n", args...) }
	// curl of the token server: it trusts the local CA with --tls.
	curl, goRun := "curl -sS", "go run"
	if env.CAFile != "" {
		curl += " --cacert " + shellQuote(env.CAFile)
		goRun = "SSL_CERT_FILE=" + shellQuote(env.CAFile) + " go run"
	}
	p("")
	p("The operator runs on a local control plane (etcd + kube-apiserver) with config/samples applied.")
	if env.CAFile != "" {
		p("The token server speaks HTTPS with a certificate of the local CA %s;", env.CAFile)
		p("clients trust it with curl --cacert, or SSL_CERT_FILE for Go programs.")
	}
	p("Try it from another terminal:")
	p("")
	p("  # the OAuth clients, their client IDs and Ready condition")
	p("  kubectl --kubeconfig %s get oauthclients -A", kc)
	p("")
	p("  # the client_secret the operator generated for the sample client shop.erp-sync")
	p("  SECRET=$(kubectl --kubeconfig %s -n %s get secret %s -o jsonpath='{.data.client_secret}' | base64 -d)",
		kc, devenv.SampleNamespace, devenv.SampleClient)
	p("")
	p("  # a token for the %s API (drop the `| sed …` to see the whole answer)", devenv.APIAudience)
	p(`  TOKEN=$(%s -X POST %s -H 'Content-Type: application/json' \`, curl, env.TokenURL)
	p(`    -d '{"grant_type": "client_credentials", "client_id": "%s", "client_secret": "'"$SECRET"'"}' \`, devenv.SampleClientID)
	p(`    | sed -E 's/.*"access_token":"([^"]+)".*/\1/')`)
	p("")
	if env.APIURL != "" {
		p("  # call the example API with it")
		p(`  curl -sS %s -H "Authorization: Bearer $TOKEN" -H 'Accept: application/vnd.api+json'`, env.APIURL)
	} else {
		p("  # (no example API: this checkout has no cmd/example-api)")
	}
	p("")
	p("  # no secret at all: shop.%s authenticates with its ServiceAccount's token", devenv.SampleServiceAccountClient)
	p("  SA_TOKEN=$(kubectl --kubeconfig %s -n %s create token %s --audience %s)",
		kc, devenv.SampleNamespace, devenv.SampleServiceAccountClient, env.Issuer)
	p(`  %s -X POST %s -d grant_type=client_credentials -d client_id=%s.%s \`, curl, env.TokenURL, devenv.SampleNamespace, devenv.SampleServiceAccountClient)
	p(`    --data-urlencode client_assertion_type=%s \`, tokenserver.JWTBearerAssertionType)
	p(`    --data-urlencode client_assertion="$SA_TOKEN"`)
	p("")
	p("  # private_key_jwt: shop.%s signs each request with the key the operator generated", devenv.SamplePrivateKeyClient)
	p("  # into its Secret; cmd/example-client does it with pkg/client, from the Secret's files")
	p("  mkdir -p /tmp/%s && for k in client_id token_url private_key key_id; do", devenv.SamplePrivateKeyClient)
	p(`    kubectl --kubeconfig %s -n %s get secret %s -o jsonpath="{.data.$k}" | base64 -d > /tmp/%s/$k; done`,
		kc, devenv.SampleNamespace, devenv.SamplePrivateKeyClient, devenv.SamplePrivateKeyClient)
	if env.APIURL != "" {
		p("  %s ./cmd/example-client --secret-dir /tmp/%s --audience %s %s", goRun, devenv.SamplePrivateKeyClient, devenv.APIAudience, env.APIURL)
	}
	p("")
	p("  # DPoP: shop.%s has requireDPoP, so each token is bound to a key that never leaves", devenv.SampleDPoPClient)
	p("  # the workload (a stolen token is useless); curl cannot sign the proofs, pkg/client can")
	p("  mkdir -p /tmp/%s && for k in client_id token_url client_secret; do", devenv.SampleDPoPClient)
	p(`    kubectl --kubeconfig %s -n %s get secret %s -o jsonpath="{.data.$k}" | base64 -d > /tmp/%s/$k; done`,
		kc, devenv.SampleNamespace, devenv.SampleDPoPClient, devenv.SampleDPoPClient)
	if env.APIURL != "" {
		p("  %s ./cmd/example-client --dpop --verbose --secret-dir /tmp/%s --audience %s %s", goRun, devenv.SampleDPoPClient, devenv.APIAudience, env.APIURL)
	}
	p("")
	writeClusterBGuide(p, env, curl)
	p("  # the public keys APIs verify tokens with")
	p("  %s %s/.well-known/jwks.json", curl, env.Issuer)
	p("")
	if len(env.Replicas) > 1 {
		writeReplicasGuide(p, env, kc)
	}
	logs := env.ManagerLog
	for _, r := range env.Replicas[min(1, len(env.Replicas)):] {
		logs += ", " + r.Log
	}
	if env.APILog != "" {
		logs += ", " + env.APILog
	}
	p("Logs: %s. Ctrl-C stops everything.", logs)
}

// writeReplicasGuide shows the replicas and how to watch and move the leadership.
func writeReplicasGuide(p func(string, ...any), env *devenv.Env, kc string) {
	pids := env.ManagerPIDs()
	p("%d manager replicas compete for one Lease; the leader reconciles, every replica serves tokens:", len(env.Replicas))
	var ports []string
	for i, r := range env.Replicas {
		p("  %-10s pid %-7d %s  metrics :%d", r.Name, pids[i], r.TokenURL, r.MetricsPort)
		ports = append(ports, strconv.Itoa(r.MetricsPort))
	}
	p("")
	p("  # which one leads: the Lease's HOLDER (kubectl -w to watch it change) ...")
	p("  kubectl --kubeconfig %s -n %s get lease %s", kc, devenv.OperatorNamespace, operator.DefaultLeaderElectionID)
	p("  # ... and, per replica, leader_election_master_status 1 on the leader")
	p(`  for p in %s; do echo ":$p $(curl -s 127.0.0.1:$p/metrics | grep '^leader_election_master_status')"; done`, strings.Join(ports, " "))
	p("")
	p("  # stop the leader: kill <pid> releases the Lease and another replica leads at once")
	p("  # (kill -9: once the 15 s lease expires); the others keep serving tokens, and this")
	p("  # runner goes on while one replica runs")
	p("")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
