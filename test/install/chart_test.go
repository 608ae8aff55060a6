//go:build integration

package install

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

func TestHelmLintStrict(t *testing.T) {
	helm(t, "lint", "--strict", chartDir)
	files, err := filepath.Glob(filepath.Join(root, chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values files in %s/ci: %v", chartDir, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			helm(t, "lint", "--strict", chartDir, "-f", f)
		})
	}
}

// typed converts a rendered object into its Go type.
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

// operatorConfig parses the rendered ConfigMap's config.yaml as the operator does.
func operatorConfig(t *testing.T, objs []*unstructured.Unstructured) *config.Config {
	t.Helper()
	cm := typed[corev1.ConfigMap](t, find(t, objs, "ConfigMap", "-config"))
	cfg, err := config.Parse([]byte(cm.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("the chart's config.yaml does not load: %v\n%s", err, cm.Data["config.yaml"])
	}
	return cfg
}

func manager(t *testing.T, objs []*unstructured.Unstructured) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	d := typed[appsv1.Deployment](t, find(t, objs, "Deployment"))
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(d.Spec.Template.Spec.Containers))
	}
	return d, d.Spec.Template.Spec.Containers[0]
}

func TestDefaults(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, defaults)
	g.Expect(kinds(objs)).To(ConsistOf(
		"CustomResourceDefinition/oauthapis.oauth.operator.dev",
		"CustomResourceDefinition/oauthclients.oauth.operator.dev",
		"CustomResourceDefinition/oauthtrustedissuers.oauth.operator.dev",
		"ClusterRole/oauth-client-operator-manager-role",
		"ClusterRoleBinding/oauth-client-operator-manager-rolebinding",
		"Role/oauth-client-operator-leader-election-role",
		"RoleBinding/oauth-client-operator-leader-election-rolebinding",
		"ServiceAccount/oauth-client-operator",
		"ConfigMap/oauth-client-operator-config",
		"Deployment/oauth-client-operator",
		"Service/oauth-client-operator",
		"Service/oauth-client-operator-metrics",
		"PodDisruptionBudget/oauth-client-operator",
	))
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" && o.GetKind() != "ClusterRole" && o.GetKind() != "ClusterRoleBinding" {
			g.Expect(o.GetNamespace()).To(Equal("oauth-system"), "%s %s", o.GetKind(), o.GetName())
		}
	}

	// The config file: the in-cluster Service URL as issuer, the config defaults.
	cfg := operatorConfig(t, objs)
	g.Expect(cfg.Issuer).To(Equal("http://oauth-client-operator.oauth-system.svc:8443"))
	g.Expect(cfg.TokenServer.Address).To(Equal(":8443"))
	g.Expect(cfg.TokenServer.TLS.Enabled()).To(BeFalse())
	g.Expect(*cfg).To(Equal(func() config.Config {
		want := config.Default()
		want.Issuer, want.TokenServer.Address = cfg.Issuer, ":8443"
		return want
	}()), "the chart's defaults are the operator's defaults")

	d, c := manager(t, objs)
	g.Expect(*d.Spec.Replicas).To(BeEquivalentTo(2))
	g.Expect(d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue()).To(Equal(0))
	g.Expect(d.Spec.Template.Annotations).To(HaveKey("checksum/config"))
	g.Expect(d.Spec.Template.Spec.ServiceAccountName).To(Equal("oauth-client-operator"))
	g.Expect(c.Image).To(Equal("ghcr.io/oauth-client-operator/oauth-client-operator:0.1.0"))
	g.Expect(c.Args).To(ContainElements(
		"--config=/etc/oauth-client-operator/config.yaml",
		"--leader-elect",
		"--metrics-bind-address=:8080",
		"--health-probe-bind-address=:8081",
	))
	g.Expect(c.Env).To(ContainElement(corev1.EnvVar{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}))
	g.Expect(c.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "config", MountPath: "/etc/oauth-client-operator/config.yaml", SubPath: "config.yaml", ReadOnly: true}))
	g.Expect(d.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("VolumeSource.ConfigMap.Name", "oauth-client-operator-config")))
	g.Expect(c.Ports).To(ConsistOf(
		corev1.ContainerPort{Name: "token", ContainerPort: 8443, Protocol: corev1.ProtocolTCP},
		corev1.ContainerPort{Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
		corev1.ContainerPort{Name: "health", ContainerPort: 8081, Protocol: corev1.ProtocolTCP},
	))
	g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(c.LivenessProbe.HTTPGet.Port).To(Equal(intstr.FromString("health")))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(c.ReadinessProbe.HTTPGet.Port).To(Equal(intstr.FromString("health")))
	g.Expect(c.Resources.Requests).NotTo(BeEmpty())
	g.Expect(c.Resources.Limits).To(HaveKey(corev1.ResourceMemory))

	// Hardened: non-root, read-only, no privileges, default seccomp.
	sc := c.SecurityContext
	g.Expect(*sc.RunAsNonRoot).To(BeTrue())
	g.Expect(*sc.ReadOnlyRootFilesystem).To(BeTrue())
	g.Expect(*sc.AllowPrivilegeEscalation).To(BeFalse())
	g.Expect(sc.Capabilities.Drop).To(Equal([]corev1.Capability{"ALL"}))
	g.Expect(sc.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	g.Expect(*d.Spec.Template.Spec.SecurityContext.RunAsNonRoot).To(BeTrue())

	// Replicas spread over nodes.
	pod := d.Spec.Template.Spec
	g.Expect(pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution).To(HaveLen(1))
	term := pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
	g.Expect(term.TopologyKey).To(Equal("kubernetes.io/hostname"))
	g.Expect(term.LabelSelector.MatchLabels).To(Equal(d.Spec.Selector.MatchLabels))
	g.Expect(pod.TopologySpreadConstraints).To(HaveLen(1))
	g.Expect(pod.TopologySpreadConstraints[0].TopologyKey).To(Equal("kubernetes.io/hostname"))
	g.Expect(pod.TopologySpreadConstraints[0].LabelSelector.MatchLabels).To(Equal(d.Spec.Selector.MatchLabels))

	pdb := typed[policyv1.PodDisruptionBudget](t, find(t, objs, "PodDisruptionBudget"))
	g.Expect(pdb.Spec.MinAvailable.IntValue()).To(Equal(1))
	g.Expect(pdb.Spec.Selector.MatchLabels).To(Equal(d.Spec.Selector.MatchLabels))

	token := typed[corev1.Service](t, find(t, objs, "Service", "oauth-client-operator"))
	g.Expect(token.Spec.Selector).To(Equal(d.Spec.Selector.MatchLabels))
	g.Expect(token.Spec.Ports).To(HaveLen(1))
	g.Expect(token.Spec.Ports[0].Port).To(BeEquivalentTo(8443))
	g.Expect(token.Spec.Ports[0].TargetPort).To(Equal(intstr.FromString("token")))
	metrics := typed[corev1.Service](t, find(t, objs, "Service", "-metrics"))
	g.Expect(metrics.Spec.Ports[0].Port).To(BeEquivalentTo(8080))
	g.Expect(metrics.Spec.Ports[0].TargetPort).To(Equal(intstr.FromString("metrics")))

	// CRDs are kept on uninstall.
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			g.Expect(o.GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"), o.GetName())
		}
	}

	// Leader election: Leases and Events in the release namespace only.
	role := typed[rbacv1.Role](t, find(t, objs, "Role"))
	g.Expect(role.Rules).To(ConsistOf(
		rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	))
	rb := typed[rbacv1.RoleBinding](t, find(t, objs, "RoleBinding"))
	g.Expect(rb.RoleRef.Name).To(Equal(role.Name))
	g.Expect(rb.Subjects).To(ConsistOf(rbacv1.Subject{Kind: "ServiceAccount", Name: "oauth-client-operator", Namespace: "oauth-system"}))
	crb := typed[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding"))
	g.Expect(crb.RoleRef.Name).To(Equal(find(t, objs, "ClusterRole").GetName()))
	g.Expect(crb.Subjects).To(Equal(rb.Subjects))
}

func TestNoWildcardRBAC(t *testing.T) {
	for _, r := range []release{defaults, allFeatures} {
		for _, o := range render(t, r) {
			var rules []rbacv1.PolicyRule
			switch o.GetKind() {
			case "ClusterRole":
				rules = typed[rbacv1.ClusterRole](t, o).Rules
			case "Role":
				rules = typed[rbacv1.Role](t, o).Rules
			default:
				continue
			}
			for _, rule := range rules {
				for _, v := range append(append(append([]string{}, rule.APIGroups...), rule.Resources...), rule.Verbs...) {
					if v == "*" {
						t.Errorf("%s %s: wildcard in rule %+v", o.GetKind(), o.GetName(), rule)
					}
				}
				// The only non-resource URLs: the ServiceAccount issuer's discovery
				// document and keys, read-only.
				for _, u := range rule.NonResourceURLs {
					if u != "/.well-known/openid-configuration" && u != "/openid/v1/jwks" {
						t.Errorf("%s %s: non-resource URL %q granted", o.GetKind(), o.GetName(), u)
					}
				}
				if len(rule.NonResourceURLs) > 0 && (len(rule.Verbs) != 1 || rule.Verbs[0] != "get") {
					t.Errorf("%s %s: non-resource URLs with verbs %v, want only get", o.GetKind(), o.GetName(), rule.Verbs)
				}
			}
		}
	}
}

func TestAllFeatures(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, allFeatures)
	for _, kind := range []string{"Certificate", "ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget", "PrometheusRule"} {
		g.Expect(countKind(objs, kind)).To(Equal(1), kind)
	}
	g.Expect(countKind(objs, "ConfigMap")).To(Equal(2), "the config file and the Grafana dashboard")

	cfg := operatorConfig(t, objs)
	g.Expect(cfg.Issuer).To(Equal("https://oauth.example.com"))
	g.Expect(cfg.TokenServer.Address).To(Equal(":9443"))
	g.Expect(cfg.TokenServer.TLS).To(Equal(config.TLS{
		CertFile: "/etc/oauth-client-operator/tls/tls.crt", KeyFile: "/etc/oauth-client-operator/tls/tls.key"}))
	g.Expect(cfg.Tokens.DefaultTTL.Duration).To(Equal(30 * time.Minute))
	g.Expect(cfg.Tokens.MaxTTL.Duration).To(Equal(12 * time.Hour))
	g.Expect(cfg.Signing.Algorithm).To(Equal(signing.RS256))
	g.Expect(cfg.Signing.RotationInterval.Duration).To(Equal(168 * time.Hour))
	g.Expect(cfg.Signing.PropagationDelay.Duration).To(Equal(15 * time.Minute))
	g.Expect(cfg.RateLimit).To(Equal(config.RateLimit{FailedAuthPerMinute: 5, FailedAuthBurst: 10, MaxTrackedKeys: 5000}))

	// The Certificate's Secret is what the pods mount where the config points.
	cert := find(t, objs, "Certificate")
	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	g.Expect(dnsNames).To(ContainElements("oc-all-oauth-client-operator.oauth-all.svc", "oauth.example.com"))
	issuerKind, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "kind")
	g.Expect(issuerKind).To(Equal("ClusterIssuer"))
	d, c := manager(t, objs)
	g.Expect(*d.Spec.Replicas).To(BeEquivalentTo(3))
	g.Expect(c.Image).To(Equal("ghcr.io/oauth-client-operator/oauth-client-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"))
	g.Expect(d.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("VolumeSource.Secret.SecretName", secretName)))
	g.Expect(c.VolumeMounts).To(ContainElement(HaveField("MountPath", "/etc/oauth-client-operator/tls")))
	g.Expect(c.Args).To(ContainElements("--zap-log-level=debug", "--zap-encoder=console", "--zap-stacktrace-level=panic"))
	g.Expect(c.Ports).To(ContainElement(corev1.ContainerPort{Name: "token", ContainerPort: 9443, Protocol: corev1.ProtocolTCP}))
	pod := d.Spec.Template.Spec
	g.Expect(pod.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution).To(HaveLen(1))
	g.Expect(pod.TopologySpreadConstraints).To(HaveLen(1))
	g.Expect(pod.TopologySpreadConstraints[0].TopologyKey).To(Equal("topology.kubernetes.io/zone"))
	g.Expect(pod.TopologySpreadConstraints[0].LabelSelector.MatchLabels).To(Equal(d.Spec.Selector.MatchLabels), "a constraint without a selector selects the release's pods")
	g.Expect(pod.ImagePullSecrets).To(ConsistOf(corev1.LocalObjectReference{Name: "registry-credentials"}))

	token := typed[corev1.Service](t, find(t, objs, "Service", "oc-all-oauth-client-operator"))
	g.Expect(token.Spec.Ports[0].Name).To(Equal("https"))
	g.Expect(token.Spec.Ports[0].Port).To(BeEquivalentTo(443))
	pdb := typed[policyv1.PodDisruptionBudget](t, find(t, objs, "PodDisruptionBudget"))
	g.Expect(pdb.Spec.MinAvailable.IntValue()).To(Equal(2))

	// The ServiceMonitor selects the metrics Service, and only it.
	sm := find(t, objs, "ServiceMonitor")
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	for _, o := range objs {
		if o.GetKind() != "Service" {
			continue
		}
		matches := true
		for k, v := range sel {
			if o.GetLabels()[k] != v {
				matches = false
			}
		}
		g.Expect(matches).To(Equal(strings.HasSuffix(o.GetName(), "-metrics")), "ServiceMonitor selects Service %s", o.GetName())
	}
	for _, o := range objs {
		g.Expect(o.GetLabels()).To(HaveKeyWithValue("team", "platform"), "commonLabels on %s %s", o.GetKind(), o.GetName())
	}
}

