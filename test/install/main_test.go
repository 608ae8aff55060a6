//go:build integration

// Package install tests the ways to install the operator on a cluster: the Helm chart
// (charts/oauth-client-operator) and the kustomize install (config/default). The chart is
// rendered by the real helm (bin/helm) and every object it renders is checked by a real
// kube-apiserver (envtest) with server-side dry-run; the chart's RBAC is applied for
// real and the whole operator runs as the chart's ServiceAccount.
package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/oauth-client-operator/oauth-client-operator/internal/operator"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
)

const chartDir = "charts/oauth-client-operator"

var (
	root = testenv.Root()
	env  *testenv.Environment
	// admin is a cluster-admin client (envtest's user is in system:masters).
	admin client.Client
	// warnings collects the API server's warnings to admin's requests.
	warnings = &warningRecorder{}
	// logs receives the controller-runtime log of operators the tests start.
	logs = &testenv.LogBuffer{}
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(logs)))
	testenv.Main(func() (int, error) { return run(m) })
}

func run(m *testing.M) (int, error) {
	var err error
	if env, err = testenv.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = env.Stop() }()
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = warnings
	if admin, err = client.New(cfg, client.Options{Scheme: operator.Scheme()}); err != nil {
		return 0, err
	}
	// Stand-ins for the CRDs of the optional integrations (prometheus-operator,
	// cert-manager), so their objects are validated like every other.
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(root, "test", "install", "testdata", "crds")}, ErrorIfPathMissing: true,
	}); err != nil {
		return 0, fmt.Errorf("install test CRDs: %w", err)
	}
	return m.Run(), nil
}

// helmBin is bin/helm, which `make helm` (and so `make test`) installs.
func helmBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(root, "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("helm not found at %s: run `make helm` (make test does it)", p)
	}
	return p
}

// kustomizeBin is bin/kustomize, which `make kustomize` (and so `make test`) installs.
func kustomizeBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(root, "bin", "kustomize")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("kustomize not found at %s: run `make kustomize` (make test does it)", p)
	}
	return p
}

// runTool runs a tool in the repository root and returns its stdout, stderr and error.
func runTool(t *testing.T, bin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// helm runs bin/helm and fails the test when it fails.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := runTool(t, helmBin(t), args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, errOut, out)
	}
	return out
}

// release names a rendering of the chart: release name, namespace and helm arguments
// (-f, --set).
type release struct {
	name, namespace string
	args            []string
}

func valuesFile(name string) string { return filepath.Join(chartDir, "ci", name) }

var (
	defaults    = release{name: "oauth-client-operator", namespace: "oauth-system"}
	allFeatures = release{name: "oc-all", namespace: "oauth-all", args: []string{"-f", valuesFile("all-features-values.yaml")}}
	minimal     = release{name: "oc-min", namespace: "oauth-min", args: []string{"-f", valuesFile("minimal-values.yaml")}}
)

// render runs `helm template` and decodes every object it renders.
func render(t *testing.T, r release, extra ...string) []*unstructured.Unstructured {
	t.Helper()
	args := append([]string{"template", r.name, chartDir, "--namespace", r.namespace}, r.args...)
	return decode(t, helm(t, append(args, extra...)...))
}

// decode splits a YAML stream into objects, skipping empty documents.
func decode(t *testing.T, stream string) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decode rendered YAML: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs
}

// find returns the one object of the kind (and name suffix, when given).
func find(t *testing.T, objs []*unstructured.Unstructured, kind string, nameSuffix ...string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && (len(nameSuffix) == 0 || strings.HasSuffix(o.GetName(), nameSuffix[0])) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s %v, found %d", kind, nameSuffix, len(found))
	}
	return found[0]
}

// kinds lists "Kind/name" of the objects, sorted.
func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	sort.Strings(out)
	return out
}

func countKind(objs []*unstructured.Unstructured, kind string) int {
	n := 0
	for _, o := range objs {
		if o.GetKind() == kind {
			n++
		}
	}
	return n
}

// ensureNamespace creates a namespace unless it exists, and has it enforce the
// "restricted" Pod Security Standard: the API server then warns of a pod template that
// would not be admitted there, and dry-runs fail on warnings.
func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{}
	ns.Name = name
	if err := admin.Get(ctx, client.ObjectKeyFromObject(ns), ns); apierrors.IsNotFound(err) {
		err = admin.Create(ctx, ns)
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create namespace %s: %v", name, err)
		}
		if err = admin.Get(ctx, client.ObjectKeyFromObject(ns), ns); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(ns.DeepCopy())
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
	ns.Labels["pod-security.kubernetes.io/warn"] = "restricted"
	if err := admin.Patch(ctx, ns, patch); err != nil {
		t.Fatalf("label namespace %s: %v", name, err)
	}
}

// dryRun submits the object to the API server with server-side dry-run and strict field
// validation: a create, or an update when it exists (the CRDs testenv installed).
func dryRun(ctx context.Context, obj *unstructured.Unstructured) error {
	o := obj.DeepCopy()
	err := admin.Create(ctx, o, client.DryRunAll, client.FieldValidation("Strict"))
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	current := &unstructured.Unstructured{}
	current.SetGroupVersionKind(obj.GroupVersionKind())
	if err := admin.Get(ctx, client.ObjectKeyFromObject(obj), current); err != nil {
		return err
	}
	o = obj.DeepCopy()
	o.SetResourceVersion(current.GetResourceVersion())
	return admin.Update(ctx, o, client.DryRunAll, client.FieldValidation("Strict"))
}

// warningRecorder records the API server's warnings (deprecated APIs, unknown or
// duplicate fields, ...).
type warningRecorder struct {
	mu   sync.Mutex
	list []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// take returns and forgets the warnings recorded so far.
func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}
