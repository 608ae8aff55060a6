package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadSpec bounds one run: at most Requests requests and at most Duration, by Workers
// concurrent keep-alive connections, each with one request in flight.
type loadSpec struct {
	Workers  int
	Requests int64
	Duration time.Duration
}

// result is what one or more runs against one server measured.
type result struct {
	Requests  int64           // answered requests (any status)
	Non2xx    int64           // answers outside 200-299
	Errors    int64           // transport errors (no answer)
	Elapsed   time.Duration   // wall time of the runs
	Latencies []time.Duration // one per answered request
	FirstBad  string          // the first non-2xx answer or error, for the report
}

func (r *result) add(o *result) {
	r.Requests += o.Requests
	r.Non2xx += o.Non2xx
	r.Errors += o.Errors
	r.Elapsed += o.Elapsed
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

// percentile of the recorded latencies (nearest rank); sorts them.
func (r *result) percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	slices.Sort(r.Latencies)
	i := int(p/100*float64(len(r.Latencies))+0.5) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

// newClient is an HTTP client with one keep-alive connection per worker to loopback.
func newClient(workers int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        workers,
			MaxIdleConnsPerHost: workers,
			MaxConnsPerHost:     workers,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
	}
}

// run sends token requests with body to url until spec's count or time is spent or
// ctx ends. Every worker reads each answer to its end so its connection is reused.
func run(ctx context.Context, client *http.Client, url, body string, spec loadSpec) *result {
	ctx, cancel := context.WithTimeout(ctx, spec.Duration)
	defer cancel()
	var issued atomic.Int64
	per := make([]*result, spec.Workers)
	var wg sync.WaitGroup
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
	return total
}