func TestMinimal(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, minimal)
	g.Expect(kinds(objs)).To(ConsistOf(
		"ConfigMap/oc-min-oauth-client-operator-config",
		"Deployment/oc-min-oauth-client-operator",
		"Service/oc-min-oauth-client-operator",
	))
	cfg := operatorConfig(t, objs)
	g.Expect(cfg.Issuer).To(Equal("https://oc-min-oauth-client-operator.oauth-min.svc:8443"), "https by default with TLS")
	g.Expect(cfg.TokenServer.TLS.Enabled()).To(BeTrue())
	d, c := manager(t, objs)
	g.Expect(d.Spec.Template.Spec.ServiceAccountName).To(Equal("oauth-client-operator"))
	g.Expect(c.Args).NotTo(ContainElement("--leader-elect"))
	g.Expect(c.Args).To(ContainElement("--metrics-bind-address=0"))
	g.Expect(d.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("VolumeSource.Secret.SecretName", "oauth-token-server-tls")))
	g.Expect(d.Spec.Template.Spec.Affinity).To(BeNil())
	g.Expect(d.Spec.Template.Spec.TopologySpreadConstraints).To(BeEmpty())
}

// Every setting of the operator's config file can be set from the chart's values: the
// rendered file names every field config.Config has. A new config field needs a value
// in values.yaml, values.schema.json and the config template of _helpers.tpl.
func TestChartRendersEveryConfigField(t *testing.T) {
	objs := render(t, defaults, "--set", "tokenServer.tls.enabled=true,tokenServer.tls.secretName=tls")
	cm := typed[corev1.ConfigMap](t, find(t, objs, "ConfigMap"))
	var rendered map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &rendered); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]any
	if err := json.Unmarshal(js, &all); err != nil {
		t.Fatal(err)
	}
	have := leaves("", rendered)
	for _, field := range leaves("", all) {
		if !slices.Contains(have, field) {
			t.Errorf("config field %s is not rendered by the chart: add it to values.yaml, values.schema.json and the config template in templates/_helpers.tpl", field)
		}
	}
}

