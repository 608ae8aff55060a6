package operator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/httpserver"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
	"github.com/oauth-client-operator/oauth-client-operator/internal/tokenserver"
	"github.com/oauth-client-operator/oauth-client-operator/internal/tokenserver/clusterstate"
	"github.com/oauth-client-operator/oauth-client-operator/internal/trust"
)

// TokenService is the token server as it runs in every replica (a manager runnable that
// needs no leadership): the protocol (tokenserver.Server) over a State the informers
// keep up to date (clusterstate), served by the HTTP plumbing (httpserver).
type TokenService struct {
	// Protocol answers the endpoints.
	Protocol *tokenserver.Server
	// HTTP serves Protocol's handler.
	HTTP *httpserver.Server
	// Store is the State the informers feed.
	Store *tokenserver.Store

	feed      clusterstate.Feed
	informers cache.Informers
	keys      *signing.Keyring
	metrics   prometheus.Registerer
}

// tokenServiceOptions are what the token service is built of.
type tokenServiceOptions struct {
	config    *config.Config
	informers cache.Informers
	keys      *signing.Keyring
	clock     clock.PassiveClock
	metrics   prometheus.Registerer
	saIssuer  tokenserver.ServiceAccountIssuer
	reviewer  tokenserver.BoundTokenReviewer
	trust     *trust.Registry
	audit     io.Writer
	log       logr.Logger
}

func newTokenService(o tokenServiceOptions) *TokenService {
	store := tokenserver.NewStore()
	if o.trust != nil {
		store.UseRegistry(o.trust)
	}
	protocol := tokenserver.New(tokenserver.Options{
		Config:               o.config,
		State:                store,
		Keys:                 o.keys,
		Log:                  o.log,
		Clock:                o.clock,
		ServiceAccountIssuer: o.saIssuer,
		BoundTokenReviewer:   o.reviewer,
		Audit:                o.audit,
		Replica:              replicaName(),
	})
	return &TokenService{
		Protocol: protocol, Store: store,
		HTTP:      httpserver.New(o.config.TokenServer, protocol.Handler(), o.log),
		informers: o.informers, keys: o.keys, metrics: o.metrics,
	}
}

// NeedLeaderElection is false: every replica serves tokens.
func (t *TokenService) NeedLeaderElection() bool { return false }

// Start feeds the State from the informers and serves until ctx ends; its metrics are
// registered meanwhile.
func (t *TokenService) Start(ctx context.Context) error {
	if t.metrics != nil {
		for _, c := range t.Protocol.Collectors() {
			if err := t.metrics.Register(c); err != nil {
				return fmt.Errorf("token server metrics: %w", err)
			}
			defer t.metrics.Unregister(c)
		}
	}
	if err := t.feed.Start(ctx, t.informers, t.Store); err != nil {
		return err
	}
	return t.HTTP.Start(ctx)
}

// Addr is the address the token server listens on, once it does.
func (t *TokenService) Addr() net.Addr { return t.HTTP.Addr() }

// Ready reports an error until the server listens, knows every client and has a
// signing key; it is the manager's readiness check.
func (t *TokenService) Ready(*http.Request) error {
	switch {
	case t.keys.Load() == nil:
		return errors.New("no signing key loaded yet")
	case !t.feed.Synced():
		return errors.New("clients not indexed yet")
	case !t.HTTP.Listening():
		return errors.New("token server not listening yet")
	}
	return nil
}
