package main

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
)

func TestGuide(t *testing.T) {
	env := &devenv.Env{
		Issuer:     "http://127.0.0.1:18443",
		TokenURL:   "http://127.0.0.1:18443/oauth2-token",
		APIURL:     "http://127.0.0.1:18080/api/users",
		Kubeconfig: "/repo/bin/dev/kubeconfig",
		ManagerLog: "/repo/bin/dev/manager.log",
	}
	var out bytes.Buffer
	writeGuide(&out, env)
	for _, want := range []string{
		"kubectl --kubeconfig /repo/bin/dev/kubeconfig get oauthclients -A\n",
		"SECRET=$(kubectl --kubeconfig /repo/bin/dev/kubeconfig -n shop get secret erp-sync -o jsonpath='{.data.client_secret}' | base64 -d)\n",
		`curl -sS -X POST http://127.0.0.1:18443/oauth2-token -H 'Content-Type: application/json'`,
		`-d '{"grant_type": "client_credentials", "client_id": "shop.erp-sync", "client_secret": "'"$SECRET"'"}'`,
		`curl -sS http://127.0.0.1:18080/api/users -H "Authorization: Bearer $TOKEN" -H 'Accept: application/vnd.api+json'` + "\n",
		`kubectl --kubeconfig /repo/bin/dev/kubeconfig -n shop get secret ledger -o jsonpath="{.data.$k}" | base64 -d > /tmp/ledger/$k; done`,
		"go run ./cmd/example-client --dpop --verbose --secret-dir /tmp/ledger --audience back-office http://127.0.0.1:18080/api/users\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("guide lacks %q:\n%s", want, out.String())
		}
	}
}

// With replicas, the guide lists them and says how to watch and move the leadership.
func TestGuideReplicas(t *testing.T) {
	env := &devenv.Env{
		Issuer:     "http://127.0.0.1:18443",
		TokenURL:   "http://127.0.0.1:18443/oauth2-token",
		Kubeconfig: "/repo/bin/dev/kubeconfig",
		ManagerLog: "/repo/bin/dev/manager.log",
		Replicas: []devenv.Replica{
			{Name: "manager", TokenURL: "http://127.0.0.1:18443/oauth2-token", MetricsPort: 18081, Log: "/repo/bin/dev/manager.log"},
			{Name: "manager-2", TokenURL: "http://127.0.0.1:40001/oauth2-token", MetricsPort: 40002, Log: "/repo/bin/dev/manager-2.log"},
		},
	}
	var out bytes.Buffer
	writeGuide(&out, env)
	for _, want := range []string{
		"2 manager replicas compete for one Lease",
		"http://127.0.0.1:40001/oauth2-token",
		"kubectl --kubeconfig /repo/bin/dev/kubeconfig -n oauth-system get lease oauth-client-operator.oauth.operator.dev\n",
		"for p in 18081 40002; do",
		"leader_election_master_status",
		"Logs: /repo/bin/dev/manager.log, /repo/bin/dev/manager-2.log.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("guide lacks %q:\n%s", want, out.String())
		}
	}
}

// With cluster B, the guide shows how its ServiceAccount's token is exchanged.
func TestGuideClusterB(t *testing.T) {
	env := &devenv.Env{
		Issuer:     "http://127.0.0.1:18443",
		TokenURL:   "http://127.0.0.1:18443/oauth2-token",
		Kubeconfig: "/repo/bin/dev/kubeconfig",
		ManagerLog: "/repo/bin/dev/manager.log",
		ClusterB:   &devenv.ClusterB{Kubeconfig: "/repo/bin/dev/cluster-b.kubeconfig"},
	}
	var out bytes.Buffer
	writeGuide(&out, env)
	for _, want := range []string{
		"B_TOKEN=$(kubectl --kubeconfig /repo/bin/dev/cluster-b.kubeconfig -n shop create token erp-sync --audience http://127.0.0.1:18443)\n",
		"curl -sS -X POST http://127.0.0.1:18443/oauth2-token -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \\\n",
		`-d subject_token_type=urn:ietf:params:oauth:token-type:jwt --data-urlencode subject_token="$B_TOKEN"` + "\n",
		"shop.cluster-b-sync",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("guide lacks %q:\n%s", want, out.String())
		}
	}
	if got := clusterBKubeconfig(env); got != "/repo/bin/dev/cluster-b.kubeconfig" {
		t.Errorf("cluster_b_kubeconfig = %q", got)
	}
	if got := clusterBKubeconfig(&devenv.Env{}); got != "" {
		t.Errorf("cluster_b_kubeconfig without cluster B = %q", got)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/repo/bin/dev/kubeconfig": "/repo/bin/dev/kubeconfig",
		"/my repo/kubeconfig":      "'/my repo/kubeconfig'",
		"/it's/kubeconfig":         `'/it'\''s/kubeconfig'`,
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// A taken port fails before anything is built or started, naming the flag to change.
func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	for _, env := range []string{"DEV_TOKEN_PORT", "DEV_API_PORT", "DEV_METRICS_PORT"} {
		t.Setenv(env, "0") // free whatever else runs here
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"--dir", t.TempDir(), "--probe-port", port}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "port "+port) || !strings.Contains(stderr.String(), "--probe-port") || !strings.Contains(stderr.String(), "DEV_PROBE_PORT") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: %s", stdout.String())
	}
}

func TestBadPortEnv(t *testing.T) {
	t.Setenv("DEV_API_PORT", "http")
	var stdout, stderr bytes.Buffer
	if code := run(nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "DEV_API_PORT") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
}

// With --tls, every command that reaches the token server trusts the local CA, and the
// guide says where the CA is.
func TestGuideTLS(t *testing.T) {
	env := &devenv.Env{
		Issuer:     "https://127.0.0.1:18443",
		TokenURL:   "https://127.0.0.1:18443/oauth2-token",
		APIURL:     "http://127.0.0.1:18080/api/users",
		Kubeconfig: "/repo/bin/dev/kubeconfig",
		ManagerLog: "/repo/bin/dev/manager.log",
		CAFile:     "/my repo/bin/dev/ca.crt",
	}
	var out bytes.Buffer
	writeGuide(&out, env)
	for _, want := range []string{
		"certificate of the local CA /my repo/bin/dev/ca.crt",
		`TOKEN=$(curl -sS --cacert '/my repo/bin/dev/ca.crt' -X POST https://127.0.0.1:18443/oauth2-token -H 'Content-Type: application/json'`,
		`curl -sS --cacert '/my repo/bin/dev/ca.crt' -X POST https://127.0.0.1:18443/oauth2-token -d grant_type=client_credentials -d client_id=shop.inventory`,
		"--audience https://127.0.0.1:18443)",
		`SSL_CERT_FILE='/my repo/bin/dev/ca.crt' go run ./cmd/example-client`,
		"curl -sS --cacert '/my repo/bin/dev/ca.crt' https://127.0.0.1:18443/.well-known/jwks.json\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("guide lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "http://127.0.0.1:18443") {
		t.Errorf("the guide names the token server over plain HTTP:\n%s", out.String())
	}
}