// leaves lists the dotted paths of a decoded JSON object's non-object values.
func leaves(prefix string, m map[string]any) []string {
	var out []string
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			out = append(out, leaves(prefix+k+".", sub)...)
		} else {
			out = append(out, prefix+k)
		}
	}
	return out
}

func TestCRDOptions(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, defaults, "--set", "crds.keep=false")
	g.Expect(countKind(objs, "CustomResourceDefinition")).To(Equal(3))
	for _, o := range objs {
		g.Expect(o.GetAnnotations()).NotTo(HaveKey("helm.sh/resource-policy"), "%s %s", o.GetKind(), o.GetName())
	}
	objs = render(t, defaults, "--set", "crds.install=false")
	g.Expect(countKind(objs, "CustomResourceDefinition")).To(BeZero())
}

func TestConfigChecksumRollsPods(t *testing.T) {
	g := NewWithT(t)
	checksum := func(extra ...string) string {
		d, _ := manager(t, render(t, defaults, extra...))
		return d.Spec.Template.Annotations["checksum/config"]
	}
	first := checksum()
	g.Expect(first).NotTo(BeEmpty())
	g.Expect(checksum()).To(Equal(first), "stable across renders")
	g.Expect(checksum("--set", "config.tokens.defaultTTL=2h")).NotTo(Equal(first), "changes with the config")
	g.Expect(checksum("--set", "tokenServer.tls.enabled=true", "--set", "tokenServer.tls.secretName=x")).NotTo(Equal(first))
}

