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
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/controllers"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/trust"
)

// The envtest tests of this package (build tag integration) run the reconcilers
// on a manager of their own (no token server, no leader election, nothing else of the
// operator), against a real kube-apiserver started on first use. The tests without the
// tag need no API server.

const testIssuer = "https://oauth.test.example"

var (
	envOnce sync.Once
	envErr  error
	env     *testenv.Environment
	// k8s talks to the API server directly, never through the manager's cache.
	k8s client.Client
	// logs captures everything the controllers log, to scan it for secrets.
	logs = &testenv.LogBuffer{}

	scheme = newScheme()

	mgrMu   sync.Mutex
	mgrStop func()

	// clock is the controllers' clock; rotation tests move it forward. Tests that move
	// it, or restart the manager, do not run in parallel (t.Parallel) with others.
	clock = &testClock{}

	// trustRegistry holds the OAuthTrustedIssuers for the OAuthTrustedIssuer
	// controller, as the operator's does; its keys go stale within seconds here.
	trustRegistry = trust.NewRegistry(trust.Options{RefreshInterval: time.Second, MaxAge: 2 * time.Second})
)

// keySecret is the signing-key Secret the signing-key controller rotates.
var keySecret = client.ObjectKey{Namespace: "default", Name: "oauth-client-operator-signing-keys"}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(oauthv1alpha1.AddToScheme(s))
	return s
}

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
	code := m.Run()
	stopManager()
	trustRegistry.Close()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
		}
	}
	os.Exit(code)
}

// requireEnv starts, once, the control plane, the signing-key Secret and the manager.
func requireEnv(t *testing.T) {
	t.Helper()
	envOnce.Do(func() { envErr = startEnv() })
	if envErr != nil {
		t.Fatal(envErr)
	}
}

func startEnv() error {
	var err error
	if env, err = testenv.Start(); err != nil {
		return err
	}
	if k8s, err = client.New(env.Config, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	if err := createKeySecret(); err != nil {
		return err
	}
	return startManager()
}

// createKeySecret writes the signing-key Secret with one ES256 key, as the operator's
// signing-key source does at its first start.
func createKeySecret() error {
	key, err := signing.GenerateKey(signing.ES256, clock.Now())
	if err != nil {
		return err
	}
	data, err := (&signing.KeySet{CurrentID: key.ID, Keys: []*signing.Key{key}}).Encode()
	if err != nil {
		return err
	}
	return k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: keySecret.Namespace, Name: keySecret.Name, Labels: map[string]string{
			oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue, oauthv1alpha1.SigningKeysLabel: "true"}},
		Data: data,
	})
}

// startManager runs the reconcilers on a new manager whose cache holds only the
// Secrets with the managed-by label, as the operator's does.
func startManager() error {
	mgrMu.Lock()
	defer mgrMu.Unlock()
	cfg, err := config.Parse([]byte("issuer: " + testIssuer))
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue})},
		}},
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	recorder := mgr.GetEventRecorder("oauth-client-operator")
	err = (&controllers.OAuthClientReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: scheme, Recorder: recorder,
		Config: cfg, Clock: clock,
	}).SetupWithManager(ctx, mgr)
	if err == nil {
		err = (&controllers.OAuthAPIReconciler{Client: mgr.GetClient(), Recorder: recorder}).SetupWithManager(mgr)
	}
	if err == nil {
		err = (&controllers.OAuthTrustedIssuerReconciler{Client: mgr.GetClient(), Recorder: recorder, Trust: trustRegistry}).SetupWithManager(mgr)
	}
	if err == nil {
		err = (&controllers.SigningKeyReconciler{
			Client: mgr.GetClient(), Recorder: recorder, Key: keySecret, Clock: clock,
			Policy: signing.Policy{
				Algorithm:        cfg.Signing.Algorithm,
				Interval:         cfg.Signing.RotationInterval.Duration,
				PropagationDelay: cfg.Signing.PropagationDelay.Duration,
				RetireAfter:      cfg.Tokens.MaxTTL.Duration + config.RetirementLeeway,
			},
		}).SetupWithManager(mgr)
	}
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
	requireEnv(t)
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
