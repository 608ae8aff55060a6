//go:build integration

package install

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/operator"
)

// withMonitoring turns on the Grafana dashboard and the PrometheusRule.
var withMonitoring = []string{"--set", "grafana.dashboard.enabled=true,prometheusRule.enabled=true"}

// dashboardFile is the dashboard the chart ships.
const dashboardFile = "dashboards/oauth-client-operator.json"

// The alerts the chart's PrometheusRule defines.
var alertNames = []string{
	"OAuthOperatorDown",
	"OAuthOperatorReplicaDown",
	"OAuthTokenServerErrors",
	"OAuthTokenFailureRatioHigh",
	"OAuthSigningKeyTooOld",
	"OAuthReconcileErrors",
	"OAuthNoLeader",
}

// alertRule is one rule of a PrometheusRule's groups (only alerting rules here).
type alertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type ruleGroup struct {
	Name  string      `json:"name"`
	Rules []alertRule `json:"rules"`
}

// ruleGroups returns the groups of the rendered PrometheusRule.
func ruleGroups(t *testing.T, objs []*unstructured.Unstructured) []ruleGroup {
	t.Helper()
	pr := find(t, objs, "PrometheusRule")
	raw, found, err := unstructured.NestedSlice(pr.Object, "spec", "groups")
	if err != nil || !found {
		t.Fatalf("PrometheusRule %s has no spec.groups: %v", pr.GetName(), err)
	}
	js, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	var groups []ruleGroup
	if err := json.Unmarshal(js, &groups); err != nil {
		t.Fatalf("PrometheusRule %s: %v", pr.GetName(), err)
	}
	return groups
}

// alerts returns the rendered alerting rules by name.
func alerts(t *testing.T, objs []*unstructured.Unstructured) map[string]alertRule {
	t.Helper()
	out := map[string]alertRule{}
	for _, g := range ruleGroups(t, objs) {
		for _, r := range g.Rules {
			if _, dup := out[r.Alert]; dup {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			out[r.Alert] = r
		}
	}
	return out
}

// dashboard returns the dashboard ConfigMap and its decoded JSON.
func dashboard(t *testing.T, objs []*unstructured.Unstructured) (*corev1.ConfigMap, map[string]any) {
	t.Helper()
	cm := typed[corev1.ConfigMap](t, find(t, objs, "ConfigMap", "-dashboard"))
	if len(cm.Data) != 1 {
		t.Fatalf("ConfigMap %s: want one dashboard, got keys %v", cm.Name, slices.Collect(maps.Keys(cm.Data)))
	}
	var dash map[string]any
	if err := json.Unmarshal([]byte(cm.Data["oauth-client-operator.json"]), &dash); err != nil {
		t.Fatalf("the dashboard in ConfigMap %s is not JSON: %v", cm.Name, err)
	}
	return cm, dash
}

func TestMonitoringIsOffByDefault(t *testing.T) {
	for name, r := range map[string]release{"defaults": defaults, "minimal": minimal} {
		t.Run(name, func(t *testing.T) {
			objs := render(t, r)
			NewWithT(t).Expect(countKind(objs, "PrometheusRule")).To(BeZero())
			for _, o := range objs {
				if o.GetKind() == "ConfigMap" {
					NewWithT(t).Expect(o.GetName()).NotTo(HaveSuffix("-dashboard"))
					NewWithT(t).Expect(o.GetLabels()).NotTo(HaveKey("grafana_dashboard"))
				}
			}
		})
	}
}

func TestGrafanaDashboardConfigMap(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, defaults, withMonitoring...)
	cm, dash := dashboard(t, objs)
	g.Expect(cm.Name).To(Equal("oauth-client-operator-dashboard"))
	g.Expect(cm.Namespace).To(Equal("oauth-system"))
	g.Expect(cm.Labels).To(HaveKeyWithValue("grafana_dashboard", "1"), "the Grafana sidecar's default label")
	g.Expect(cm.Labels).To(HaveKeyWithValue("app.kubernetes.io/instance", "oauth-client-operator"))

	// The ConfigMap carries the chart's file unchanged (Helm does not template it).
	file, err := os.ReadFile(filepath.Join(root, chartDir, dashboardFile))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cm.Data["oauth-client-operator.json"]).To(Equal(strings.TrimRight(string(file), "\n")))

	g.Expect(dash).To(HaveKeyWithValue("uid", "oauth-client-operator"))
	g.Expect(dash).To(HaveKeyWithValue("title", Not(BeEmpty())))
	var titles []string
	for _, p := range dashboardPanels(dash) {
		titles = append(titles, p["title"].(string))
		if _, ok := p["targets"]; ok {
			g.Expect(p["datasource"]).To(Equal(map[string]any{"type": "prometheus", "uid": "${datasource}"}),
				"panel %q queries the dashboard's data source variable", p["title"])
		}
	}
	g.Expect(titles).To(ContainElements(
		"Tokens issued by audience", "Refused requests by error and reason", "Token request latency",
		"Signing-key age", "OAuthClients", "Reconcile errors", "Leader",
	))

	// The label, its value, the namespace and annotations are configurable.
	objs = render(t, defaults, "--set", "grafana.dashboard.enabled=true,grafana.dashboard.label=dashboards,grafana.dashboard.labelValue=oauth,grafana.dashboard.namespace=monitoring,grafana.dashboard.annotations.grafana_folder=Platform")
	cm, _ = dashboard(t, objs)
	g.Expect(cm.Namespace).To(Equal("monitoring"))
	g.Expect(cm.Labels).To(HaveKeyWithValue("dashboards", "oauth"))
	g.Expect(cm.Labels).NotTo(HaveKey("grafana_dashboard"))
	g.Expect(cm.Annotations).To(Equal(map[string]string{"grafana_folder": "Platform"}))
	g.Expect(countKind(objs, "PrometheusRule")).To(BeZero(), "the dashboard and the rules are independent")
}

