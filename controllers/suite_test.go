//go:build integration

package controllers_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/operator"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
)

const testIssuer = "https://oauth.test.example"

var (
	env *testenv.Environment
	// k8s talks to the API server directly, never through the operator's cache.
	k8s client.Client
	// logs captures everything the operator logs, to scan it for secrets.
	logs = &testenv.LogBuffer{}

	mgrMu   sync.Mutex
	mgrStop func()

	// clock is the operator's clock; rotation tests move it forward.
	clock = &testClock{}
)

// testClock is the wall clock plus an offset that tests advance.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(logs), zap.UseDevMode(false)))
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8s, err = client.New(env.Config, client.Options{Scheme: operator.Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := startManager(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	stopManager()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	os.Exit(code)
}

// startManager runs the operator's real manager (cache, controllers) in-process.
func startManager() error {
	mgrMu.Lock()
	defer mgrMu.Unlock()
	cfg, err := config.Parse([]byte("issuer: " + testIssuer + "\ntokenServer: {address: '127.0.0.1:0'}"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := operator.New(ctx, env.Config, operator.Options{
		Config: cfg, Namespace: "default", MetricsAddr: "0", ProbeAddr: "0",
		SkipControllerNameValidation: true, Clock: clock,
	})
	if err != nil {
		cancel()
		return err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	mgrStop = func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager stopped with error:", err)
		}
	}
	return nil
}

func stopManager() {
	mgrMu.Lock()
	defer mgrMu.Unlock()
	if mgrStop != nil {
		mgrStop()
		mgrStop = nil
	}
}

// newNamespace creates a namespace for one test, with the given labels.
func newNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-", Labels: labels}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// eventsFor lists the events.k8s.io Events regarding the named object.
func eventsFor(g gomega.Gomega, namespace, name string) []eventsv1.Event {
	list := &eventsv1.EventList{}
	g.Expect(k8s.List(context.Background(), list, client.InNamespace(namespace))).To(gomega.Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func reasons(evs []eventsv1.Event) []string {
	var r []string
	for _, e := range evs {
		r = append(r, e.Reason)
	}
	return r
}

const (
	timeout  = 20 * time.Second
	interval = 100 * time.Millisecond
)
