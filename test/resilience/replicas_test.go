//go:build integration

package resilience

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
)

// Leader election timings of controller-runtime's defaults, which cmd/manager keeps.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
	leaseName     = "oauth-client-operator.oauth.operator.dev"
	// handoverBound is the longest a crashed leader's lease may delay a successor:
	// the follower sees the leader's last renewal up to one (jittered, x1.2) retry
	// period late, counts LeaseDuration from then, and tries again every retry
	// period; plus a margin for two busy cores.
	handoverBound = leaseDuration + 2*retryPeriod*12/10 + 4*time.Second
)

// replica is one cmd/manager process.
type replica struct {
	name             string
	issuer, tokenURL string // tokenURL is this replica's own token endpoint
	probe, metrics   string
	log              string
	cmd              *exec.Cmd
	exited           chan struct{}
}

// startReplica runs cmd/manager with --leader-elect. Every replica has the same issuer
// (tokens are interchangeable) and its own token-server, probe and metrics addresses.
// extraConfig lines are appended to its config file.
func startReplica(t *testing.T, name, namespace, kubeconfig, issuer, tokenAddr string, extraConfig ...string) *replica {
	t.Helper()
	dir := t.TempDir()
	r := &replica{
		name: name, issuer: issuer, tokenURL: "http://" + tokenAddr + config.TokenPath,
		probe: freeAddr(t), metrics: freeAddr(t),
		log: filepath.Join(dir, "manager.log"), exited: make(chan struct{}),
	}
	configFile := filepath.Join(dir, "config.yaml")
	configText := fmt.Sprintf("issuer: %s\ntokenServer: {address: %q}\n", issuer, tokenAddr) + strings.Join(extraConfig, "\n")
	if err := os.WriteFile(configFile, []byte(configText), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(managerBin,
		"--config", configFile, "--kubeconfig", kubeconfig, "--namespace", namespace,
		"--leader-elect", "--health-probe-bind-address", r.probe, "--metrics-bind-address", r.metrics)
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	// Its own process group, and SIGKILL if this test binary dies.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = r.cmd.Wait()
		_ = logFile.Close()
		close(r.exited)
	}()
	t.Cleanup(func() {
		r.kill(t)
		if t.Failed() {
			out, _ := os.ReadFile(r.log)
			t.Logf("%s log:\n%s", name, tail(string(out), 60))
		}
	})
	return r
}

// kill sends SIGKILL (a crash: the lease is not released) and waits for the exit.
func (r *replica) kill(t *testing.T) {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("%s (pid %d) did not exit after SIGKILL", r.name, r.cmd.Process.Pid)
	}
}

