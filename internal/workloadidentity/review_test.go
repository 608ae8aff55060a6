package workloadidentity

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeReviews answers TokenReviews: valid tokens, an outage, and counts.
type fakeReviews struct {
	mu      sync.Mutex
	valid   map[string]bool
	down    bool
	calls   int
	lastAud []string
}

func (f *fakeReviews) create(_ context.Context, tr *authenticationv1.TokenReview) (*authenticationv1.TokenReview, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.lastAud = tr.Spec.Audiences
	if f.down {
		return nil, errors.New("connection refused")
	}
	out := tr.DeepCopy()
	out.Status.Authenticated = f.valid[tr.Spec.Token]
	if !out.Status.Authenticated {
		out.Status.Error = "pod not found"
	}
	return out, nil
}

func (f *fakeReviews) set(token string, valid, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.valid[token], f.down = valid, down
}

// TestReviewer: a bound token is reviewed on first use and again once its answer is
// older than the TTL (a deleted pod's token is then refused); through an outage the last
// answer stands, and a token never reviewed cannot be confirmed.
func TestReviewer(t *testing.T) {
	t.Parallel()
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	api := &fakeReviews{valid: map[string]bool{"pod-a": true}}
	r := newReviewer(api.create, ReviewerOptions{Audiences: []string{"https://issuer.test"}, Clock: clk})
	exp := clk.Now().Add(time.Hour)
	check := func(token string, wantValid, wantErr bool) {
		t.Helper()
		valid, err := r.Review(token, exp)
		if valid != wantValid || (err != nil) != wantErr {
			t.Fatalf("Review(%s) = %v, %v; want %v, error %v", token, valid, err, wantValid, wantErr)
		}
	}
	check("pod-a", true, false)
	check("pod-a", true, false)
	if api.calls != 1 || len(api.lastAud) != 1 {
		t.Fatalf("%d TokenReviews (audiences %v) for one token within the TTL, want 1 with the server's audience", api.calls, api.lastAud)
	}
	// The pod is deleted: refused once the answer is older than the TTL.
	api.set("pod-a", false, false)
	clk.SetTime(clk.Now().Add(DefaultReviewTTL - time.Second))
	check("pod-a", true, false)
	clk.SetTime(clk.Now().Add(2 * time.Second))
	check("pod-a", false, false)

	// Through an outage: the last answer stands, whatever its age; a new token cannot
	// be confirmed.
	api.set("pod-b", true, false)
	check("pod-b", true, false)
	api.set("pod-b", true, true)
	clk.SetTime(clk.Now().Add(10 * time.Minute))
	check("pod-b", true, false)
	check("pod-a", false, false)
	check("pod-c", false, true)
	api.set("pod-c", true, false)
	check("pod-c", true, false)
}

// TestReviewerBounded: the decisions kept stay within MaxReviews.
func TestReviewerBounded(t *testing.T) {
	t.Parallel()
	clk := clocktesting.NewFakePassiveClock(time.Now())
	api := &fakeReviews{valid: map[string]bool{}}
	r := newReviewer(api.create, ReviewerOptions{Clock: clk, MaxReviews: 100})
	for i := range 1000 {
		if _, err := r.Review(string(rune(i+1000)), clk.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if n := len(r.decisions); n > 100 {
			t.Fatalf("%d decisions kept, bound is 100", n)
		}
	}
}