// dashboardPanels lists the dashboard's panels, those inside rows included.
func dashboardPanels(dash map[string]any) []map[string]any {
	var out []map[string]any
	var walk func(list any)
	walk = func(list any) {
		items, _ := list.([]any)
		for _, it := range items {
			p, ok := it.(map[string]any)
			if !ok {
				continue
			}
			out = append(out, p)
			walk(p["panels"])
		}
	}
	walk(dash["panels"])
	return out
}

// query is a PromQL expression of the dashboard or the rules, and where it is.
type query struct {
	where, expr string
}

// grafanaBuiltins are the Grafana variables the dashboard may use, with values that
// stand in for them when the query is parsed.
var grafanaBuiltins = map[string]string{"__rate_interval": "2m", "__interval": "30s", "__range": "6h"}

var (
	grafanaVar   = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[a-z]+)?\}|\$([A-Za-z0-9_]+)`)
	labelValues  = regexp.MustCompile(`^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)$`)
	targetLabels = []string{"job", "namespace", "pod", "instance", "service", "endpoint", "container"}
)

// dashboardQueries returns every PromQL expression of the dashboard: the panels'
// targets and the template variables' label_values() queries, with each variable
// replaced by a sample value. A variable the dashboard does not define fails the test.
func dashboardQueries(t *testing.T, dash map[string]any) []query {
	t.Helper()
	vars := maps.Clone(grafanaBuiltins)
	var templated []query
	templating, _ := dash["templating"].(map[string]any)
	list, _ := templating["list"].([]any)
	for _, it := range list {
		v := it.(map[string]any)
		name := v["name"].(string)
		switch v["type"] {
		case "datasource":
			vars[name] = "prometheus"
		case "query":
			vars[name] = "sample-" + name
			q := v["query"]
			if m, ok := q.(map[string]any); ok {
				q = m["query"]
			}
			s, _ := q.(string)
			m := labelValues.FindStringSubmatch(s)
			if m == nil {
				t.Errorf("variable %s: query %q is not label_values(<selector>, <label>)", name, s)
				continue
			}
			templated = append(templated, query{"variable " + name, m[1]})
		default:
			t.Errorf("variable %s: unexpected type %v", name, v["type"])
		}
	}
	var out []query
	for _, p := range dashboardPanels(dash) {
		targets, _ := p["targets"].([]any)
		for _, it := range targets {
			tg, _ := it.(map[string]any)
			where := fmt.Sprintf("panel %q target %v", p["title"], tg["refId"])
			expr, _ := tg["expr"].(string)
			if expr == "" {
				t.Errorf("%s: no PromQL expression", where)
				continue
			}
			out = append(out, query{where, expr})
		}
	}
	out = append(out, templated...)
	for i, q := range out {
		out[i].expr = grafanaVar.ReplaceAllStringFunc(q.expr, func(s string) string {
			m := grafanaVar.FindStringSubmatch(s)
			name := m[1] + m[2]
			v, ok := vars[name]
			if !ok {
				t.Errorf("%s: variable $%s is not defined by the dashboard", q.where, name)
			}
			return v
		})
	}
	return out
}

// ruleQueries returns the expressions of the rendered alerts.
func ruleQueries(t *testing.T, objs []*unstructured.Unstructured) []query {
	t.Helper()
	var out []query
	for _, g := range ruleGroups(t, objs) {
		for _, r := range g.Rules {
			out = append(out, query{"alert " + r.Alert, r.Expr})
		}
	}
	return out
}

var promql = parser.NewParser(parser.Options{})

// parseQuery parses a PromQL expression as a stock Prometheus does (no experimental
// features) and fails the test when it does not parse.
func parseQuery(t *testing.T, q query) parser.Expr {
	t.Helper()
	expr, err := promql.ParseExpr(q.expr)
	if err != nil {
		t.Errorf("%s: PromQL does not parse: %v\n%s", q.where, err, q.expr)
		return nil
	}
	return expr
}

// Every PromQL expression of the dashboard and of the alerts parses with Prometheus'
// own parser; every alert evaluates to an instant vector.
func TestMonitoringQueriesParse(t *testing.T) {
	g := NewWithT(t)
	for name, r := range map[string]release{"defaults": defaults, "all-features": allFeatures} {
		objs := render(t, r, withMonitoring...)
		_, dash := dashboard(t, objs)
		dq := dashboardQueries(t, dash)
		g.Expect(len(dq)).To(BeNumerically(">=", 15), "%s: the dashboard's queries", name)
		for _, q := range dq {
			parseQuery(t, q)
		}
		rq := ruleQueries(t, objs)
		g.Expect(rq).To(HaveLen(len(alertNames)), name)
		for _, q := range rq {
			if expr := parseQuery(t, q); expr != nil && expr.Type() != parser.ValueTypeVector {
				t.Errorf("%s %s: evaluates to a %s, want an instant vector", name, q.where, expr.Type())
			}
		}
	}
	// The check is not vacuous.
	_, err := promql.ParseExpr(`sum by (audience) (rate(oauth_tokens_issued_total{job="x"}[$__rate_interval]))`)
	g.Expect(err).To(HaveOccurred(), "an unreplaced Grafana variable is not PromQL")
}

func TestPrometheusRule(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, defaults, withMonitoring...)
	pr := find(t, objs, "PrometheusRule")
	g.Expect(pr.GetAPIVersion()).To(Equal("monitoring.coreos.com/v1"))
	g.Expect(pr.GetName()).To(Equal("oauth-client-operator"))
	g.Expect(pr.GetNamespace()).To(Equal("oauth-system"))
	rules := alerts(t, objs)
	g.Expect(slices.Sorted(maps.Keys(rules))).To(ConsistOf(alertNames))

	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	g.Expect(err).NotTo(HaveOccurred())
	anchors := markdownAnchors(string(readme))
	for name, r := range rules {
		g.Expect(r.Labels).To(HaveKeyWithValue("severity", BeElementOf("critical", "warning")), name)
		g.Expect(r.Annotations).To(HaveKeyWithValue("summary", Not(BeEmpty())), name)
		g.Expect(r.Annotations).To(HaveKeyWithValue("description", Not(BeEmpty())), name)
		g.Expect(r.For).NotTo(BeEmpty(), "%s: an alert waits before it fires", name)
		// The runbook is a section of the README named after the alert.
		base, anchor, ok := strings.Cut(r.Annotations["runbook_url"], "#")
		g.Expect(ok).To(BeTrue(), "%s: runbook_url %q has no anchor", name, r.Annotations["runbook_url"])
		g.Expect(base).To(Equal("https://github.com/oauth-client-operator/oauth-client-operator/blob/main/README.md"))
		g.Expect(anchor).To(Equal(strings.ToLower(name)), name)
		g.Expect(anchors).To(ContainElement(anchor), "%s: the README has no section #%s", name, anchor)

		// Every series an alert reads is this release's: selected by the job and namespace
		// a scrape through the chart's ServiceMonitor gives them (other operators export
		// controller-runtime metrics of the same names).
		expr := parseQuery(t, query{name, r.Expr})
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				g.Expect(matchers(vs)).To(ContainElements(`job="oauth-client-operator-metrics"`, `namespace="oauth-system"`), "%s: %s", name, vs)
			}
			return nil
		})
	}
	g.Expect(rules["OAuthOperatorDown"].Labels["severity"]).To(Equal("critical"))
	g.Expect(rules["OAuthTokenServerErrors"].Labels["severity"]).To(Equal("critical"))
	g.Expect(rules["OAuthTokenServerErrors"].Expr).To(ContainSubstring(`error="server_error"`))

	// The ServiceMonitor's job label is the metrics Service's name.
	objs = render(t, defaults, append(withMonitoring, "--set", "metrics.serviceMonitor.enabled=true")...)
	g.Expect(find(t, objs, "Service", "-metrics").GetName()).To(Equal("oauth-client-operator-metrics"))
	g.Expect(find(t, objs, "ServiceMonitor").Object["spec"]).NotTo(HaveKey("jobLabel"), "the job label is the Service name")
}

// matchers returns a selector's label matchers as strings, the metric name left out.
func matchers(vs *parser.VectorSelector) []string {
	var out []string
	for _, m := range vs.LabelMatchers {
		if m.Name != model.MetricNameLabel {
			out = append(out, m.String())
		}
	}
	return out
}

// markdownAnchors returns the anchors GitHub gives the headings of a Markdown file.
func markdownAnchors(md string) []string {
	var out []string
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	sc := bufio.NewScanner(strings.NewReader(md))
	fence := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			fence = !fence
		}
		if fence || !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		heading = strings.ToLower(drop.ReplaceAllString(heading, ""))
		out = append(out, strings.ReplaceAll(heading, " ", "-"))
	}
	return out
}

func TestPrometheusRuleOptions(t *testing.T) {
	g := NewWithT(t)

	// The signing-key age threshold is rotationInterval + propagationDelay + the margin,
	// in seconds, from the same values the operator's config file is rendered from.
	for _, tc := range []struct {
		name, margin string
		args         []string
	}{
		{"defaults", "1h", nil},
		{"all-features", "2h", []string{"-f", valuesFile("all-features-values.yaml")}},
		{"fractions and units", "44m59s1000ms", []string{"--set", "config.signing.rotationInterval=1.5h,config.signing.propagationDelay=5m0.25s,prometheusRule.signingKeyAgeMargin=44m59s1000ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, defaults, append(append([]string{}, tc.args...), withMonitoring...)...)
			// As the operator reads the same values from its config file.
			cfg := operatorConfig(t, objs)
			margin, err := time.ParseDuration(tc.margin)
			if err != nil {
				t.Fatal(err)
			}
			want := cfg.Signing.RotationInterval.Duration + cfg.Signing.PropagationDelay.Duration + margin
			expr := alerts(t, objs)["OAuthSigningKeyTooOld"].Expr
			_, threshold, ok := strings.Cut(expr, " > ")
			NewWithT(t).Expect(ok).To(BeTrue(), expr)
			NewWithT(t).Expect(threshold).To(Equal(strconv.FormatInt(int64(want.Round(time.Second)/time.Second), 10)), expr)
		})
	}

	objs := render(t, defaults, "--set", strings.Join([]string{
		"prometheusRule.enabled=true",
		`prometheusRule.selector=service="oauth"`,
		"prometheusRule.labels.release=prometheus",
		"prometheusRule.alertLabels.team=platform",
		"prometheusRule.runbookBaseURL=https://wiki.example.com/oauth",
		"prometheusRule.failurePercent=50",
		"leaderElection.enabled=false",
	}, ","))
	g.Expect(find(t, objs, "PrometheusRule").GetLabels()).To(HaveKeyWithValue("release", "prometheus"))
	rules := alerts(t, objs)
	g.Expect(rules).NotTo(HaveKey("OAuthNoLeader"), "no leader election, no leader to lose")
	g.Expect(rules).To(HaveLen(len(alertNames) - 1))
	for name, r := range rules {
		g.Expect(r.Labels).To(HaveKeyWithValue("team", "platform"), name)
		g.Expect(r.Annotations["runbook_url"]).To(Equal("https://wiki.example.com/oauth#"+strings.ToLower(name)), name)
		parser.Inspect(parseQuery(t, query{name, r.Expr}), func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				g.Expect(matchers(vs)).To(ContainElement(`service="oauth"`), "%s: %s", name, vs)
				g.Expect(matchers(vs)).NotTo(ContainElement(HavePrefix("job=")), "%s: %s", name, vs)
			}
			return nil
		})
	}
	g.Expect(rules["OAuthTokenFailureRatioHigh"].Expr).To(ContainSubstring(") > 0.5\n"))

	// The alerts are about the metrics: without them the chart refuses the rules.
	for _, tc := range []struct{ args, want string }{
		{"prometheusRule.enabled=true,metrics.enabled=false", "at '/metrics/enabled': value must be true"},
		{"prometheusRule.failurePercent=200", "at '/prometheusRule/failurePercent': maximum"},
		{"prometheusRule.signingKeyAgeMargin=1day", "at '/prometheusRule/signingKeyAgeMargin'"},
		{"grafana.dashboard.label=not/a/label", "at '/grafana/dashboard/label'"},
	} {
		_, errOut, err := runTool(t, helmBin(t), "template", "oc", chartDir, "--set", tc.args)
		g.Expect(err).To(HaveOccurred(), tc.args)
		g.Expect(errOut).To(ContainSubstring(tc.want), tc.args)
	}
}

// Every metric the dashboard and the alerts query is one a running operator exposes:
// the operator is started on the test API server with the chart's config, issues a
// token, refuses a request, rotates a client secret and becomes the leader, so that
// every labelled series exists; then its metrics endpoint is scraped. Label names the
// queries select or group by must be on those series too (or be the target labels
// Prometheus adds). Only `up` is not the operator's: Prometheus records it per scrape.
func TestMonitoringMetricsExist(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	r := release{name: "oauth-client-operator", namespace: "oauth-metrics"}
	ensureNamespace(t, r.namespace)
	objs := render(t, r, withMonitoring...)

	// A namespace and an API, deleted after the operator has stopped (cleanups run in
	// reverse order), so that it does not write into a namespace being deleted.
	shop := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "metrics-shop-", Labels: map[string]string{"oauth.operator.dev/metrics-api": "allowed"}}}
	g.Expect(admin.Create(ctx, shop)).To(Succeed())
	t.Cleanup(func() { _ = admin.Delete(context.Background(), shop) })
	api := &oauthv1alpha1.OAuthAPI{ObjectMeta: metav1.ObjectMeta{Name: "metrics-api"}, Spec: oauthv1alpha1.OAuthAPISpec{
		AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"oauth.operator.dev/metrics-api": "allowed"}}},
	}}
	g.Expect(admin.Create(ctx, api)).To(Succeed())
	t.Cleanup(func() { _ = admin.Delete(context.Background(), api) })

	// The operator with the chart's config file, its servers on loopback.
	cfg := operatorConfig(t, objs)
	tokenAddr, probeAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	cfg.Issuer, cfg.TokenServer.Address = "http://"+tokenAddr, tokenAddr
	startOperator(t, env.Config, operator.Options{
		Config: cfg, Namespace: r.namespace, MetricsAddr: metricsAddr, ProbeAddr: probeAddr,
		LeaderElection: true, SkipControllerNameValidation: true,
	})

	// A client, a token, a refusal and a secret rotation.
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: shop.Name, Name: "erp-sync"},
		Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{"metrics-api"}}}
	g.Expect(admin.Create(ctx, oc)).To(Succeed())
	// envtest runs no namespace controller: the namespace stays Terminating with its
	// objects, and a client left in it would be reconciled by the next test's operator.
	t.Cleanup(func() { _ = admin.Delete(context.Background(), oc) })
	secret := &corev1.Secret{}
	g.Eventually(func() error {
		return admin.Get(ctx, types.NamespacedName{Namespace: shop.Name, Name: "erp-sync"}, secret)
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	tokenRequest := func(clientSecret string) (int, error) {
		body := fmt.Sprintf(`{"grant_type": "client_credentials", "client_id": %q, "client_secret": %q}`, secret.Data["client_id"], clientSecret)
		resp, err := http.Post(string(secret.Data["token_url"]), "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	g.Eventually(func() (int, error) { return tokenRequest(string(secret.Data["client_secret"])) },
		10*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK))
	g.Expect(tokenRequest("wrong")).To(Equal(http.StatusUnauthorized))
	g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(oc), oc)).To(Succeed())
	patch := client.MergeFrom(oc.DeepCopy())
	oc.Annotations = map[string]string{oauthv1alpha1.RotateSecretAnnotation: "metrics-test"}
	g.Expect(admin.Patch(ctx, oc, patch)).To(Succeed())

	// Scrape until the labelled series of all that are there.
	var families map[string]*dto.MetricFamily
	g.Eventually(func() error {
		var err error
		families, err = scrape("http://" + metricsAddr + "/metrics")
		if err != nil {
			return err
		}
		for _, want := range []string{
			`oauth_tokens_issued_total{audience="metrics-api"}`,
			`oauth_token_requests_failed_total{error="invalid_client"}`,
			`oauth_client_secret_rotations_total{trigger="annotation"}`,
			`leader_election_master_status{name="oauth-client-operator.oauth.operator.dev"}`,
		} {
			name, labels, _ := strings.Cut(strings.TrimSuffix(want, "}"), "{")
			if v, ok := sample(families[name], labels); !ok || v < 1 {
				return fmt.Errorf("no %s ≥ 1 yet", want)
			}
		}
		return nil
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())

	exposed := seriesNames(families)
	t.Logf("the operator exposes %d series names", len(exposed))
	var used []query
	_, dash := dashboard(t, objs)
	used = append(used, dashboardQueries(t, dash)...)
	used = append(used, ruleQueries(t, objs)...)
	referenced := map[string]bool{}
	for _, q := range used {
		expr := parseQuery(t, q)
		if expr == nil {
			continue
		}
		for _, problem := range checkAgainst(expr, exposed) {
			t.Errorf("%s: %s\n%s", q.where, problem, q.expr)
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				referenced[metricName(vs)] = true
			}
			return nil
		})
	}

	// The other way round: the dashboard shows every metric of the operator's own.
	dashboardRefs := map[string]bool{}
	for _, q := range dashboardQueries(t, dash) {
		if expr := parseQuery(t, q); expr != nil {
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					dashboardRefs[strings.TrimSuffix(strings.TrimSuffix(metricName(vs), "_bucket"), "_count")] = true
				}
				return nil
			})
		}
	}
	for name := range families {
		if strings.HasPrefix(name, "oauth_") && !dashboardRefs[name] {
			t.Errorf("the dashboard shows no panel of the operator's metric %s", name)
		}
	}
	g.Expect(referenced).To(HaveKey("leader_election_master_status"))
	g.Expect(referenced).To(HaveKey("controller_runtime_reconcile_errors_total"))

	// The leader reports 1 (OAuthNoLeader's sum is 0 only when no replica leads).
	leading, ok := sample(families["leader_election_master_status"], `name="oauth-client-operator.oauth.operator.dev"`)
	g.Expect(ok).To(BeTrue())
	g.Expect(leading).To(Equal(1.0))

	// The check is not vacuous: a misspelt metric or label is caught.
	for _, bad := range []string{
		`sum(rate(oauth_tokens_issued{job="x"}[5m]))`,
		`sum by (code) (rate(oauth_token_requests_failed_total[5m]))`,
		`oauth_clients{client_id="x"}`,
		`histogram_quantile(0.9, sum by (le) (rate(oauth_token_request_duration_seconds[5m])))`,
	} {
		expr, err := promql.ParseExpr(bad)
		g.Expect(err).NotTo(HaveOccurred(), bad)
		g.Expect(checkAgainst(expr, exposed)).NotTo(BeEmpty(), bad)
	}
}

// scrape fetches and parses a Prometheus text exposition.
func scrape(url string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse metrics of %s: %w", url, err)
	}
	return families, nil
}

// sample returns the value of the family's series whose labels include the given
// `name="value"` pairs (comma-separated), and whether there is one.
func sample(f *dto.MetricFamily, labels string) (float64, bool) {
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		match := true
		for _, pair := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
			if have[k] != strings.Trim(v, `"`) {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// seriesNames maps each series name a scrape of these families stores (a histogram's
