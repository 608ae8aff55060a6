//go:build integration

package install

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
)

// kustomizeBuild runs `kustomize build config/default`.
func kustomizeBuild(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, "config", "crd", "kustomization.yaml")); err != nil {
		t.Fatalf("config/default includes ../crd, which needs config/crd/kustomization.yaml listing bases/*.yaml: %v", err)
	}
	out, errOut, err := runTool(t, kustomizeBin(t), "build", "config/default")
	if err != nil {
		t.Fatalf("kustomize build config/default: %v\n%s", err, errOut)
	}
	return decode(t, out)
}

// The kustomize install is valid for the API server.
func TestKustomizeObjectsAreValid(t *testing.T) {
	objs := kustomizeBuild(t)
	var ns []*unstructured.Unstructured
	var rest []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			ns = append(ns, o)
		} else {
			rest = append(rest, o)
		}
	}
	NewWithT(t).Expect(ns).To(HaveLen(1))
	NewWithT(t).Expect(ns[0].GetName()).To(Equal("oauth-system"))
	applyDryRun(t, "oauth-system", append(ns, rest...))
}

// config/default installs what the chart installs with its defaults (release
// oauth-client-operator in oauth-system): the same objects, names and specs. Labels and
// annotations differ (Helm's own, the chart's checksum), and kustomize adds the
// Namespace and a content hash to the ConfigMap's name.
func TestKustomizeMatchesChartDefaults(t *testing.T) {
	g := NewWithT(t)
	chart := normalize(t, render(t, defaults))
	kust := normalize(t, kustomizeBuild(t))
	g.Expect(kust).To(HaveKey("Namespace/oauth-system"))
	delete(kust, "Namespace/oauth-system")
	g.Expect(keys(kust)).To(ConsistOf(keys(chart)))
	for k, want := range chart {
		g.Expect(kust[k]).To(Equal(want), "%s: config/default differs from the chart's defaults", k)
	}
}

var configMapHash = regexp.MustCompile(`-[a-z0-9]{10}$`)

// normalize keys objects by kind/namespace/name and drops what legitimately differs
// between a Helm and a kustomize install.
func normalize(t *testing.T, objs []*unstructured.Unstructured) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, o := range objs {
		c := o.DeepCopy()
		c.SetLabels(nil)
		c.SetAnnotations(nil)
		switch c.GetKind() {
		case "ConfigMap":
			c.SetName(configMapHash.ReplaceAllString(c.GetName(), ""))
			// Compare the config files as the operator reads them.
			data, _, _ := unstructured.NestedStringMap(c.Object, "data")
			cfg, err := config.Parse([]byte(data["config.yaml"]))
			if err != nil {
				t.Fatalf("ConfigMap %s: %v", o.GetName(), err)
			}
			js, _ := json.Marshal(cfg)
			_ = unstructured.SetNestedField(c.Object, string(js), "data", "config.yaml")
		case "Deployment":
			unstructured.RemoveNestedField(c.Object, "spec", "template", "metadata")
			vols, _, _ := unstructured.NestedSlice(c.Object, "spec", "template", "spec", "volumes")
			for _, v := range vols {
				if cm, ok := v.(map[string]any)["configMap"].(map[string]any); ok {
					cm["name"] = configMapHash.ReplaceAllString(cm["name"].(string), "")
				}
			}
			_ = unstructured.SetNestedSlice(c.Object, vols, "spec", "template", "spec", "volumes")
		}
		key := c.GetKind() + "/" + c.GetName()
		if c.GetNamespace() != "" {
			key = c.GetKind() + "/" + c.GetNamespace() + "/" + c.GetName()
		}
		if _, dup := out[key]; dup {
			t.Fatalf("two objects %s", key)
		}
		out[key] = c.Object
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