func TestIssuerURL(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "http://oauth-client-operator.oauth-system.svc:8443"},
		{[]string{"--set", "service.port=80"}, "http://oauth-client-operator.oauth-system.svc"},
		{[]string{"--set", "tokenServer.tls.enabled=true,tokenServer.tls.secretName=t,service.port=443"}, "https://oauth-client-operator.oauth-system.svc"},
		{[]string{"--set", "config.issuer=https://auth.example.com/oauth/"}, "https://auth.example.com/oauth"},
		{[]string{"--set", "fullnameOverride=auth"}, "http://auth.oauth-system.svc:8443"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			NewWithT(t).Expect(operatorConfig(t, render(t, defaults, tc.args...)).Issuer).To(Equal(tc.want))
		})
	}
}

func TestSchemaRejectsInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"replicas not a number", []string{"--set-string", "replicaCount=two"}, "at '/replicaCount': got string, want integer"},
		{"unknown algorithm", []string{"--set", "config.signing.algorithm=HS256"}, "at '/config/signing/algorithm': value must be one of 'ES256', 'RS256', 'EdDSA'"},
		{"negative port", []string{"--set", "tokenServer.port=-1"}, "at '/tokenServer/port': minimum: got -1, want 1"},
		{"port too large", []string{"--set", "service.port=70000"}, "at '/service/port': maximum"},
		{"misspelt value", []string{"--set", "replicas=2"}, "additional properties 'replicas' not allowed"},
		{"bad duration", []string{"--set", "config.tokens.defaultTTL=1hour"}, "at '/config/tokens/defaultTTL': '1hour' does not match pattern"},
		{"issuer not http(s)", []string{"--set", "config.issuer=ftp://example.com"}, "at '/config/issuer'"},
		{"TLS without certificate", []string{"--set", "tokenServer.tls.enabled=true"}, "at '/tokenServer/tls/secretName': minLength"},
		{"cert-manager without issuer", []string{"--set", "tokenServer.tls.enabled=true,tokenServer.tls.certManager.enabled=true"}, "at '/tokenServer/tls/certManager/issuerRef/name': minLength"},
		{"cert-manager without TLS", []string{"--set", "tokenServer.tls.certManager.enabled=true,tokenServer.tls.certManager.issuerRef.name=ca"}, "at '/tokenServer/tls/enabled': value must be true"},
		{"existing ServiceAccount without name", []string{"--set", "serviceAccount.create=false"}, "at '/serviceAccount/name': minLength"},
		{"unknown log level", []string{"--set", "logging.level=verbose"}, "at '/logging/level'"},
		{"body limit too small", []string{"--set", "tokenServer.maxBodyBytes=10"}, "at '/tokenServer/maxBodyBytes': minimum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			args := append([]string{"template", "oc", chartDir}, tc.args...)
			out, errOut, err := runTool(t, helmBin(t), args...)
			g.Expect(err).To(HaveOccurred(), "helm accepted invalid values; rendered:\n%s", out)
			g.Expect(err.Error()).To(Equal("exit status 1"))
			g.Expect(errOut).To(ContainSubstring("values don't meet the specifications of the schema"))
			g.Expect(errOut).To(ContainSubstring(tc.want))
		})
	}
}