// _bucket, _count and _sum; a summary's _count and _sum) to its label names.
func seriesNames(families map[string]*dto.MetricFamily) map[string][]string {
	out := map[string][]string{}
	add := func(name string, labels []string) {
		for _, l := range labels {
			if !slices.Contains(out[name], l) {
				out[name] = append(out[name], l)
			}
		}
		if out[name] == nil {
			out[name] = []string{}
		}
	}
	for name, f := range families {
		var labels []string
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !slices.Contains(labels, lp.GetName()) {
					labels = append(labels, lp.GetName())
				}
			}
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			add(name+"_bucket", append(slices.Clone(labels), "le"))
			add(name+"_count", labels)
			add(name+"_sum", labels)
		case dto.MetricType_SUMMARY:
			add(name, append(slices.Clone(labels), "quantile"))
			add(name+"_count", labels)
			add(name+"_sum", labels)
		default:
			add(name, labels)
		}
	}
	for _, l := range out {
		sort.Strings(l)
	}
	return out
}

func metricName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel {
			return m.Value
		}
	}
	return ""
}

// checkAgainst reports what an expression needs that the exposed series do not have:
// a metric name (other than Prometheus' own `up`), or a label it selects or groups by
// that no series it reads carries (other than the target labels a scrape adds).
func checkAgainst(expr parser.Expr, exposed map[string][]string) []string {
	var problems []string
	known := func(label string, names []string) bool {
		if slices.Contains(targetLabels, label) {
			return true
		}
		for _, n := range names {
			if n == "up" || slices.Contains(exposed[n], label) {
				return true
			}
		}
		return false
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			name := metricName(n)
			if _, ok := exposed[name]; !ok && name != "up" {
				problems = append(problems, fmt.Sprintf("metric %q is not exposed by the operator", name))
				return nil
			}
			for _, m := range n.LabelMatchers {
				if m.Name != model.MetricNameLabel && !known(m.Name, []string{name}) {
					problems = append(problems, fmt.Sprintf("%s has no label %q", name, m.Name))
				}
			}
		case *parser.AggregateExpr:
			var names []string
			parser.Inspect(n.Expr, func(c parser.Node, _ []parser.Node) error {
				if vs, ok := c.(*parser.VectorSelector); ok {
					names = append(names, metricName(vs))
				}
				return nil
			})
			for _, l := range n.Grouping {
				if !known(l, names) {
					problems = append(problems, fmt.Sprintf("%s groups by %q, which none of %v has", n.Op, l, names))
				}
			}
		}
		return nil
	})
	return problems
}
