package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/oauth-client-operator/oauth-client-operator/test/machine"
)

func printReport(w io.Writer, o options, r *report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	host, _ := os.Hostname()
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format+"\n", args...) }
	verdict := func(ok bool) string {
		if ok {
			return "MET"
		}
		return "MISSED"
	}
	p("")
	p("=== oauth-client-operator scale benchmark ===")
	p("machine: %s, %d CPUs (%s), %s; load average at the end: %s", host, machine.CPUs(), machine.CPUModel(), time.Now().UTC().Format(time.RFC3339), machine.LoadAverage())
	p("clients: %d in %d namespaces, created by %d goroutines (client QPS 500, burst 1000); manager environment: %q; timeout %s",
		o.clients, o.namespaces, o.createWorkers, o.managerEnv, o.timeout)
	p("environment start (build, etcd, kube-apiserver, manager): %s", r.envStart.Round(time.Millisecond))
	p("")
	p("created:          %d (errors: %d) in %s", r.created, r.createErrs, durOr(r.createTime, "not finished"))
	if r.readyTime > 0 {
		p("all Ready after:  %s from the first create (%.0f clients/s)  target < %s: %s",
			r.readyTime.Round(time.Millisecond), float64(o.clients)/r.readyTime.Seconds(), targetReady, verdict(r.readyTime < targetReady))
	} else {
		p("all Ready:        NOT reached: %d of %d Ready  target < %s: MISSED", r.ready, o.clients, targetReady)
	}
	p("manager memory:   peak VmHWM %s during the run (max sampled VmRSS %s)", mib(r.hwm), mib(r.maxRSS))
	if r.settled != nil {
		perClient := r.settled.rss / float64(o.clients)
		p("settled:          %s (the Go figures right after a collection)", r.settled)
		p("                  %.1f KiB VmRSS per client  target < %s and <= %d KiB per client: %s; Go heap live %.1f KiB per client",
			perClient/1024, mib(targetRSS), targetPerClient>>10, verdict(r.settled.rss > 0 && r.settled.rss < targetRSS && perClient <= targetPerClient),
			r.settled.heapAlloc/float64(o.clients)/1024)
	}
	p("token latency, sample clients only (baseline):  %s", r.baseline)
	p("token latency, %d clients cached, sequential, random clients:  %s", o.clients, r.seq)
	p("token latency, %d clients cached, sequential, the sample client (alternating runs):  %s", o.clients, r.seqSample)
	p("token latency, %d clients cached, sequential, random clients, rounds without a collection:  %s", o.clients, r.seqQuiet)
	p("token latency, %d clients cached, sequential, the sample client, rounds without a collection:  %s", o.clients, r.seqSampleQuiet)
	p("CPU during the baseline:         %s", r.baselineCPU)
	p("CPU during the sequential runs:  %s", r.seqCPU)
	for _, l := range r.concurrent {
		p("token latency, %d clients cached, concurrent:  %s", o.clients, l)
	}
	ratio := func(name string, a, b *latencies) {
		if a == nil || b == nil || len(a.d) == 0 || len(b.d) == 0 {
			return
		}
		p50 := float64(a.pct(50)) / float64(b.pct(50))
		p99 := float64(a.pct(99)) / float64(b.pct(99))
		p("latency ratio, %s: p50 %.2f, p99 %.2f  target <= %.1f: %s", name, p50, p99, targetLatencyGrow, verdict(p50 <= targetLatencyGrow && p99 <= targetLatencyGrow))
	}
	ratio(fmt.Sprintf("random of %d clients / samples only before they were created", o.clients), r.seq, r.baseline)
	ratio(fmt.Sprintf("random of %d clients / the sample client, same time", o.clients), r.seq, r.seqSample)
	ratio(fmt.Sprintf("random of %d clients / samples only before they were created, rounds without a collection", o.clients), r.seqQuiet, r.baseline)
	if rs := r.replica; rs != nil {
		if rs.err != "" {
			p("second replica:   %s", rs.err)
		}
		p("second replica:   first token (sample client) after %s, first token for the last-created client after %s, ready (every client indexed) after %s  target < %s: %s",
			durOr(rs.firstToken, "-"), durOr(rs.firstScaleToken, "-"), durOr(rs.ready, "-"), targetReplica,
			verdict(rs.firstScaleToken > 0 && rs.firstScaleToken < targetReplica && rs.ready < targetReplica))
		p("second replica memory (follower, 5 s after ready): %s", rs.mem)
		for _, l := range rs.groups {
			p("  %s", l)
		}
	}
	if rs := r.resync; rs != nil {
		if rs.err != "" {
			p("resync:           %s", rs.err)
		}
		p("resync:           the second replica led %s after the first stopped; %.0f reconciles done after %s",
			durOr(rs.leadAfter, "-"), rs.reconciles, durOr(rs.reconciledAfter, "-"))
		p("new leader's memory 5 s after the resync (no creation burst behind it): %s", rs.mem)
		for _, l := range rs.groups {
			p("  %s", l)
		}
	}
	if len(r.loads) > 0 {
		p("")
		p("API server requests (apiserver_request_total), by phase:")
		for _, l := range r.loads {
			p("  %-62s %s", l.phase+":", l)
		}
	}
	if len(r.managerCalls) > 0 {
		p("first manager's own API requests until the latency runs (rest_client_requests_total): %s", strings.Join(r.managerCalls, ", "))
	}
	if len(r.heapGroups) > 0 {
		p("")
		p("where the first manager's heap goes, settled (heap profile after a GC: %s):", r.heapProfile)
		for _, l := range r.heapGroups {
			p("  %s", l)
		}
	}
	if len(r.heapTop) > 0 {
		p("")
		p("heap profile, top entries (go tool pprof -sample_index=inuse_space -top %s):", r.heapProfile)
		for _, l := range r.heapTop {
			p("  %s", l)
		}
	}
	if len(r.readyCurve) > 0 {
		p("")
		p("progress:")
		for _, l := range r.readyCurve {
			p("  %s", l)
		}
	}
	for _, n := range r.notes {
		p("note: %s", n)
	}
}

func durOr(d time.Duration, s string) string {
	if d == 0 {
		return s
	}
	return d.Round(time.Millisecond).String()
}

// procMemory reads VmHWM (peak) and VmRSS of a process, in bytes.
func procMemory(pid int) (hwm, rss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		fields := strings.Fields(v) // "123456 kB"
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if k == "VmHWM" {
			hwm = n << 10
		} else {
			rss = n << 10
		}
	}
	if hwm == 0 && rss == 0 {
		return 0, 0, fmt.Errorf("no VmHWM/VmRSS in /proc/%d/status", pid)
	}
	return hwm, rss, sc.Err()
}