// The chart's CRDs and ClusterRole are the generated ones (make chart), not copies that
// drifted: `make verify` checks the files, this checks what helm renders.
func TestChartMatchesGeneratedManifests(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, defaults)
	strip := func(u *unstructured.Unstructured) map[string]any {
		c := u.DeepCopy()
		c.SetLabels(nil)
		ann := c.GetAnnotations()
		delete(ann, "helm.sh/resource-policy")
		c.SetAnnotations(ann)
		return c.Object
	}
	crds, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(crds).NotTo(BeEmpty())
	for _, f := range crds {
		data, err := os.ReadFile(f)
		g.Expect(err).NotTo(HaveOccurred())
		for _, want := range decode(t, string(data)) {
			got := find(t, objs, "CustomResourceDefinition", want.GetName())
			g.Expect(strip(got)).To(Equal(want.Object), "CRD %s differs from %s: run `make manifests chart`", want.GetName(), f)
		}
	}
	g.Expect(countKind(objs, "CustomResourceDefinition")).To(Equal(len(crds)), "a CRD in the chart is not in config/crd/bases: run `make chart`")

	data, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	want := typed[rbacv1.ClusterRole](t, decode(t, string(data))[0])
	got := typed[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole"))
	g.Expect(got.Rules).To(Equal(want.Rules), "the chart's ClusterRole differs from config/rbac/role.yaml: run `make manifests chart`")
}
