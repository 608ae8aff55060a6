//go:build integration

package devenv_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
)

// TestStartRestartStop runs the real binaries on a real control plane: the sample
// client gets a token, the operator restarts, an unexpected exit is reported, and Stop
// leaves no process and no listener behind.
func TestStartRestartStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()

	bins, err := devenv.BuildBinaries(ctx, testenv.Root(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if bins.ExampleAPI == "" {
		t.Fatal("no cmd/example-api built")
	}

	opts := devenv.Options{Dir: dir, Binaries: bins, Log: testLog{t}, StopTimeout: 15 * time.Second, ReadyTimeout: 90 * time.Second}
	for _, p := range []*int{&opts.TokenPort, &opts.APIPort, &opts.MetricsPort, &opts.ProbePort} {
		if *p, err = devenv.FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	env, err := devenv.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = env.Stop()
		}
	}()

	if want := fmt.Sprintf("http://127.0.0.1:%d/oauth2-token", opts.TokenPort); env.TokenURL != want {
		t.Errorf("TokenURL %q, want %q", env.TokenURL, want)
	}
	if want := fmt.Sprintf("http://127.0.0.1:%d/api/users", opts.APIPort); env.APIURL != want {
		t.Errorf("APIURL %q, want %q", env.APIURL, want)
	}
	if !filepath.IsAbs(env.Kubeconfig) {
		t.Errorf("Kubeconfig %q is not absolute", env.Kubeconfig)
	}
	token := assertToken(ctx, t, env)
	assertAPI(t, env, token)

	// The control plane's own ports must be free after Stop too.
	apiServer, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{apiServer.Host}
	for _, p := range []int{env.TokenPort, env.APIPort, env.MetricsPort, env.ProbePort} {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}

	// A restart runs a new manager process, which serves tokens again.
	pids := env.ChildPIDs()
	if len(pids) != 2 {
		t.Fatalf("children %v, want the example API and the manager", pids)
	}
	if err := env.RestartOperator(ctx); err != nil {
		t.Fatal(err)
	}
	assertAPI(t, env, assertToken(ctx, t, env))
	after := env.ChildPIDs()
	if len(after) != 2 || after[0] != pids[0] || after[1] == pids[1] {
		t.Fatalf("children after restart %v, before %v: want the same API and a new manager", after, pids)
	}
	gone(t, pids[1])
	all := append(after, pids[1])

	// A child that dies on its own is reported by Wait, with its log.
	if err := syscall.Kill(after[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitCtx, waitCancel := context.WithTimeout(ctx, 30*time.Second)
	defer waitCancel()
	err = env.Wait(waitCtx)
	if err == nil || !strings.Contains(err.Error(), "manager") || !strings.Contains(err.Error(), "stopped unexpectedly") || !strings.Contains(err.Error(), env.ManagerLog) {
		t.Fatalf("Wait after the manager was killed: %v", err)
	}

	stopped = true
	if err := env.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := env.Wait(ctx); err == nil {
		t.Error("Wait after Stop forgot the manager's unexpected exit")
	}
	if left := env.ChildPIDs(); len(left) != 0 {
		t.Errorf("children left after Stop: %v", left)
	}
	for _, pid := range all {
		gone(t, pid)
	}
	for _, addr := range addrs {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still in use after Stop: %v", addr, err)
			continue
		}
		_ = l.Close()
	}
}

func assertToken(ctx context.Context, t *testing.T, env *devenv.Env) string {
	t.Helper()
	id, secret, err := env.SampleCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The exact body the guide of `make dev` shows.
	body := fmt.Sprintf(`{"grant_type": "client_credentials", "client_id": %q, "client_secret": %q}`, id, secret)
	resp, err := http.Post(env.TokenURL, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	var answer struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &answer) != nil || answer.AccessToken == "" {
		t.Fatalf("token request for %s: %s %s", id, resp.Status, data)
	}
	return answer.AccessToken
}

// assertAPI makes the guide's call of the example API.
func assertAPI(t *testing.T, env *devenv.Env, token string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.APIURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.api+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(data), `"data"`) {
		t.Fatalf("GET %s: %s %s", env.APIURL, resp.Status, data)
	}
}

// gone asserts that pid no longer exists (reaped children give ESRCH).
func gone(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d still exists (kill 0: %v)", pid, err)
	}
}

