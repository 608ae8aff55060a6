//go:build integration

package install

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"
)

// promtoolBin is bin/promtool, which `make promtool` (and so `make test`) installs.
func promtoolBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(root, "bin", "promtool")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("promtool not found at %s: run `make promtool` (make test does it)", p)
	}
	return p
}

// writeRuleFile writes the rendered PrometheusRule's groups as a Prometheus rule file.
func writeRuleFile(t *testing.T, path string, groups []ruleGroup) {
	t.Helper()
	data, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// promtool check rules accepts the alerts (syntax, label and annotation templates,
// lint), and promtool test rules shows each fires when it should and not otherwise
// (testdata/alerts-test.yaml, on the rules of the chart's defaults).
func TestPromtoolRules(t *testing.T) {
	promtool := promtoolBin(t)
	for name, r := range map[string]release{"defaults": defaults, "all-features": allFeatures} {
		t.Run("check "+name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rules.yaml")
			writeRuleFile(t, path, ruleGroups(t, render(t, r, withMonitoring...)))
			out, errOut, err := runTool(t, promtool, "check", "rules", "--lint=all", "--lint-fatal", path)
			if err != nil {
				t.Fatalf("promtool check rules: %v\n%s%s", err, out, errOut)
			}
			NewWithT(t).Expect(out).To(ContainSubstring(fmt.Sprintf("SUCCESS: %d rules found", len(alertNames))))
		})
	}

	t.Run("check refuses a broken rule", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "rules.yaml")
		writeRuleFile(t, path, []ruleGroup{{Name: "broken", Rules: []alertRule{{Alert: "Broken", Expr: "sum(up{job=\"x\"}"}}}})
		_, _, err := runTool(t, promtool, "check", "rules", path)
		NewWithT(t).Expect(err).To(HaveOccurred())
	})

	t.Run("unit tests", func(t *testing.T) {
		// The annotations' text is not compared (the tests would repeat it); their
		// templates are checked above and their presence by TestPrometheusRule.
		groups := ruleGroups(t, render(t, defaults, withMonitoring...))
		for i := range groups {
			for j := range groups[i].Rules {
				groups[i].Rules[j].Annotations = nil
			}
		}
		dir := t.TempDir()
		writeRuleFile(t, filepath.Join(dir, "rules.yaml"), groups)
		tests, err := os.ReadFile(filepath.Join(root, "test", "install", "testdata", "alerts-test.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "alerts-test.yaml"), tests, 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := runTool(t, promtool, "test", "rules", filepath.Join(dir, "alerts-test.yaml"))
		if err != nil {
			t.Fatalf("promtool test rules: %v\n%s%s", err, out, errOut)
		}
		// Every alert is tested.
		for _, name := range alertNames {
			NewWithT(t).Expect(string(tests)).To(ContainSubstring("alertname: "+name+"\n"), "testdata/alerts-test.yaml tests %s", name)
		}
	})
}
