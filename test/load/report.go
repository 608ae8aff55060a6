package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/oauth-client-operator/oauth-client-operator/test/machine"
)

// Targets of issue 21.
const (
	targetRatio         = 0.9
	targetFullPerCore   = 2000
	targetP99KeepAlive  = 10 * time.Millisecond
	targetLatencyConns  = 16
	plainRatioTargetOld = 0.8
)

func printReport(w io.Writer, o options, rep *report) {
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format+"\n", args...) }
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	p("")
	p("machine: %d CPUs (%s), load average %s; manager GOMEMLIMIT=%q", runtime.NumCPU(), machine.CPUModel(), machine.LoadAverage(), o.gomemlimit)
	p("%d workers, %d rounds per server of at most %d requests or %s each, after a %s warm-up; 127.0.0.1",
		o.workers, o.rounds, o.requests, o.duration, o.warmup)
	p("req/s: requests per second of wall time; per core: requests per CPU-second the server process spent")
	p("")
	p("plain HTTP, keep-alive:")
	table(w, rep.plain, false)
	if len(rep.plain) >= 2 {
		ratio := rep.plain[0].res.rate() / rep.plain[1].res.rate()
		p("ES256 throughput real/minimal: %.2f (target >= %.2f: %s); per core %.2f",
			ratio, plainRatioTargetOld, verdict(ratio >= plainRatioTargetOld), rep.plain[0].res.perCore()/rep.plain[1].res.perCore())
		p("  per round (back-to-back runs; spread shows the machine's noise): %s", ratios(rep.pairRatios))
	}
	if len(rep.plain) > 2 {
		p("RS256/ES256 throughput of the real server: %.2f", rep.plain[2].res.rate()/rep.plain[0].res.rate())
	}
	if len(rep.tlsRows) > 0 {
		p("")
		p("TLS 1.3, ECDSA P-256 certificate, ES256 tokens, %d workers:", o.workers)
		table(w, rep.tlsRows, true)
		p("")
		for i := 0; i+1 < len(rep.tlsRows); i += 2 {
			op, mi := rep.tlsRows[i], rep.tlsRows[i+1]
			ratio := op.res.rate() / mi.res.rate()
			perCore := op.res.perCore() / mi.res.perCore()
			p("%-26s operator/minimal: throughput %.2f, per core %.2f (target >= %.2f: %s); per round %s",
				op.mode+":", ratio, perCore, targetRatio, verdict(ratio >= targetRatio), ratios(rep.tlsRatios[modeOf(op.mode)]))
		}
		for _, r := range rep.tlsRows {
			if r.server == "operator" && r.mode == fullHandshake.String() {
				p("full handshakes per core, operator: %.0f (target >= %d: %s)", r.res.perCore(), targetFullPerCore, verdict(r.res.perCore() >= targetFullPerCore))
			}
		}
	}
	if len(rep.latency) > 0 {
		p("")
		p("latency over TLS keep-alive, manager GOMEMLIMIT=%q, %d runs of %s per server:", o.gomemlimit, 2, o.latencyDur)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		_, _ = fmt.Fprintln(tw, "connections\tserver\trequests\treq/s\tp50\tp99\tp99.9\tmax\tGC cycles\t")
		for _, r := range rep.latency {
			gc := "-"
			if r.gcCycles >= 0 {
				gc = fmt.Sprintf("%.0f", r.gcCycles)
			}
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n", r.group, r.server, r.res.Requests, r.res.rate(),
				ms(r.res.percentile(50)), ms(r.res.percentile(99)), ms(r.res.percentile(99.9)), ms(r.res.percentile(100)), gc)
		}
		_ = tw.Flush()
		for _, r := range rep.latency {
			if r.server == "operator" && r.group == fmt.Sprintf("%d conns", targetLatencyConns) {
				p99 := r.res.percentile(99)
				p("p99 at %d connections, operator: %s (target < %s: %s)", targetLatencyConns, ms(p99), targetP99KeepAlive, verdict(p99 < targetP99KeepAlive))
			}
		}
	}
}

func table(w io.Writer, rows []row, withTLS bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "group\tmode\tserver\trequests\treq/s\tper core\tp50\tp99\tnon-2xx\terrors\t"
	if withTLS {
		head += "resumed\t"
	}
	_, _ = fmt.Fprintln(tw, head)
	for _, r := range rows {
		line := fmt.Sprintf("%s\t%s\t%s\t%d\t%.0f\t%.0f\t%s\t%s\t%d\t%d\t", r.group, r.mode, r.server, r.res.Requests, r.res.rate(), r.res.perCore(),
			ms(r.res.percentile(50)), ms(r.res.percentile(99)), r.res.Non2xx, r.res.Errors)
		if withTLS {
			line += fmt.Sprintf("%.0f%%\t", 100*float64(r.res.Resumed)/float64(max(r.res.Requests, 1)))
		}
		_, _ = fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
}

func modeOf(s string) connMode {
	for _, m := range []connMode{keepAlive, resumed, fullHandshake} {
		if m.String() == s {
			return m
		}
	}
	return keepAlive
}

func ratios(rs []float64) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = fmt.Sprintf("%.2f", r)
	}
	return strings.Join(out, " ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