// testLog sends the environment's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestReplicas runs two manager processes with leader election: each serves the sample
// client a token on its own port, one leads, and when the leader is stopped the other
// leads while the environment goes on.
func TestReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bins, err := devenv.BuildBinaries(ctx, testenv.Root(), dir)
	if err != nil {
		t.Fatal(err)
	}
	// Ports left at 0: Start picks distinct free ones for every replica.
	opts := devenv.Options{Dir: dir, Binaries: bins, Log: testLog{t}, NoExampleAPI: true, Replicas: 2,
		StopTimeout: 15 * time.Second, ReadyTimeout: 90 * time.Second}
	env, err := devenv.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()

	urls := env.TokenURLs()
	if len(urls) != 2 || urls[0] != env.TokenURL || urls[1] == urls[0] {
		t.Fatalf("TokenURLs %v (TokenURL %s), want two, the first one first", urls, env.TokenURL)
	}
	id, secret, err := env.SampleCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range urls {
		body := fmt.Sprintf(`{"grant_type": "client_credentials", "client_id": %q, "client_secret": %q}`, id, secret)
		resp, err := http.Post(u, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("token from %s: %s", u, resp.Status)
		}
	}

	leader := func() int {
		for i, r := range env.Replicas {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", r.MetricsPort))
			if err != nil {
				continue
			}
			data, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if strings.Contains(string(data), "\nleader_election_master_status{name=\"oauth-client-operator.oauth.operator.dev\"} 1\n") {
				return i
			}
		}
		return -1
	}
	waitLeader := func(not int) int {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if l := leader(); l >= 0 && l != not {
				return l
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no replica (other than %d) leads", not)
		return -1
	}
	first := waitLeader(-1)
	pids := env.ManagerPIDs()
	if err := syscall.Kill(pids[first], syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	second := waitLeader(first)
	t.Logf("%s led, stopped; %s leads", env.Replicas[first].Name, env.Replicas[second].Name)
	waitCtx, waitCancel := context.WithTimeout(ctx, 2*time.Second)
	defer waitCancel()
	if err := env.Wait(waitCtx); err != nil {
		t.Fatalf("the environment failed when one of two replicas stopped: %v", err)
	}
	if left := env.ManagerPIDs(); left[first] != 0 || left[second] != pids[second] {
		t.Fatalf("manager pids %v after stopping %d, before %v", left, pids[first], pids)
	}
}

// TestTLS runs the environment with TLS, as `make dev --tls`: issuer and token URL are
// https://, a client that trusts the CA file gets a token, one that does not is
// refused the certificate, plain HTTP to the token port gets a 400 that says why, and
// the example API (which fetches the JWKS over HTTPS) accepts the token.
func TestTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bins, err := devenv.BuildBinaries(ctx, testenv.Root(), dir)
	if err != nil {
		t.Fatal(err)
	}
	env, err := devenv.Start(ctx, devenv.Options{Dir: dir, Binaries: bins, Log: testLog{t}, TLS: true,
		StopTimeout: 15 * time.Second, ReadyTimeout: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()

	if want := fmt.Sprintf("https://127.0.0.1:%d", env.TokenPort); env.Issuer != want || env.TokenURL != want+"/oauth2-token" {
		t.Fatalf("issuer %s, token URL %s; want %s", env.Issuer, env.TokenURL, want)
	}
	if env.CAFile != filepath.Join(dir, "ca.crt") {
		t.Errorf("CAFile %q, want ca.crt in %s", env.CAFile, dir)
	}
	id, secret, err := env.SampleCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	token, err := env.RequestToken(ctx, id, secret) // env.HTTP trusts CAFile
	if err != nil {
		t.Fatal(err)
	}
	assertAPI(t, env, token)

	body := fmt.Sprintf(`{"grant_type": "client_credentials", "client_id": %q, "client_secret": %q}`, id, secret)
	if resp, err := http.Post(env.TokenURL, "application/json", strings.NewReader(body)); err == nil {
		_ = resp.Body.Close()
		t.Fatal("a client that does not trust the local CA got an answer")
	}
	plain := strings.Replace(env.TokenURL, "https://", "http://", 1)
	resp, err := http.Post(plain, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("plain HTTP to the TLS port: %v", err)
	}
	data, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(data), "HTTP request to an HTTPS server") {
		t.Errorf("plain HTTP to the TLS port: %s %q", resp.Status, data)
	}
}

// TestStartReplica: in an environment whose single manager elects (LeaderElection), a
// replica started later serves tokens and follows; when the first one stops, the
// added one leads and the environment goes on.
func TestStartReplica(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bins, err := devenv.BuildBinaries(ctx, testenv.Root(), dir)
	if err != nil {
		t.Fatal(err)
	}
	env, err := devenv.Start(ctx, devenv.Options{Dir: dir, Binaries: bins, Log: testLog{t}, NoExampleAPI: true,
		LeaderElection: true, StopTimeout: 15 * time.Second, ReadyTimeout: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	leads := func(i int) bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", env.Replicas[i].MetricsPort))
		if err != nil {
			return false
		}
		data, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return strings.Contains(string(data), "\nleader_election_master_status{name=\"oauth-client-operator.oauth.operator.dev\"} 1\n")
	}
	waitLeads := func(i int) {
		deadline := time.Now().Add(45 * time.Second)
		for !leads(i) {
			if time.Now().After(deadline) {
				t.Fatalf("%s does not lead", env.Replicas[i].Name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitLeads(0)

	i, err := env.StartReplica()
	if err != nil {
		t.Fatal(err)
	}
	if err := env.WaitForReplica(ctx, i); err != nil {
		t.Fatal(err)
	}
	if i != 1 || len(env.TokenURLs()) != 2 || env.TokenURLs()[1] == env.TokenURL {
		t.Fatalf("added replica %d, token URLs %v", i, env.TokenURLs())
	}
	if leads(1) {
		t.Fatal("the added replica leads while the first one does")
	}
	pids := env.ManagerPIDs()
	if err := env.StopReplica(0); err != nil {
		t.Fatal(err)
	}
	gone(t, pids[0])
	waitLeads(1)
	waitCtx, waitCancel := context.WithTimeout(ctx, 2*time.Second)
	defer waitCancel()
	if err := env.Wait(waitCtx); err != nil {
		t.Fatalf("the environment failed when the first replica was stopped: %v", err)
	}
}
