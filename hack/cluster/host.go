package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stateDir holds what must outlive a crashed run: the lock that allows one local
// cluster per machine, the record of the host's state before the node changed it, and
// where the running cluster is (for `load` and the tests). /run is emptied at boot,
// as are the changes it records.
const stateDir = "/run/oauth-client-operator-cluster"

var (
	hostFile    = filepath.Join(stateDir, "host.json")
	clusterFile = filepath.Join(stateDir, "cluster.json")
	lockFile    = filepath.Join(stateDir, "lock")
)

// Names of what the node adds to the host.
const (
	nodeLink  = "oauth-node" // empty bridge holding the node's address
	podLink   = "oauth-pods" // the pods' bridge
	fwChain   = "OAUTH-CLUSTER"
	nodeName  = "local-node"
	dnsDomain = "cluster.local"
)

// sysctls the node changes: kubelet (overcommit, panic, keys), the bridge CNI plugin
// (ip_forward), kube-proxy (route_localnet, bridge netfilter, conntrack sizes).
var recordedSysctls = []string{
	"vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
	"kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "net.ipv4.ip_forward",
	"net.ipv4.conf.all.route_localnet", "net.bridge.bridge-nf-call-iptables",
	"net.bridge.bridge-nf-call-ip6tables", "net.netfilter.nf_conntrack_max",
	"net.netfilter.nf_conntrack_tcp_timeout_established", "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
}

// host-wide folders the node's daemons create whatever their configuration says
// (CNI's cache, network namespaces, the kubelet's log links, containerd's shim
// sockets); removed on stop unless they existed before.
var hostDirs = []string{
	"/var/run/netns", "/var/lib/cni", "/var/log/containers", "/var/log/pods",
	"/run/containerd", "/var/lib/kubelet", "/etc/kubernetes",
}

// cgroupRoot holds the cgroup v1 hierarchies; the kubelet creates "kubepods" in each.
const cgroupRoot = "/sys/fs/cgroup"

// hostState is the host before the node started, written before the first change.
type hostState struct {
	PID         int               `json:"pid"`
	RunDir      string            `json:"runDir"`
	Sysctls     map[string]string `json:"sysctls"`
	NetnsBefore []string          `json:"netnsBefore"`
	NewDirs     []string          `json:"newDirs"`
	NewCgroups  []string          `json:"newCgroups"`
}

// recordHost reads the host's state; it is written to hostFile before anything changes.
func recordHost(runDir string) (*hostState, error) {
	st := &hostState{PID: os.Getpid(), RunDir: runDir, Sysctls: map[string]string{}}
	for _, k := range recordedSysctls {
		if v, err := readSysctl(k); err == nil {
			st.Sysctls[k] = v
		}
	}
	st.NetnsBefore = listDir("/var/run/netns")
	for _, d := range hostDirs {
		if _, err := os.Lstat(d); errors.Is(err, os.ErrNotExist) {
			st.NewDirs = append(st.NewDirs, d)
		}
	}
	for _, h := range listDir(cgroupRoot) {
		p := filepath.Join(cgroupRoot, h, "kubepods")
		if _, err := os.Stat(filepath.Join(cgroupRoot, h, "cgroup.procs")); err != nil {
			continue // not a hierarchy
		}
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			st.NewCgroups = append(st.NewCgroups, p)
		}
	}
	return st, writeJSON(hostFile, st)
}

func sysctlPath(k string) string { return "/proc/sys/" + strings.ReplaceAll(k, ".", "/") }

func readSysctl(k string) (string, error) {
	b, err := os.ReadFile(sysctlPath(k))
	return strings.TrimSpace(string(b)), err
}

func writeSysctl(k, v string) error { return os.WriteFile(sysctlPath(k), []byte(v), 0o644) }

func listDir(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// restoreHost puts the host back as st recorded it, after every daemon has stopped:
// leftover container processes, mounts under the run folder, new network namespaces,
// veths, the two bridges (and with them their routes), the iptables chains of
// kube-proxy, the kubelet, CNI and this program, the sysctls, the host folders and
// cgroups the node created. Each step goes on after an error; all errors are returned.
func restoreHost(st *hostState) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	killContainers()
	add(unmountUnder(st.RunDir))
	before := map[string]bool{}
	for _, n := range st.NetnsBefore {
		before[n] = true
	}
	for _, n := range listDir("/var/run/netns") {
		if !before[n] && strings.HasPrefix(n, "cni-") {
			p := filepath.Join("/var/run/netns", n)
			_ = syscall.Unmount(p, syscall.MNT_DETACH)
			add(os.Remove(p))
		}
	}
	if out, err := sh("ip", "-o", "link", "show", "master", podLink); err == nil {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 1 {
				name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
				_, _ = sh("ip", "link", "delete", name)
			}
		}
	}
	for _, l := range []string{podLink, nodeLink} {
		if _, err := sh("ip", "link", "show", l); err == nil {
			_, err := sh("ip", "link", "delete", l)
			add(err)
		}
	}
	add(cleanIptables())
	keys := make([]string, 0, len(st.Sysctls))
	for k := range st.Sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if cur, err := readSysctl(k); err == nil && cur != st.Sysctls[k] {
			add(writeSysctl(k, st.Sysctls[k]))
		}
	}
	for _, d := range st.NewDirs {
		_ = unmountUnder(d)
		add(os.RemoveAll(d))
	}
	for _, cg := range st.NewCgroups {
		add(removeCgroup(cg))
	}
	for _, sock := range []string{"containerd.sock", "containerd.sock.ttrpc"} {
		_ = os.Remove(filepath.Join(stateDir, sock))
	}
	return errors.Join(errs...)
}