func (r *replica) alive() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// metric sums the samples of one metric family whose labels contain every filter.
func (r *replica) metric(family string, filters ...string) (float64, error) {
	resp, err := httpClient.Get("http://" + r.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
lines:
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, family+"{") && !strings.HasPrefix(line, family+" ") {
			continue
		}
		for _, f := range filters {
			if !strings.Contains(line, f) {
				continue lines
			}
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, nil
}

// leads reports controller-runtime's leader_election_master_status of the replica.
func (r *replica) leads() bool {
	v, err := r.metric("leader_election_master_status", `name="`+leaseName+`"`)
	return err == nil && v == 1
}

// reconciles is the number of OAuthClient reconciliations the replica has done.
func (r *replica) reconciles() float64 {
	v, _ := r.metric("controller_runtime_reconcile_total", `controller="oauthclient"`)
	return v
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func leaseHolder(ns string) string {
	l := &coordinationv1.Lease{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: leaseName}, l); err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// TestTwoReplicas runs two manager processes against one API server: both serve
// tokens signed with the same key (a token of one verifies with the other's JWKS),
// only the leader reconciles, and after the leader crashes (SIGKILL, lease not
// released) the follower takes the lease within its duration and reconciles.
func TestTwoReplicas(t *testing.T) {
	g := NewWithT(t)
	opNS := createNamespace(t, "oauth-replicas-")
	user, err := env.AddUser(envtest.User{Name: "resilience-admin", Groups: []string{"system:masters"}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	kubeconfig, err := user.KubeConfig()
	g.Expect(err).NotTo(HaveOccurred())
	kubeconfigFile := filepath.Join(t.TempDir(), "kubeconfig")
	g.Expect(os.WriteFile(kubeconfigFile, kubeconfig, 0o600)).To(Succeed())

	addrA, addrB := freeAddr(t), freeAddr(t)
	issuer := "http://" + addrA // the same issuer for both: tokens are interchangeable
	replicas := []*replica{
		startReplica(t, "replica-a", opNS, kubeconfigFile, issuer, addrA),
		startReplica(t, "replica-b", opNS, kubeconfigFile, issuer, addrB),
	}
	for _, r := range replicas {
		g.Eventually(func() int {
			g.Expect(r.alive()).To(BeTrue(), "%s exited", r.name)
			return status("http://" + r.probe + "/readyz")
		}, 60*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK), "%s becomes ready", r.name)
	}

	// Exactly one leader, holding the Lease.
	var leader, follower *replica
	g.Eventually(func() int {
		n := 0
		for _, r := range replicas {
			if r.leads() {
				n++
			}
		}
		return n
	}, 30*time.Second, 100*time.Millisecond).Should(Equal(1), "one replica leads")
	leader, follower = replicas[0], replicas[1]
	if follower.leads() {
		leader, follower = follower, leader
	}
	g.Expect(leader.leads()).To(BeTrue())
	holder := leaseHolder(opNS)
	g.Expect(holder).NotTo(BeEmpty(), "the Lease names its holder")
	t.Logf("leader %s (Lease holder %s), follower %s", leader.name, holder, follower.name)

	api := createAPI(t, "replicas-")
	ns := createNamespace(t, "replicas-")
	createClient(t, ns, "first", api)
	body := reconciled(t, ns, "first", 30*time.Second)

	// Both serve tokens for it, signed with one key: each verifies with the other's JWKS.
	tokens := map[string]string{}
	for _, r := range replicas {
		g.Eventually(func() int {
			code, tok, _ := token(r.tokenURL, body)
			tokens[r.name] = tok
			return code
		}, 10*time.Second, 50*time.Millisecond).Should(Equal(http.StatusOK), "%s issues a token", r.name)
	}
	jwksA, jwksB := jwks(t, "http://"+addrA), jwks(t, "http://"+addrB)
	g.Expect(jwksA.Keys).To(HaveLen(1))
	g.Expect(jwksB.Keys).To(HaveLen(1))
	g.Expect(jwksB.Keys[0].KeyID).To(Equal(jwksA.Keys[0].KeyID), "both replicas publish the same key")
	kidA := verify(t, tokens["replica-a"], jwksB, issuer, api)
	kidB := verify(t, tokens["replica-b"], jwksA, issuer, api)
	g.Expect(kidA).To(Equal(kidB))
	g.Expect(kidA).To(Equal(jwksA.Keys[0].KeyID))

	// Only the leader reconciles.
	g.Expect(leader.reconciles()).To(BeNumerically(">", 0), "the leader reconciled %s/first", ns)
	g.Expect(follower.reconciles()).To(BeZero(), "the follower does not reconcile")

	// The leader crashes: the lease stays held until it expires.
	g.Expect(leader.leads()).To(BeTrue())
	leader.kill(t)
	killed := time.Now()
	g.Expect(leaseHolder(opNS)).To(Equal(holder), "a crash does not release the Lease")
	g.Eventually(func() bool {
		g.Expect(follower.alive()).To(BeTrue(), "%s exited", follower.name)
		return follower.leads()
	}, handoverBound, 50*time.Millisecond).Should(BeTrue(), "the follower takes over within the lease duration")
	handover := time.Since(killed)
	newHolder := leaseHolder(opNS)
	t.Logf("handover: %s from SIGKILL of the leader to leader_election_master_status=1 on the follower (LeaseDuration %s, RetryPeriod %s); Lease holder %s -> %s",
		handover.Round(10*time.Millisecond), leaseDuration, retryPeriod, holder, newHolder)
	g.Expect(newHolder).NotTo(Equal(holder))
	g.Expect(newHolder).NotTo(BeEmpty())

	// The new leader reconciles a new client; the old client's tokens still come.
	createClient(t, ns, "second", api)
	second := reconciled(t, ns, "second", 30*time.Second)
	g.Expect(follower.reconciles()).To(BeNumerically(">", 0), "the new leader reconciles")
	g.Eventually(func() int { code, _, _ := token(follower.tokenURL, second); return code }, 10*time.Second, 50*time.Millisecond).
		Should(Equal(http.StatusOK))
	code, _, err := token(follower.tokenURL, body)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(http.StatusOK))
}
