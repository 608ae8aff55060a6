package tokenserver

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// metrics are one Server's collectors. Labels are bounded: audiences are OAuthAPIs,
// which cluster administrators create; error codes are the RFC's few; reasons are the
// closed set Reasons. No label carries a client_id, a secret or a token.
type metrics struct {
	tokensIssued    *prometheus.CounterVec
	requestsFailed  *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	// okDuration is the histogram child of successful requests, resolved once: the
	// hot path skips the label lookup.
	okDuration    prometheus.Observer
	signingKeyAge prometheus.GaugeFunc
	clientsKnown  prometheus.GaugeFunc
	// replayEntries and replayCapacity tell how full the private_key_jwt replay cache
	// is.
	replayEntries, replayCapacity prometheus.GaugeFunc
	// dpopEntries and dpopCapacity tell how full the DPoP proof replay cache is.
	dpopEntries, dpopCapacity prometheus.GaugeFunc
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		tokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oauth_tokens_issued_total",
			Help: "Access tokens issued, by audience.",
		}, []string{"audience"}),
		requestsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oauth_token_requests_failed_total",
			Help: "Token requests refused, by OAuth error code and refusal reason (README: why was my token request refused).",
		}, []string{"error", "reason"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "oauth_token_request_duration_seconds",
			Help:    "Time to answer a token request, by result (ok or the OAuth error code).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"result"}),
		signingKeyAge: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "oauth_signing_key_age_seconds",
			Help: "Time since the key that signs new tokens started signing.",
		}, func() float64 { return s.signingKeyAge().Seconds() }),
		clientsKnown: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "oauth_clients",
			Help: "OAuthClients known to the token server.",
		}, func() float64 { return float64(s.state.Clients()) }),
	}
	replay := s.authenticators[oauthv1alpha1.AuthPrivateKeyJWT].(*privateKeyJWTAuthenticator).replay
	m.replayEntries = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "oauth_assertion_replay_cache_entries",
		Help: "Assertion ids (jti) this replica remembers to refuse replays, in the shared pool and the clients' reserves.",
	}, func() float64 { return float64(replay.size()) })
	m.replayCapacity = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "oauth_assertion_replay_cache_capacity",
		Help: "Assertion ids the replay cache's shared pool holds (privateKeyJWT.replayCacheSize); each client has a small reserve beyond it.",
	}, func() float64 { return float64(replay.maxEntries) })
	m.dpopEntries = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "oauth_dpop_replay_cache_entries",
		Help: "DPoP proof ids (jti) this replica remembers to refuse replays, in the shared pool and the clients' reserves.",
	}, func() float64 { return float64(s.dpopReplay.size()) })
	m.dpopCapacity = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "oauth_dpop_replay_cache_capacity",
		Help: "DPoP proof ids the replay cache's shared pool holds (dpop.replayCacheSize); each client has a small reserve beyond it.",
	}, func() float64 { return float64(s.dpopReplay.maxEntries) })
	m.okDuration = m.requestDuration.WithLabelValues("ok")
	return m
}

// Collectors are the server's metrics, for a registry: one Server's on a registry at
// a time (the operator registers them while the token server runs).
func (s *Server) Collectors() []prometheus.Collector {
	m := s.metrics
	return []prometheus.Collector{m.tokensIssued, m.requestsFailed, m.requestDuration, m.signingKeyAge, m.clientsKnown,
		m.replayEntries, m.replayCapacity, m.dpopEntries, m.dpopCapacity}
}

func (m *metrics) issued(start time.Time, api *API) {
	m.okDuration.Observe(time.Since(start).Seconds())
	m.tokensIssued.WithLabelValues(api.audience).Inc()
}

func (m *metrics) refused(start time.Time, e *oauthError) {
	m.requestDuration.WithLabelValues(e.code).Observe(time.Since(start).Seconds())
	m.requestsFailed.WithLabelValues(e.code, string(e.reason)).Inc()
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
	return s.clock.Now().Sub(since)
}
