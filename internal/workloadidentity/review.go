package workloadidentity

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
)

// Defaults of a Reviewer.
const (
	// DefaultReviewTTL is how long a TokenReview's answer is used before the token is
	// reviewed again: a pod deleted meanwhile has its token refused at most this
	// long after.
	DefaultReviewTTL = time.Minute
	// DefaultMaxReviews bounds the decisions remembered (about 100 bytes each).
	DefaultMaxReviews = 100_000
	// reviewTimeout bounds one TokenReview, the wait for a turn included.
	reviewTimeout = 5 * time.Second
	// maxReviewsInFlight bounds the TokenReviews one replica has in flight: however
	// many bound tokens arrive at once, the API server sees at most this many.
	maxReviewsInFlight = 16
)

// Reviewer asks the API server (TokenReview) whether a ServiceAccount token bound to an
// object — a pod, a Secret, a node — is still valid: the API server invalidates such a
// token when the object is deleted, which its signature and claims cannot tell. Answers
// are kept by the token's digest for the review TTL (and never past the token's
// expiry); through an API-server outage the last answer keeps being used, and a token
// never reviewed cannot be confirmed (an error).
type Reviewer struct {
	create    func(context.Context, *authenticationv1.TokenReview) (*authenticationv1.TokenReview, error)
	audiences []string
	clock     clock.PassiveClock
	ttl       time.Duration
	max       int
	log       logr.Logger

	flight    singleflight.Group
	inFlight  *semaphore.Weighted
	mu        sync.Mutex
	decisions map[[sha256.Size]byte]decision
}

type decision struct {
	valid bool
	// reviewed is when the API server answered; expires is the token's expiry.
	reviewed, expires time.Time
}

// ReviewerOptions configure a Reviewer.
type ReviewerOptions struct {
	// Config reaches the API server with the operator's credentials (which may create
	// TokenReviews).
	Config *rest.Config
	// Audiences are the audiences the tokens are for (this server's issuer and token
	// URL), as the TokenReview asks.
	Audiences []string
	// Clock is the real one when nil; TTL and MaxReviews take the defaults when 0.
	Clock      clock.PassiveClock
	TTL        time.Duration
	MaxReviews int
	Log        logr.Logger
}

// The TokenReviews that confirm bound ServiceAccount tokens.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create

// NewReviewer builds a Reviewer.
func NewReviewer(o ReviewerOptions) (*Reviewer, error) {
	c, err := authenticationclient.NewForConfig(o.Config)
	if err != nil {
		return nil, fmt.Errorf("TokenReview client: %w", err)
	}
	return newReviewer(func(ctx context.Context, tr *authenticationv1.TokenReview) (*authenticationv1.TokenReview, error) {
		return c.TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	}, o), nil
}

func newReviewer(create func(context.Context, *authenticationv1.TokenReview) (*authenticationv1.TokenReview, error), o ReviewerOptions) *Reviewer {
	r := &Reviewer{create: create, audiences: o.Audiences, clock: o.Clock, ttl: o.TTL, max: o.MaxReviews, log: o.Log,
		inFlight: semaphore.NewWeighted(maxReviewsInFlight), decisions: map[[sha256.Size]byte]decision{}}
	if r.clock == nil {
		r.clock = clock.RealClock{}
	}
	if r.ttl <= 0 {
		r.ttl = DefaultReviewTTL
	}
	if r.max <= 0 {
		r.max = DefaultMaxReviews
	}
	return r
}

// Review reports whether token, which expires at exp, is still valid for the API
// server. An error means it could not be confirmed: the API server did not answer and
// the token was never reviewed before.
func (r *Reviewer) Review(token string, exp time.Time) (bool, error) {
	key := sha256.Sum256([]byte(token))
	now := r.clock.Now()
	r.mu.Lock()
	d, known := r.decisions[key]
	r.mu.Unlock()
	if known && now.Before(d.reviewed.Add(r.ttl)) {
		return d.valid, nil
	}
	// One review at a time per token, however many requests present it.
	v, err, _ := r.flight.Do(string(key[:]), func() (any, error) { return r.review(token, key, exp) })
	if err != nil {
		if known {
			// The API server does not answer: the last answer stands.
			return d.valid, nil
		}
		return false, err
	}
	return v.(bool), nil
}

func (r *Reviewer) review(token string, key [sha256.Size]byte, exp time.Time) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), reviewTimeout)
	defer cancel()
	if err := r.inFlight.Acquire(ctx, 1); err != nil {
		return false, fmt.Errorf("TokenReview: no turn within %s: %w", reviewTimeout, err)
	}
	defer r.inFlight.Release(1)
	res, err := r.create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: r.audiences}})
	if err != nil {
		r.log.Error(err, "review a bound ServiceAccount token with the API server")
		return false, fmt.Errorf("TokenReview: %w", err)
	}
	valid := res.Status.Authenticated && res.Status.Error == ""
	r.remember(key, decision{valid: valid, reviewed: r.clock.Now(), expires: exp})
	return valid, nil
}

// remember keeps d, within the bound: a full table first forgets the decisions of
// expired tokens, then arbitrary ones down to nine tenths (a forgotten token is merely
// reviewed again).
func (r *Reviewer) remember(key [sha256.Size]byte, d decision) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.decisions) >= r.max {
		now := r.clock.Now()
		for k, old := range r.decisions {
			if !now.Before(old.expires) {
				delete(r.decisions, k)
			}
		}
		for k := range r.decisions {
			if len(r.decisions) < r.max*9/10 {
				break
			}
			delete(r.decisions, k)
		}
	}
	r.decisions[key] = d
}