// killContainers kills what containerd left running: its shims and every process in a
// cgroup of the kubelet.
func killContainers() {
	for attempt := 0; attempt < 20; attempt++ {
		found := false
		for _, pidName := range listDir("/proc") {
			pid, err := strconv.Atoi(pidName)
			if err != nil || pid == os.Getpid() {
				continue
			}
			cg, _ := os.ReadFile(filepath.Join("/proc", pidName, "cgroup"))
			cmdline, _ := os.ReadFile(filepath.Join("/proc", pidName, "cmdline"))
			if strings.Contains(string(cg), "/kubepods") ||
				(strings.Contains(string(cmdline), "containerd-shim") && strings.Contains(string(cmdline), stateDir)) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				found = true
			}
		}
		if !found {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unmountUnder unmounts every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	if dir == "" {
		return nil
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mounts = append(mounts, mp)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	var errs []error
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// removeCgroup removes a cgroup folder and its children, deepest first (cgroupfs
// folders are removed with rmdir, never their files).
func removeCgroup(dir string) error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var last error
	for i := len(dirs) - 1; i >= 0; i-- {
		for try := 0; try < 20; try++ {
			if last = syscall.Rmdir(dirs[i]); last == nil || errors.Is(last, syscall.ENOENT) {
				last = nil
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if last != nil {
		return fmt.Errorf("remove cgroup %s: %w", dir, last)
	}
	return nil
}

// ours says whether an iptables chain belongs to the node: kube-proxy's and the
// kubelet's (KUBE-), the CNI plugins' (CNI-) and this program's.
func ours(chain string) bool {
	return strings.HasPrefix(chain, "KUBE-") || strings.HasPrefix(chain, "CNI-") || chain == fwChain
}

// cleanIptables removes the node's chains and every rule that jumps to them from each
// IPv4 and IPv6 table, and leaves every other rule as it was (each table is rewritten
// at once by iptables-restore).
func cleanIptables() error {
	var errs []error
	for _, tool := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle", "raw"} {
			dump, err := sh(tool+"-save", "-t", table)
			if err != nil || !strings.Contains(dump, "*"+table) {
				continue
			}
			var kept []string
			changed := false
			for _, line := range strings.Split(dump, "\n") {
				f := strings.Fields(line)
				drop := false
				switch {
				case strings.HasPrefix(line, ":") && len(f) > 0:
					drop = ours(strings.TrimPrefix(f[0], ":"))
				case strings.HasPrefix(line, "-A ") && len(f) > 1:
					drop = ours(f[1])
					for i := 0; i+1 < len(f); i++ {
						if (f[i] == "-j" || f[i] == "-g") && ours(f[i+1]) {
							drop = true
						}
					}
				}
				if drop {
					changed = true
					continue
				}
				kept = append(kept, line)
			}
			if changed {
				if err := shInput(strings.Join(kept, "\n")+"\n", tool+"-restore", "-w", "5"); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// down undoes a run that could not clean up (killed with SIGKILL, the machine's
// session ended): it stops what is left and restores the recorded host state.
func down() error {
	unlock, err := lock()
	if err != nil {
		return err
	}
	defer unlock()
	return cleanupStale()
}

// cleanupStale restores the host after a dead run, if there was one. The lock is held.
func cleanupStale() error {
	b, err := os.ReadFile(hostFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st hostState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("read %s: %w", hostFile, err)
	}
	logf("restoring the host after an earlier run (pid %d) that did not stop cleanly", st.PID)
	killDaemons(st.RunDir)
	if err := restoreHost(&st); err != nil {
		return err
	}
	_ = os.Remove(clusterFile)
	return os.Remove(hostFile)
}

// killDaemons kills the node's daemons of an earlier run: every process whose command
// line names that run's folder.
func killDaemons(runDir string) {
	if runDir == "" {
		return
	}
	for _, pidName := range listDir("/proc") {
		pid, err := strconv.Atoi(pidName)
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", pidName, "cmdline"))
		if strings.Contains(string(cmdline), runDir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	time.Sleep(500 * time.Millisecond)
}

// lock takes the machine-wide lock of the local cluster: one at a time per machine
// (the bridges, addresses and host folders are the machine's).
func lock() (func(), error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		owner := "another process"
		if b, err := os.ReadFile(clusterFile); err == nil {
			var c clusterInfo
			if json.Unmarshal(b, &c) == nil && c.PID > 0 {
				owner = fmt.Sprintf("pid %d", c.PID)
			}
		}
		return nil, fmt.Errorf("a local cluster already runs on this machine (%s): stop it first (Ctrl-C where it runs)", owner)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
}
