package tokenserver

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the token server. Labels are bounded: audiences are OAuthAPIs, which
// cluster administrators create; error codes are the RFC's few. No label carries a
// client_id, a secret or a token. The collectors are process-wide, registered once
// (a process normally runs one token server; tests run several in turn, and the
// gauges follow the latest).
var (
	tokensIssued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oauth_tokens_issued_total",
		Help: "Access tokens issued, by audience.",
	}, []string{"audience"})
	requestsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oauth_token_requests_failed_total",
		Help: "Token requests refused, by OAuth error code.",
	}, []string{"error"})
	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "oauth_token_request_duration_seconds",
		Help:    "Time to answer a token request, by result (ok or the OAuth error code).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"result"})
	signingKeyAge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "oauth_signing_key_age_seconds",
		Help: "Time since the key that signs new tokens started signing.",
	}, func() float64 {
		if s := latest.Load(); s != nil {
			return s.signingKeyAge().Seconds()
		}
		return 0
	})
	clientsKnown = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "oauth_clients",
		Help: "OAuthClients known to the token server.",
	}, func() float64 {
		if s := latest.Load(); s != nil {
			return float64(s.registry.clientCount())
		}
		return 0
	})

	registerOnce sync.Once
	latest       atomic.Pointer[Server]
)

func registerMetrics(reg prometheus.Registerer, s *Server) {
	registerOnce.Do(func() {
		reg.MustRegister(tokensIssued, requestsFailed, requestDuration, signingKeyAge, clientsKnown)
	})
	latest.Store(s)
}

func (s *Server) signingKeyAge() time.Duration {
	l := s.keys.Load()
	if l == nil {
		return 0
	}
	k := l.Set.Current()
	since := k.ActivatesAt
	if since.IsZero() {
		since = k.CreatedAt
	}
	return s.now().Sub(since)
}

// okDuration is the histogram child of successful requests, resolved once: the hot
// path skips the label lookup.
var okDuration = requestDuration.WithLabelValues("ok")

func observe(start time.Time, result string, api *apiEntry) {
	if result == "ok" {
		okDuration.Observe(time.Since(start).Seconds())
		api.issued.Inc()
		return
	}
	requestDuration.WithLabelValues(result).Observe(time.Since(start).Seconds())
	requestsFailed.WithLabelValues(result).Inc()
}
