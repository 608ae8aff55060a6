package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oauth-client-operator/oauth-client-operator/test/machine"
)

// loadSpec bounds one run: at most Requests requests and at most Duration, by Workers
// concurrent workers, each with one request in flight.
type loadSpec struct {
	Workers  int
	Requests int64
	Duration time.Duration
}

// connMode is how the load generator connects.
type connMode int

const (
	// keepAlive: one persistent connection per worker (TLS: one handshake each).
	keepAlive connMode = iota
	// resumed: a new connection per request, resuming the TLS session of an earlier
	// one (TLS 1.3 PSK: no certificate, no signature).
	resumed
	// fullHandshake: a new connection per request with a full TLS handshake.
	fullHandshake
)

func (m connMode) String() string {
	switch m {
	case resumed:
		return "new conn, resumed"
	case fullHandshake:
		return "new conn, full handshake"
	}
	return "keep-alive"
}

// result is what one or more runs against one server measured.
type result struct {
	Requests  int64           // answered requests (any status)
	Non2xx    int64           // answers outside 200-299
	Errors    int64           // transport errors (no answer)
	Resumed   int64           // answers on a resumed TLS session
	Elapsed   time.Duration   // wall time of the runs
	CPU       time.Duration   // CPU time the server process spent during the runs
	Latencies []time.Duration // one per answered request
	FirstBad  string          // the first non-2xx answer or error, for the report
}

func (r *result) add(o *result) {
	r.Requests += o.Requests
	r.Non2xx += o.Non2xx
	r.Errors += o.Errors
	r.Resumed += o.Resumed
	r.Elapsed += o.Elapsed
	r.CPU += o.CPU
	r.Latencies = append(r.Latencies, o.Latencies...)
	if r.FirstBad == "" {
		r.FirstBad = o.FirstBad
	}
}

func (r *result) rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// perCore is requests per CPU-second of the server process: its throughput per core,
// whatever else (the load generator) runs on the machine.
func (r *result) perCore() float64 {
	if r.CPU <= 0 {
		return 0
	}
	return float64(r.Requests) / r.CPU.Seconds()
}

// percentile of the recorded latencies (nearest rank); sorts them.
func (r *result) percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	slices.Sort(r.Latencies)
	i := int(p/100*float64(len(r.Latencies))+0.5) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

// newClient is an HTTP client of workers connections to loopback, connecting as mode
// says; roots are the CAs trusted for https URLs.
func newClient(workers int, mode connMode, roots *x509.CertPool) *http.Client {
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        workers,
		MaxIdleConnsPerHost: workers,
		MaxConnsPerHost:     workers,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		DisableKeepAlives:   mode != keepAlive,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}
	if mode == resumed {
		t.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(4 * workers)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: t}
}

// run sends token requests with body to url until spec's count or time is spent or
// ctx ends. Every worker reads each answer to its end so a keep-alive connection is
// reused. pid is the server process, whose CPU time is measured.
func run(ctx context.Context, client *http.Client, url, body string, spec loadSpec, pid int) *result {
	ctx, cancel := context.WithTimeout(ctx, spec.Duration)
	defer cancel()
	var issued atomic.Int64
	per := make([]*result, spec.Workers)
	var wg sync.WaitGroup
	cpu0 := machine.ProcessCPU(pid)
	start := time.Now()
	for w := range spec.Workers {
		res := &result{Latencies: make([]time.Duration, 0, min(spec.Requests/int64(spec.Workers)+16, 1<<20))}
		per[w] = res
		wg.Go(func() {
			for ctx.Err() == nil && issued.Add(1) <= spec.Requests {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
				if err != nil {
					panic(err)
				}
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						return // the run's time is up: an interrupted request is not a failure
					}
					res.Errors++
					if res.FirstBad == "" {
						res.FirstBad = err.Error()
					}
					continue
				}
				res.Requests++
				res.Latencies = append(res.Latencies, d)
				if resp.TLS != nil && resp.TLS.DidResume {
					res.Resumed++
				}
				if resp.StatusCode < 200 || resp.StatusCode > 299 {
					res.Non2xx++
					if res.FirstBad == "" {
						res.FirstBad = fmt.Sprintf("HTTP %s", resp.Status)
					}
				}
			}
		})
	}
	wg.Wait()
	total := &result{}
	for _, r := range per {
		total.add(r)
	}
	total.Elapsed = time.Since(start)
	total.CPU = machine.ProcessCPU(pid) - cpu0
	return total
}
