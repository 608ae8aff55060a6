package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// netPlan is the node's addresses, all inside one /16 that nothing else on the machine
// routes (checked at start): the node's address on its own bridge, the pods' /24 on
// theirs, the Services' /24. The whole /16 is routed to the node's bridge, so no
// address of the cluster ever leaves the machine.
type netPlan struct {
	base         *net.IPNet
	nodeIP       net.IP
	podCIDR      *net.IPNet
	podGW        net.IP
	svcCIDR      *net.IPNet
	apiServiceIP net.IP
	dnsIP        net.IP
}

func planNetwork(cidr string) (netPlan, error) {
	_, base, err := net.ParseCIDR(cidr)
	if err != nil || base.IP.To4() == nil {
		return netPlan{}, fmt.Errorf("CLUSTER_CIDR %q: want an IPv4 /16", cidr)
	}
	if ones, _ := base.Mask.Size(); ones != 16 {
		return netPlan{}, fmt.Errorf("CLUSTER_CIDR %q: want an IPv4 /16", cidr)
	}
	ip := func(c, d byte) net.IP { b := base.IP.To4(); return net.IPv4(b[0], b[1], c, d).To4() }
	mask24 := net.CIDRMask(24, 32)
	return netPlan{
		base:         base,
		nodeIP:       ip(0, 1),
		podCIDR:      &net.IPNet{IP: ip(1, 0), Mask: mask24},
		podGW:        ip(1, 1),
		svcCIDR:      &net.IPNet{IP: ip(2, 0), Mask: mask24},
		apiServiceIP: ip(2, 1),
		dnsIP:        ip(2, 10),
	}, nil
}

// checkFree fails when the machine already routes or holds an address of the plan's /16.
func (n netPlan) checkFree() error {
	out, err := sh("ip", "-4", "-o", "route", "show", "table", "all")
	if err != nil {
		return err
	}
	addrs, err := sh("ip", "-4", "-o", "addr", "show")
	if err != nil {
		return err
	}
	for _, line := range append(strings.Split(out, "\n"), strings.Split(addrs, "\n")...) {
		for _, f := range strings.Fields(line) {
			if !strings.Contains(f, ".") {
				continue
			}
			var other *net.IPNet
			if _, c, err := net.ParseCIDR(f); err == nil {
				other = c
			} else if ip := net.ParseIP(f); ip != nil {
				other = &net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)}
			}
			if other != nil && (other.Contains(n.base.IP) || n.base.Contains(other.IP)) {
				return fmt.Errorf("the cluster's range %s overlaps %s on this machine (%q): choose another with CLUSTER_CIDR=<a free /16>", n.base, other, strings.TrimSpace(line))
			}
		}
	}
	return nil
}

// node is the running local node.
type node struct {
	p      paths
	net    netPlan
	bins   string
	procs  []*proc // in start order
	exited chan string
	client kubernetes.Interface
	sock   string // containerd's socket
}

// requiredPackages are Debian's packages the node needs, with a file each provides.
var requiredPackages = map[string]string{
	"containerd":                  "/usr/bin/containerd",
	"runc":                        "/usr/sbin/runc",
	"containernetworking-plugins": "/usr/lib/cni/bridge",
	"iptables":                    "/usr/sbin/iptables",
	"conntrack":                   "/usr/sbin/conntrack",
	"iproute2":                    "/usr/sbin/ip",
}

