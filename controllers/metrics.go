package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics of the controllers, on the manager's metrics endpoint.
var (
	// SecretRotations counts client-secret rotations, by trigger (interval or
	// annotation). No label names a client.
	SecretRotations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oauth_client_secret_rotations_total",
		Help: "Client secrets rotated, by trigger (interval or annotation).",
	}, []string{"trigger"})
	// SigningKeyRotations counts signing keys that started signing.
	SigningKeyRotations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "oauth_signing_key_rotations_total",
		Help: "Signing keys that became current (rotations completed).",
	})
	// SigningKeyRevocations counts emergency revocations carried out.
	SigningKeyRevocations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "oauth_signing_key_revocations_total",
		Help: "Emergency revocations of signing keys carried out (oauth.operator.dev/revoke-key).",
	})
)

func init() {
	metrics.Registry.MustRegister(SecretRotations, SigningKeyRotations, SigningKeyRevocations)
}
