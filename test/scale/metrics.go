package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

var metricsClient = &http.Client{Timeout: 30 * time.Second}

// promSamples reads a Prometheus text exposition: every sample whose name is one of
// names, as "name{labels}" → value.
func promSamples(r io.Reader, names ...string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		series := line[:i]
		name := series
		if j := strings.IndexByte(series, '{'); j >= 0 {
			name = series[:j]
		}
		if !slices.Contains(names, name) {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[series] = v
	}
	return out
}

// label returns the value of label k in a series "name{a="x",b="y"}".
func label(series, k string) string {
	i := strings.Index(series, k+`="`)
	if i < 0 {
		return ""
	}
	rest := series[i+len(k)+2:]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return rest[:j]
}

// managerMetrics scrapes a manager's metrics endpoint.
func managerMetrics(port int, names ...string) (map[string]float64, error) {
	resp, err := metricsClient.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	return promSamples(resp.Body, names...), nil
}

// sum adds the samples whose labels include every k=v of match.
func sum(samples map[string]float64, match ...string) float64 {
	var total float64
	for series, v := range samples {
		ok := true
		for i := 0; i+1 < len(match); i += 2 {
			if label(series, match[i]) != match[i+1] {
				ok = false
				break
			}
		}
		if ok {
			total += v
		}
	}
	return total
}

// apiRequests is a snapshot of the API server's request counter
// (apiserver_request_total) by verb, at a time.
type apiRequests struct {
	at     time.Time
	byVerb map[string]float64
}

func apiServerRequests(ctx context.Context, cfg *rest.Config) (apiRequests, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return apiRequests{}, err
	}
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return apiRequests{}, fmt.Errorf("API server metrics: %w", err)
	}
	snap := apiRequests{at: time.Now(), byVerb: map[string]float64{}}
	for series, v := range promSamples(bytes.NewReader(raw), "apiserver_request_total") {
		snap.byVerb[label(series, "verb")] += v
	}
	return snap, nil
}

// apiLoad is the API server's request rate between two snapshots.
type apiLoad struct {
	phase    string
	seconds  float64
	requests map[string]float64 // by verb
}

func (a apiRequests) since(before apiRequests, phase string) *apiLoad {
	l := &apiLoad{phase: phase, seconds: a.at.Sub(before.at).Seconds(), requests: map[string]float64{}}
	for verb, v := range a.byVerb {
		if d := v - before.byVerb[verb]; d > 0 {
			l.requests[verb] = d
		}
	}
	return l
}

func (l *apiLoad) String() string {
	if l == nil {
		return "not measured"
	}
	var total float64
	verbs := make([]string, 0, len(l.requests))
	for verb, n := range l.requests {
		total += n
		verbs = append(verbs, verb)
	}
	slices.SortFunc(verbs, func(a, b string) int { return int(l.requests[b] - l.requests[a]) })
	parts := make([]string, 0, len(verbs))
	for _, verb := range verbs {
		parts = append(parts, fmt.Sprintf("%s %.0f", verb, l.requests[verb]))
	}
	return fmt.Sprintf("%.0f requests in %.1fs = %.1f/s (%s)", total, l.seconds, total/max(l.seconds, 0.001), strings.Join(parts, ", "))
}

// heapProfile fetches the manager's heap profile after a garbage collection
// (/debug/pprof/heap?gc=1) into path.
func heapProfile(port int, path string) error {
	resp, err := metricsClient.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1", port))
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heap profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// pprofTop is `go tool pprof -top` of a heap profile's in-use bytes: the top entries
// by flat size, and by cumulative size those of the groups that tell where the
// memory goes.
func pprofTop(ctx context.Context, path string, n int) []string {
	run := func(args ...string) ([]string, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "pprof", "-sample_index=inuse_space"}, args...)...)
		cmd.Dir = filepath.Dir(path)
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("go tool pprof %s: %w", strings.Join(args, " "), err)
		}
		return strings.Split(strings.TrimRight(string(out), "\n"), "\n"), nil
	}
	lines, err := run("-top", "-nodecount="+strconv.Itoa(n), path)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Type:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// heapGroup names the heap allocated under a stack frame: the first group whose
// expression matches one of a sample's frames gets the sample.
type heapGroup struct {
	name  string
	frame *regexp.Regexp
}

// pprofGroups splits a heap profile's in-use bytes between groups (`go tool pprof
// -traces`, each sample to the first group one of its frames matches; the rest is
// "other"), largest first.
func pprofGroups(ctx context.Context, path string, groups []heapGroup) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-sample_index=inuse_space", "-traces", path).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof -traces: %w", err)
	}
	sums := make([]float64, len(groups)+1)
	var total float64
	flush := func(value float64, frames []string) {
		total += value
		for i, g := range groups {
			if slices.ContainsFunc(frames, g.frame.MatchString) {
				sums[i] += value
				return
			}
		}
		sums[len(groups)] += value
	}
	var value float64
	var frames []string
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "-----------+"):
			if frames != nil {
				flush(value, frames)
			}
			value, frames = 0, []string{}
		case frames == nil || strings.Contains(l, "bytes:"):
		default:
			f := strings.Fields(l)
			if len(f) == 0 {
				continue
			}
			if len(frames) == 0 && len(f) >= 2 {
				value = parseBytes(f[0])
				f = f[1:]
			}
			frames = append(frames, f[0])
		}
	}
	if frames != nil {
		flush(value, frames)
	}
	type row struct {
		name  string
		bytes float64
	}
	rows := make([]row, 0, len(sums))
	for i, g := range groups {
		rows = append(rows, row{g.name, sums[i]})
	}
	rows = append(rows, row{"other", sums[len(groups)]})
	slices.SortStableFunc(rows, func(a, b row) int { return int(b.bytes - a.bytes) })
	out := make([]string, 0, len(rows)+1)
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%-44s %8.1f MiB  %5.1f%%", r.name, r.bytes/(1<<20), 100*r.bytes/max(total, 1)))
	}
	return append(out, fmt.Sprintf("%-44s %8.1f MiB", "total in use (heap profile)", total/(1<<20))), nil
}

// parseBytes reads pprof's sizes: 0, 96B, 512kB, 1.50MB, 2GB.
func parseBytes(s string) float64 {
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f * u.mult
		}
	}
	f, _ := strconv.ParseFloat(s, 64)
	return f
}
