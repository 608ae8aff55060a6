//go:build integration

// Package resilience runs the operator through failures of its surroundings: the API
// server going away and coming back, and a crashed leader among two replicas. It
// starts its own envtest control plane (so it can stop and restart kube-apiserver)
// and builds cmd/manager once for the tests that need real processes.
package resilience

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/operator"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
)

var (
	env *envtest.Environment
	// cfg and k8s talk to the control plane as its admin.
	cfg *rest.Config
	k8s client.Client
	// managerBin is ./cmd/manager built by TestMain.
	managerBin string
	// workDir holds the binary, the API server's certificates and the kubeconfig.
	workDir string
	// logs captures the in-process operator's logs (printed when a test fails).
	logs = &testenv.LogBuffer{}
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(logs)))
	testenv.Main(func() (int, error) { return run(m) })
}

func run(m *testing.M) (int, error) {
	var err error
	if workDir, err = os.MkdirTemp("", "resilience-"); err != nil {
		return 0, err
	}
	defer func() { _ = os.RemoveAll(workDir) }()

	// Build the manager while the control plane starts.
	built := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bins, err := devenv.BuildBinaries(ctx, testenv.Root(), filepath.Join(workDir, "bin"))
		if err == nil {
			managerBin = bins.Manager
		}
		built <- err
	}()

	assets, err := testenv.AssetsDir()
	if err != nil {
		return 0, err
	}
	certDir := filepath.Join(workDir, "apiserver")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		return 0, err
	}
	env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(testenv.Root(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		// A certificate folder of our own: envtest keeps it (and the serving
		// certificate the clients trust) across APIServer.Stop and Start.
		ControlPlane: envtest.ControlPlane{APIServer: &envtest.APIServer{CertDir: certDir}},
	}
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		env.ControlPlaneStartTimeout = time.Minute // two busy cores
	}
	// kube-apiserver drains its watches for longer than the tests wait: after
	// stopTimeout of SIGTERM, envtest sends SIGKILL (a crash, as far as clients see).
	env.ControlPlaneStopTimeout = stopTimeout
	if cfg, err = env.Start(); err != nil {
		// Let the build finish before the temporary folder goes.
		return 0, errors.Join(fmt.Errorf("start envtest control plane: %w", err), <-built)
	}
	defer func() { _ = env.Stop() }()
	if k8s, err = client.New(cfg, client.Options{Scheme: operator.Scheme()}); err != nil {
		return 0, errors.Join(err, <-built)
	}
	if err := <-built; err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// stopTimeout bounds a graceful stop of kube-apiserver and etcd.
const stopTimeout = time.Second

// stopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after stopTimeout) and
// waits until its port is closed; etcd keeps running.
func stopAPIServer(t *testing.T) {
	t.Helper()
	if err := env.ControlPlane.APIServer.Stop(); err != nil {
		if !strings.Contains(err.Error(), "timeout waiting for process") {
			t.Fatalf("stop kube-apiserver: %v", err)
		}
		t.Logf("kube-apiserver killed after %s of graceful stop", stopTimeout)
	}
	host := strings.TrimPrefix(cfg.Host, "https://")
	NewWithT(t).Eventually(func() error {
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			_ = c.Close()
			return fmt.Errorf("%s still accepts connections", host)
		}
		return nil
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

func createNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	NewWithT(t).Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

// createAPI creates an OAuthAPI that admits every namespace and returns its name.
func createAPI(t *testing.T, prefix string) string {
	t.Helper()
	api := &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}, Spec: oauthv1alpha1.OAuthAPISpec{
		Scopes:            []oauthv1alpha1.Scope{"users:read"},
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll},
	}}
	NewWithT(t).Expect(k8s.Create(context.Background(), api)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), api) })
	return api.Name
}

func createClient(t *testing.T, ns, name, api string) {
	t.Helper()
	NewWithT(t).Expect(k8s.Create(context.Background(), &oauthv1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       oauthv1alpha1.OAuthClientSpec{Audiences: []string{api}, Scopes: []oauthv1alpha1.Scope{"users:read"}},
	})).To(Succeed())
}

// reconciled waits for the client's Secret and its Ready=True condition, and returns
// the request body of a token request with its credentials.
func reconciled(t *testing.T, ns, name string, timeout time.Duration) string {
	t.Helper()
	g := NewWithT(t)
	s := &corev1.Secret{}
	g.Eventually(func() error {
		return k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s)
	}, timeout, 100*time.Millisecond).Should(Succeed(), "the operator writes the Secret of %s/%s", ns, name)
	g.Eventually(func() bool {
		c := &oauthv1alpha1.OAuthClient{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, c); err != nil {
			return false
		}
		return meta.IsStatusConditionTrue(c.Status.Conditions, oauthv1alpha1.ConditionReady)
	}, timeout, 100*time.Millisecond).Should(BeTrue(), "%s/%s becomes Ready", ns, name)
	return fmt.Sprintf(`{"grant_type":"client_credentials","client_id":%q,"client_secret":%q}`, s.Data["client_id"], s.Data["client_secret"])
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// token asks for a token and returns the status and the access token.
func token(tokenURL, body string) (int, string, error) {
	resp, err := httpClient.Post(tokenURL, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var a struct {
		Token string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&a)
	return resp.StatusCode, a.Token, nil
}

// status is the HTTP status of a GET, 0 when it fails.
func status(u string) int {
	resp, err := httpClient.Get(u)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func jwks(t *testing.T, issuer string) jose.JSONWebKeySet {
	t.Helper()
	resp, err := httpClient.Get(issuer + "/.well-known/jwks.json")
	if err != nil {
		t.Fatalf("GET JWKS: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	var set jose.JSONWebKeySet
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET JWKS: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("GET JWKS: %v", err)
	}
	return set
}

// verify checks a token with go-jose against a JWKS, independently of the project's
// code, and returns its key id.
func verify(t *testing.T, tok string, set jose.JSONWebKeySet, issuer, aud string) string {
	t.Helper()
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	var std jwt.Claims
	if err := parsed.Claims(set, &std); err != nil {
		t.Fatalf("token does not verify against the JWKS: %v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: issuer, AnyAudience: jwt.Audience{aud}, Time: time.Now()}, time.Second); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return parsed.Headers[0].KeyID
}