// ensurePackages installs the missing packages with apt-get.
func ensurePackages() error {
	var missing []string
	for pkg, file := range requiredPackages {
		if _, err := os.Stat(file); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	logf("installing Debian packages %s (apt-get)", strings.Join(missing, " "))
	if _, err := sh("apt-get", "update", "-qq"); err != nil {
		return err
	}
	args := append([]string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", "--no-install-recommends"}, missing...)
	_, err := sh(args...)
	return err
}

// nodeBinaries runs hack/cluster-binaries.sh (cached in bin/cluster/k8s).
func nodeBinaries(p paths) (string, error) {
	cmd := exec.Command(filepath.Join(p.root, "hack", "cluster-binaries.sh"))
	cmd.Dir = p.root
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "LOCALBIN="+filepath.Dir(p.dir))
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/cluster-binaries.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (n *node) bin(name string) string { return filepath.Join(n.bins, name) }

func (n *node) start(name string, args ...string) (*proc, error) {
	pr, err := startProc(name, n.p.logs, n.exited, args...)
	if err != nil {
		return nil, err
	}
	n.procs = append(n.procs, pr)
	return pr, nil
}

// startNode brings the node up to Ready with kube-proxy running. The host's state is
// recorded by the caller before this runs.
func startNode(ctx context.Context, p paths, plan netPlan, bins string) (*node, error) {
	n := &node{p: p, net: plan, bins: bins, exited: make(chan string, 16), sock: filepath.Join(stateDir, "containerd.sock")}
	if err := n.setupNetwork(); err != nil {
		return n, fmt.Errorf("network: %w", err)
	}
	if _, err := writePKI(p, plan); err != nil {
		return n, fmt.Errorf("certificates: %w", err)
	}
	etcdPort, peerPort, err := freePorts()
	if err != nil {
		return n, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	logf("starting etcd and kube-apiserver (https://%s:6443)", plan.nodeIP)
	if _, err := n.start("etcd", n.bin("etcd"), "--name=node", "--data-dir="+filepath.Join(p.run, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=node="+peerURL, "--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return n, err
	}
	if err := n.waitHTTP(ctx, "etcd", etcdURL+"/health", nil, time.Minute); err != nil {
		return n, err
	}
	pki := func(f string) string { return filepath.Join(p.pki, f) }
	saIssuer := "https://kubernetes.default.svc." + dnsDomain
	if _, err := n.start("kube-apiserver", n.bin("kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address="+plan.nodeIP.String(), "--advertise-address="+plan.nodeIP.String(), "--secure-port=6443",
		"--tls-cert-file="+pki("apiserver.crt"), "--tls-private-key-file="+pki("apiserver.key"),
		"--client-ca-file="+pki("ca.crt"),
		"--service-cluster-ip-range="+plan.svcCIDR.String(),
		"--service-account-issuer="+saIssuer, "--api-audiences="+saIssuer,
		"--service-account-key-file="+pki("sa.pub"), "--service-account-signing-key-file="+pki("sa.key"),
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--kubelet-client-certificate="+pki("apiserver-kubelet-client.crt"), "--kubelet-client-key="+pki("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority="+pki("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--profiling=false"); err != nil {
		return n, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", p.kubecfg)
	if err != nil {
		return n, err
	}
	if n.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return n, err
	}
	if err := n.waitFor(ctx, "kube-apiserver ready", 2*time.Minute, func(ctx context.Context) (bool, error) {
		_, err := n.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil, nil
	}); err != nil {
		return n, err
	}
	logf("starting kube-controller-manager, kube-scheduler and containerd")
	if _, err := n.start("kube-controller-manager", n.bin("kube-controller-manager"),
		"--kubeconfig="+pki("controller-manager.kubeconfig"),
		"--authentication-kubeconfig="+pki("controller-manager.kubeconfig"), "--authorization-kubeconfig="+pki("controller-manager.kubeconfig"),
		"--bind-address="+plan.nodeIP.String(), "--leader-elect=false",
		"--use-service-account-credentials", "--service-account-private-key-file="+pki("sa.key"),
		"--root-ca-file="+pki("ca.crt"),
		"--cluster-signing-cert-file="+pki("ca.crt"), "--cluster-signing-key-file="+pki("ca.key"),
		"--service-cluster-ip-range="+plan.svcCIDR.String()); err != nil {
		return n, err
	}
	if _, err := n.start("kube-scheduler", n.bin("kube-scheduler"),
		"--kubeconfig="+pki("scheduler.kubeconfig"),
		"--authentication-kubeconfig="+pki("scheduler.kubeconfig"), "--authorization-kubeconfig="+pki("scheduler.kubeconfig"),
		"--bind-address="+plan.nodeIP.String(), "--leader-elect=false"); err != nil {
		return n, err
	}
	if err := n.startContainerd(ctx); err != nil {
		return n, err
	}
	return n, nil
}

// startKubelet starts the kubelet and kube-proxy once the images are imported, and
// waits for the node to be Ready.
func (n *node) startKubelet(ctx context.Context) error {
	kubeletDir := filepath.Join(n.p.run, "kubelet")
	if err := os.MkdirAll(kubeletDir, 0o755); err != nil {
		return err
	}
	resolv := filepath.Join(n.p.run, "resolv.conf")
	// No upstream resolver: names outside the cluster do not resolve in pods.
	if err := os.WriteFile(resolv, []byte("# the local cluster resolves only cluster names (CoreDNS, no forwarding)\n"), 0o644); err != nil {
		return err
	}
	pki := func(f string) string { return filepath.Join(n.p.pki, f) }
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: 10250
readOnlyPort: 0
healthzBindAddress: %[1]s
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[2]s}
authorization: {mode: Webhook}
tlsCertFile: %[3]s
tlsPrivateKeyFile: %[4]s
containerRuntimeEndpoint: unix://%[5]s
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDomain: %[6]s
clusterDNS: [%[7]s]
resolvConf: %[8]s
podLogsDir: %[9]s
syncFrequency: 20s
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard:
  memory.available: 100Mi
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
  imagefs.inodesFree: "1%%"
`, n.net.nodeIP, pki("ca.crt"), pki("kubelet.crt"), pki("kubelet.key"), n.sock, dnsDomain, n.net.dnsIP, resolv, filepath.Join(n.p.run, "pod-logs"))
	cfgPath := filepath.Join(kubeletDir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	logf("starting the kubelet and kube-proxy")
	if _, err := n.start("kubelet", n.bin("kubelet"), "--config="+cfgPath,
		"--kubeconfig="+pki("kubelet-client.kubeconfig"), "--root-dir="+filepath.Join(kubeletDir, "root"),
		"--hostname-override="+nodeName, "--node-ip="+n.net.nodeIP.String()); err != nil {
		return err
	}
	proxyCfg := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %s}
hostnameOverride: %s
mode: iptables
clusterCIDR: %s
bindAddress: %s
healthzBindAddress: %s:10256
metricsBindAddress: %s:10249
nodePortAddresses: [%s/32]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, pki("kube-proxy.kubeconfig"), nodeName, n.net.podCIDR, n.net.nodeIP, n.net.nodeIP, n.net.nodeIP, n.net.nodeIP)
	proxyPath := filepath.Join(n.p.run, "kube-proxy.yaml")
	if err := os.WriteFile(proxyPath, []byte(proxyCfg), 0o644); err != nil {
		return err
	}
	if _, err := n.start("kube-proxy", n.bin("kube-proxy"), "--config="+proxyPath); err != nil {
		return err
	}
	return n.waitFor(ctx, "node "+nodeName+" Ready", 3*time.Minute, func(ctx context.Context) (bool, error) {
		node, err := n.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
}

// setupNetwork creates the node's bridge (its address), the pods' bridge (the pods'
// gateway), routes the whole /16 to the node's bridge, and drops in FORWARD anything
// that would leave the pods' bridge for another interface, or reach it from one.
func (n *node) setupNetwork() error {
	steps := [][]string{
		{"ip", "link", "add", nodeLink, "type", "bridge"},
		{"ip", "addr", "add", n.net.nodeIP.String() + "/32", "dev", nodeLink},
		{"ip", "link", "set", nodeLink, "up"},
		{"ip", "route", "add", n.net.base.String(), "dev", nodeLink},
		{"ip", "link", "add", podLink, "type", "bridge"},
		{"ip", "addr", "add", n.net.podGW.String() + "/24", "dev", podLink},
		{"ip", "link", "set", podLink, "up"},
		{"iptables", "-w", "5", "-N", fwChain},
		{"iptables", "-w", "5", "-A", fwChain, "-i", podLink, "!", "-o", podLink, "-j", "DROP"},
		{"iptables", "-w", "5", "-A", fwChain, "!", "-i", podLink, "-o", podLink, "-j", "DROP"},
		{"iptables", "-w", "5", "-I", "FORWARD", "1", "-j", fwChain},
	}
	for _, s := range steps {
		if _, err := sh(s...); err != nil {
			return err
		}
	}
	cni := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "oauth-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "hairpinMode": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    }
  ]
}
`, podLink, n.net.podCIDR.String(), n.net.podGW.String(), filepath.Join(n.p.run, "cni", "ipam"))
	dir := filepath.Join(n.p.run, "cni", "net.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "10-oauth-pods.conflist"), []byte(cni), 0o644)
}

// startContainerd runs containerd with its own root, state and socket, the CRI plugin
// on the cgroupfs driver, and the local pause image as the sandbox image.
func (n *node) startContainerd(ctx context.Context) error {
	dir := filepath.Join(n.p.run, "containerd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), n.sock, n.sock+".ttrpc", pauseImage, filepath.Join(n.p.run, "cni", "net.d"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	if _, err := n.start("containerd", "containerd", "--config", cfgPath); err != nil {
		return err
	}
	return n.waitFor(ctx, "containerd", time.Minute, func(context.Context) (bool, error) {
		_, err := sh("ctr", "-a", n.sock, "version")
		return err == nil, nil
	})
}

// importImages imports image tarballs into containerd's k8s.io namespace.
func importImages(sock string, tars []string) error {
	for _, t := range tars {
		if _, err := sh("ctr", "-a", sock, "-n", "k8s.io", "images", "import", t); err != nil {
			return err
		}
	}
	return nil
}

// stop removes every pod (so the kubelet stops their sandboxes and CNI removes their
// network), then stops the daemons in reverse order.
func (n *node) stop() {
	if n.client != nil && n.running("kubelet") && n.running("kube-apiserver") {
		n.stopProc("kube-controller-manager")
		n.stopProc("kube-scheduler")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if err := n.deletePods(ctx); err != nil {
			logf("removing the pods: %v (their leftovers are swept)", err)
		}
		cancel()
	}
	for i := len(n.procs) - 1; i >= 0; i-- {
		n.procs[i].stop(15 * time.Second)
	}
}

func (n *node) deletePods(ctx context.Context) error {
	nss, err := n.client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, ns := range nss.Items {
		_ = n.client.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](1)}, metav1.ListOptions{})
	}
	return n.waitFor(ctx, "every pod removed", 55*time.Second, func(ctx context.Context) (bool, error) {
		pods, err := n.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 0, nil
	})
}

func (n *node) proc(name string) *proc {
	for _, p := range n.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

func (n *node) running(name string) bool { p := n.proc(name); return p != nil && p.running() }

func (n *node) stopProc(name string) {
	if p := n.proc(name); p != nil {
		p.stop(15 * time.Second)
	}
}

// waitFor polls cond until it holds, failing when a daemon of the node exits (the
// error then carries the end of its log).
func (n *node) waitFor(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	return poll(ctx, what, timeout, cond, func() error {
		select {
		case name := <-n.exited:
			return fmt.Errorf("%s stopped\n%s", name, n.proc(name).tail(30))
		default:
			return nil
		}
	})
}

// poll calls cond every 500 ms until it holds, the timeout passes, ctx ends or broken
// returns an error.
func poll(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error), broken func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		if broken != nil {
			if err := broken(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		select {
		case <-ctx.Done():
			return errStopped
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s", what, timeout)
		}
	}
}

func (n *node) waitHTTP(ctx context.Context, what, url string, tlsCfg *tls.Config, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	return n.waitFor(ctx, what, timeout, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// freePorts returns two free loopback ports (etcd's client and peer ports).
func freePorts() (int, int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for i := 0; i < 2; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports[0], ports[1], nil
}

// clusterInfo is what a running `make cluster` publishes for `cluster load` and the tests.
type clusterInfo struct {
	PID        int    `json:"pid"`
	Kubeconfig string `json:"kubeconfig"`
	Containerd string `json:"containerd,omitempty"`
	Ready      string `json:"ready"`
}

// loadImages imports tarballs into the running local node's containerd.
func loadImages(tars []string) error {
	b, err := os.ReadFile(clusterFile)
	if err != nil {
		return errors.New("no local cluster runs on this machine: start one with `make cluster`")
	}
	var c clusterInfo
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	for _, t := range tars {
		if _, err := os.Stat(t); err != nil {
			return err
		}
	}
	if err := importImages(c.Containerd, tars); err != nil {
		return err
	}
	for _, t := range tars {
		logf("imported %s into the local cluster's containerd (namespace k8s.io); use imagePullPolicy IfNotPresent or Never", t)
	}
	return nil
}

// loadExternal runs CLUSTER_IMAGE_LOAD with each tarball.
func loadExternal(ctx context.Context, tars []string) error {
	load := strings.Fields(os.Getenv("CLUSTER_IMAGE_LOAD"))
	if len(load) == 0 {
		return errors.New("CLUSTER_KUBECONFIG is set but CLUSTER_IMAGE_LOAD is not: set it to the command that loads an image tarball into that cluster, e.g. CLUSTER_IMAGE_LOAD='kind load image-archive' or 'minikube image load'")
	}
	for _, t := range tars {
		cmd := exec.CommandContext(ctx, load[0], append(load[1:], t)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %w", strings.Join(load, " "), t, err)
		}
	}
	return nil
}
