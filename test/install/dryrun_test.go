//go:build integration

package install

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
)

// Every object the chart renders, with its defaults, with every optional feature and
// with the other branches, is accepted by a Kubernetes 1.37 API server (server-side
// dry-run, strict field validation, no warnings). The ServiceMonitor and Certificate are
// checked against the stand-in CRDs of testdata/crds.
func TestChartObjectsAreValid(t *testing.T) {
	for name, r := range map[string]release{"defaults": defaults, "all-features": allFeatures, "minimal": minimal} {
		t.Run(name, func(t *testing.T) {
			objs := render(t, r)
			if len(objs) == 0 {
				t.Fatal("nothing rendered")
			}
			applyDryRun(t, r.namespace, objs)
		})
	}
}

// applyDryRun creates the namespace for real (dry-run objects need it), then submits
// every object with server-side dry-run.
func applyDryRun(t *testing.T, namespace string, objs []*unstructured.Unstructured) {
	t.Helper()
	ensureNamespace(t, namespace)
	warnings.take()
	for _, o := range objs {
		if err := dryRun(context.Background(), o); err != nil {
			t.Errorf("%s %s/%s rejected by the API server: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			continue
		}
		if w := warnings.take(); len(w) > 0 {
			t.Errorf("%s %s/%s: API server warnings: %q", o.GetKind(), o.GetNamespace(), o.GetName(), w)
		}
		t.Logf("ok: %s %s", o.GetKind(), o.GetName())
	}
}

// The dry-run check is not vacuous: what a real cluster would refuse, it refuses.
func TestDryRunRejectsInvalidObjects(t *testing.T) {
	for name, args := range map[string][]string{
		"unknown field":    {"--set", "podSecurityContext.runAsUserr=1"},
		"invalid quantity": {"--set", "resources.limits.memory=lots"},
		"invalid label":    {"--set", "podLabels.tier=-not-a-label-value-"},
	} {
		t.Run(name, func(t *testing.T) {
			d := find(t, render(t, defaults, args...), "Deployment")
			ensureNamespace(t, defaults.namespace)
			if err := dryRun(context.Background(), d); err == nil {
				t.Fatalf("the API server accepted an invalid Deployment (%v)", args)
			} else {
				t.Logf("rejected as expected: %v", err)
			}
		})
	}
}

// The pods meet the "restricted" Pod Security Standard, and the check would notice if
// they did not.
func TestPodSecurityRestricted(t *testing.T) {
	d := find(t, render(t, defaults, "--set", "securityContext.allowPrivilegeEscalation=true"), "Deployment")
	ensureNamespace(t, defaults.namespace)
	warnings.take()
	if err := dryRun(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	w := warnings.take()
	if len(w) == 0 || !strings.Contains(strings.Join(w, " "), "allowPrivilegeEscalation") {
		t.Fatalf("want a restricted Pod Security warning about allowPrivilegeEscalation, got %q", w)
	}
	t.Logf("warned as expected: %q", w)
}

// The samples, and the sample workload of the ServiceAccountToken client that the README
// shows, are accepted by the API server with strict field validation.
func TestSamplesAreValid(t *testing.T) {
	for _, dir := range []string{"config/samples", "config/samples/workload"} {
		t.Run(dir, func(t *testing.T) {
			objs, err := devenv.ReadObjects(filepath.Join(testenv.Root(), dir))
			if err != nil {
				t.Fatal(err)
			}
			applyDryRun(t, "shop", objs)
		})
	}
}
