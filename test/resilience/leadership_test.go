//go:build integration

package resilience

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// outage is how long the API server stays away: three lease durations, so every
// leader's lease expires (and would have ended a process that exits on a lost lease).
const outage = 3 * leaseDuration

// relistBound bounds how long the caches take to catch up after the outage. The
// operator holds its informers' list and watch calls while the API server is down
// (APIServerProbe.NewInformer), so they watch again within seconds of its return;
// left to client-go's back-off (30s plus up to 100% jitter) they took 30-75s after
// this outage.
const relistBound = 45 * time.Second

// load sends token requests to one replica, one after the other, until stopped, for
// at most loadMaxDuration and loadMaxRequests: it always stops by itself.
type load struct {
	r    *replica
	body string

	mu                         sync.Mutex
	sent, failed, duringOutage int
	firstFailure               string
	notReady                   int
	done                       chan struct{}
	stop                       chan struct{}
}

const (
	loadMaxDuration = 3 * time.Minute
	loadMaxRequests = 20000
	loadPause       = 20 * time.Millisecond
)

func startLoad(r *replica, body string, outageFlag *outageWindow) *load {
	l := &load{r: r, body: body, done: make(chan struct{}), stop: make(chan struct{})}
	go func() {
		defer close(l.done)
		deadline := time.After(loadMaxDuration)
		for n := 0; n < loadMaxRequests; n++ {
			select {
			case <-l.stop:
				return
			case <-deadline:
				return
			case <-time.After(loadPause):
			}
			code, tok, err := token(r.tokenURL, body)
			ready := status("http://" + r.probe + "/readyz")
			l.mu.Lock()
			l.sent++
			if outageFlag.active() {
				l.duringOutage++
			}
			if err != nil || code != http.StatusOK || tok == "" {
				l.failed++
				if l.firstFailure == "" {
					l.firstFailure = fmt.Sprintf("status %d, error %v", code, err)
				}
			}
			if ready != http.StatusOK {
				l.notReady++
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// result waits for the load to stop (after stopLoads) and returns its counts.
func (l *load) result() (sent, failed, duringOutage, notReady int, firstFailure string) {
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent, l.failed, l.duringOutage, l.notReady, l.firstFailure
}

type outageWindow struct {
	mu   sync.Mutex
	down bool
}

func (o *outageWindow) set(down bool) {
	o.mu.Lock()
	o.down = down
	o.mu.Unlock()
}

func (o *outageWindow) active() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.down
}

// install is one operator installation: its replicas, all with --leader-elect, in one
// namespace with one Lease.
type install struct {
	name     string
	ns       string
	replicas []*replica
	pids     []int
}

func (in *install) leaders() []*replica {
	var out []*replica
	for _, r := range in.replicas {
		if r.leads() {
			out = append(out, r)
		}
	}
	return out
}

// TestLeadershipThroughAPIServerOutage runs two installations side by side on one API
// server, both with --leader-elect: one with two replicas, one with a single replica
// (each its own namespace and Lease; the same issuer, so the client Secrets both write
// agree). Then the API server goes away for three lease durations while every
// replica gets a continuous stream of token requests. The leaders lose their leases
// and stop reconciling, but no process exits, no token request fails and every
// replica stays ready. Once the API server is back, each installation has a leader
// again within a lease duration, a client created then is reconciled and served, and
// the processes are the ones started at the beginning. Last, SIGTERM on the
// two-replica installation's leader releases the Lease: the other replica leads at
// once, not after the lease duration.
func TestLeadershipThroughAPIServerOutage(t *testing.T) {
	g := NewWithT(t)
	user, err := env.AddUser(envtest.User{Name: "leadership-admin", Groups: []string{"system:masters"}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	kubeconfig, err := user.KubeConfig()
	g.Expect(err).NotTo(HaveOccurred())
	kubeconfigFile := filepath.Join(t.TempDir(), "kubeconfig")
	g.Expect(os.WriteFile(kubeconfigFile, kubeconfig, 0o600)).To(Succeed())

	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	issuer := "http://" + addrs[0]
	pair := &install{name: "two replicas", ns: createNamespace(t, "oauth-ha-pair-")}
	single := &install{name: "one replica", ns: createNamespace(t, "oauth-ha-single-")}
	// Every request of the test comes from 127.0.0.1, and the token servers answer 401
	// until they have indexed a new client: a failed-authentication limit the test never
	// reaches (it is tested in internal/tokenserver), so that those early 401s do not
	// throttle the requests that follow.
	limit := "rateLimit: {failedAuthPerMinute: 6000, failedAuthBurst: 10000}"
	pair.replicas = []*replica{
		startReplica(t, "pair-a", pair.ns, kubeconfigFile, issuer, addrs[0], limit),
		startReplica(t, "pair-b", pair.ns, kubeconfigFile, issuer, addrs[1], limit),
	}
	single.replicas = []*replica{startReplica(t, "single", single.ns, kubeconfigFile, issuer, addrs[2], limit)}
	installs := []*install{pair, single}
	all := append(append([]*replica{}, pair.replicas...), single.replicas...)
	for _, r := range all {
		g.Eventually(func() int {
			g.Expect(r.alive()).To(BeTrue(), "%s exited", r.name)
			return status("http://" + r.probe + "/readyz")
		}, 60*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK), "%s becomes ready", r.name)
	}
	for _, in := range installs {
		g.Eventually(func() int { return len(in.leaders()) }, 30*time.Second, 100*time.Millisecond).
			Should(Equal(1), "%s: one replica leads", in.name)
		for _, r := range in.replicas {
			in.pids = append(in.pids, r.cmd.Process.Pid)
		}
		t.Logf("%s: leader %s (Lease holder %s), pids %v", in.name, in.leaders()[0].name, leaseHolder(in.ns), in.pids)
	}

	api := createAPI(t, "ha-")
	ns := createNamespace(t, "ha-")
	createClient(t, ns, "before", api)
	body := reconciled(t, ns, "before", 30*time.Second)
	for _, r := range all {
		g.Eventually(func() int { c, _, _ := token(r.tokenURL, body); return c }, 10*time.Second, 50*time.Millisecond).
			Should(Equal(http.StatusOK), "%s issues a token before the outage", r.name)
	}

	// Token requests to every replica from now until the end of the outage.
	window := &outageWindow{}
	loads := make([]*load, len(all))
	for i, r := range all {
		loads[i] = startLoad(r, body, window)
	}
	stopLoads := sync.OnceFunc(func() {
		for _, l := range loads {
			close(l.stop)
		}
	})
	t.Cleanup(stopLoads)
	time.Sleep(time.Second)

	apiServer := env.ControlPlane.APIServer
	stopped := time.Now()
	window.set(true)
	stopAPIServer(t)
	running := false
	t.Cleanup(func() {
		if !running {
			_ = apiServer.Start()
		}
	})

	// Within a renew deadline (plus a retry period to notice) every leader has stopped
	// leading; no process exits.
	g.Eventually(func() int {
		n := 0
		for _, r := range all {
			g.Expect(r.alive()).To(BeTrue(), "%s exited during the outage", r.name)
			if r.leads() {
				n++
			}
		}
		return n
	}, renewDeadline+2*retryPeriod+5*time.Second, 100*time.Millisecond).Should(BeZero(), "the leaders stop leading without the API server")
	t.Logf("every leader stopped leading %s into the outage", time.Since(stopped).Round(10*time.Millisecond))

	// The rest of the outage: every process stays up.
	for time.Since(stopped) < outage {
		for _, r := range all {
			g.Expect(r.alive()).To(BeTrue(), "%s exited during the outage", r.name)
		}
		time.Sleep(500 * time.Millisecond)
	}

	g.Expect(apiServer.Start()).To(Succeed())
	running = true
	window.set(false)
	back := time.Now()
	down := back.Sub(stopped)
	t.Logf("API server down for %s (lease duration %s)", down.Round(10*time.Millisecond), leaseDuration)

	// One leader per installation again, within a lease duration, without a restart.
	for _, in := range installs {
		g.Eventually(func() int {
			for _, r := range in.replicas {
				g.Expect(r.alive()).To(BeTrue(), "%s exited", r.name)
			}
			return len(in.leaders())
		}, leaseDuration, 100*time.Millisecond).Should(Equal(1), "%s: a leader within a lease duration of the API server's return", in.name)
		t.Logf("%s: %s leads again %s after the API server's return (Lease holder %s)",
			in.name, in.leaders()[0].name, time.Since(back).Round(10*time.Millisecond), leaseHolder(in.ns))
	}

	// A client created now is reconciled by each installation's leader, and every
	// replica serves it.
	before := map[*install]float64{}
	for _, in := range installs {
		before[in] = in.leaders()[0].reconciles()
	}
	createClient(t, ns, "after", api)
	after := reconciled(t, ns, "after", relistBound)
	t.Logf("client created after the outage reconciled %s after the API server's return", time.Since(back).Round(10*time.Millisecond))
	for _, in := range installs {
		leader := in.leaders()[0]
		g.Eventually(leader.reconciles, relistBound, 100*time.Millisecond).Should(BeNumerically(">", before[in]),
			"%s: the leader %s reconciles after the outage", in.name, leader.name)
	}
	for _, r := range all {
		g.Eventually(func() int { c, _, _ := token(r.tokenURL, after); return c }, relistBound, 100*time.Millisecond).
			Should(Equal(http.StatusOK), "%s serves the client created after the outage", r.name)
	}

	stopLoads()
	for i, l := range loads {
		sent, failed, during, notReady, first := l.result()
		t.Logf("%s: %d token requests, %d during the outage, %d failed, %d not-ready probes", all[i].name, sent, during, failed, notReady)
		g.Expect(during).To(BeNumerically(">", 0), "%s got requests during the outage", all[i].name)
		g.Expect(failed).To(BeZero(), "%s: no token request fails (first failure: %s)", all[i].name, first)
		g.Expect(notReady).To(BeZero(), "%s stays ready (tokenServer.apiServerGrace is 5m)", all[i].name)
	}
	for _, in := range installs {
		for i, r := range in.replicas {
			g.Expect(r.alive()).To(BeTrue(), "%s is still running", r.name)
			g.Expect(r.cmd.Process.Pid).To(Equal(in.pids[i]))
			g.Expect(syscall.Kill(r.cmd.Process.Pid, 0)).To(Succeed(), "pid %d of %s is alive", in.pids[i], r.name)
		}
	}

	// SIGTERM on the pair's leader: it exits cleanly and releases the Lease, so the other
	// replica leads well before a lease duration.
	leader := pair.leaders()[0]
	var follower *replica
	for _, r := range pair.replicas {
		if r != leader {
			follower = r
		}
	}
	holder := leaseHolder(pair.ns)
	g.Expect(leader.cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
	term := time.Now()
	g.Eventually(leader.exited, 30*time.Second).Should(BeClosed(), "%s exits on SIGTERM", leader.name)
	g.Expect(leader.cmd.ProcessState.ExitCode()).To(BeZero(), "%s exits 0 on SIGTERM", leader.name)
	g.Eventually(follower.leads, leaseDuration/2, 50*time.Millisecond).Should(BeTrue(),
		"%s leads soon after %s released the Lease", follower.name, leader.name)
	t.Logf("after SIGTERM on %s: %s leads %s later (Lease holder %s -> %s)",
		leader.name, follower.name, time.Since(term).Round(10*time.Millisecond), holder, leaseHolder(pair.ns))
}
