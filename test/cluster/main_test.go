//go:build cluster

// Package cluster is the end-to-end suite on a real cluster (`make test-cluster`): real
// pods on a real kubelet, the chart as users install it, credentials mounted by the
// kubelet, traffic through Services and cluster DNS. It runs on the cluster of a running
// `make cluster`, else starts one (hack/cluster, or with CLUSTER_KUBECONFIG installs into
// that cluster) and removes it at the end. Every failure prints the pods' states, the
// events and the operator's logs.
package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The cluster under test, from its ready line.
var (
	root       string // the repository
	kubeconfig string
	operatorNS string
	tokenSvc   string // the token server's in-cluster URL
	apiSvc     string // the example API's in-cluster URL
	probeImage string
	cfg        *rest.Config
	kube       kubernetes.Interface
	k8s        client.Client
)

const (
	release   = "oauth-client-operator"
	testNS    = "cluster-test"
	leaseName = "oauth-client-operator.oauth.operator.dev"
	// clusterFile is where a running `make cluster` publishes its ready line.
	clusterFile = "/run/oauth-client-operator-cluster/cluster.json"
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/cluster:", err)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	if root, err = filepath.Abs("../.."); err != nil {
		return 0, err
	}
	ready, stop, err := obtainCluster()
	if err != nil {
		return 0, err
	}
	defer stop()
	fields := map[string]string{}
	for _, f := range strings.Fields(strings.TrimPrefix(ready, "cluster-ready:")) {
		k, v, _ := strings.Cut(f, "=")
		fields[k] = v
	}
	kubeconfig, operatorNS, tokenSvc, apiSvc = fields["kubeconfig"], fields["namespace"], fields["token_service"], fields["api_service"]
	if kubeconfig == "" || operatorNS == "" || tokenSvc == "" || apiSvc == "" {
		return 0, fmt.Errorf("incomplete ready line %q", ready)
	}
	var imgs struct{ Probe string }
	b, err := os.ReadFile(filepath.Join(clusterDir(), "images.json"))
	if err != nil {
		return 0, fmt.Errorf("the images of the cluster: %w", err)
	}
	if err := json.Unmarshal(b, &imgs); err != nil || imgs.Probe == "" {
		return 0, fmt.Errorf("no probe image in %s", filepath.Join(clusterDir(), "images.json"))
	}
	probeImage = imgs.Probe
	if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		return 0, err
	}
	if kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return 0, err
	}
	if k8s, err = client.New(cfg, client.Options{}); err != nil {
		return 0, err
	}
	fmt.Printf("test/cluster: cluster %s, operator in %s, token service %s\n", kubeconfig, operatorNS, tokenSvc)
	return m.Run(), nil
}

func clusterDir() string {
	if d := os.Getenv("CLUSTER_DIR"); d != "" {
		return d
	}
	return filepath.Join(root, "bin", "cluster")
}

// obtainCluster returns the ready line of the running local cluster, or starts one
// (hack/cluster up, which honours CLUSTER_KUBECONFIG) and returns how to stop it.
func obtainCluster() (string, func(), error) {
	if os.Getenv("CLUSTER_KUBECONFIG") == "" {
		if b, err := os.ReadFile(clusterFile); err == nil {
			var c struct {
				PID   int    `json:"pid"`
				Ready string `json:"ready"`
			}
			if json.Unmarshal(b, &c) == nil && c.PID > 0 && syscall.Kill(c.PID, 0) == nil && c.Ready != "" {
				fmt.Printf("test/cluster: using the running local cluster (pid %d)\n", c.PID)
				return c.Ready, func() {}, nil
			}
		}
	}
	bin := os.Getenv("CLUSTER_BIN")
	if bin == "" {
		return "", nil, fmt.Errorf("no cluster runs: start one with `make cluster`, or run `make test-cluster` (it starts one)")
	}
	fmt.Println("test/cluster: starting a cluster:", bin, "up")
	cmd := exec.Command(bin, "-dir", clusterDir(), "up")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	readyc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			fmt.Println("  |", line)
			if strings.HasPrefix(line, "cluster-ready:") {
				readyc <- line
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(readyc)
	}()
	stop := func() {
		fmt.Println("test/cluster: stopping the cluster it started")
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				fmt.Println("test/cluster: the cluster stopped with", err)
			}
		case <-time.After(3 * time.Minute):
			_ = cmd.Process.Kill()
			fmt.Println("test/cluster: the cluster did not stop within 3 minutes; killed (run `go run ./hack/cluster down`)")
		}
	}
	select {
	case ready, ok := <-readyc:
		if !ok {
			_ = cmd.Wait()
			return "", nil, fmt.Errorf("%s up stopped before it was ready", bin)
		}
		return ready, stop, nil
	case <-time.After(25 * time.Minute):
		stop()
		return "", nil, fmt.Errorf("%s up: not ready after 25 minutes", bin)
	}
}

// ctxFor returns a context for one step.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 500 ms until it returns true; after timeout the test
// fails with the last message cond gave.
func eventually(t *testing.T, what string, timeout time.Duration, cond func(ctx context.Context) (bool, string)) {
	t.Helper()
	ctx := ctxFor(t, timeout+30*time.Second)
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, msg := cond(ctx)
		if ok {
			return
		}
		last = msg
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, timeout, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// helm runs the helm binary against the cluster.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	bin := os.Getenv("HELM")
	if bin == "" {
		bin = filepath.Join(root, "bin", "helm")
	}
	cmd := exec.Command(bin, append(args, "--kubeconfig", kubeconfig)...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
