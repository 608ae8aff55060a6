//go:build integration

package install

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
)

// helmCLI runs bin/helm against the envtest API server, with its own kubeconfig and
// Helm home folders.
type helmCLI struct {
	t   *testing.T
	env []string
}

func newHelmCLI(t *testing.T) *helmCLI {
	t.Helper()
	user, err := env.AddUser(envtest.User{Name: "helm", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return &helmCLI{t: t, env: append(os.Environ(),
		"KUBECONFIG="+path,
		"HELM_CACHE_HOME="+filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HELM_DATA_HOME="+filepath.Join(dir, "data"),
	)}
}

func (h *helmCLI) run(args ...string) (string, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmBin(h.t), args...)
	cmd.Dir, cmd.Env = root, h.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (h *helmCLI) must(args ...string) string {
	h.t.Helper()
	out, err := h.run(args...)
	if err != nil {
		h.t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// helm install, upgrade and uninstall on a real API server: the release's objects are
// created, NOTES.txt tells how to get a first token, a config change rolls the pods,
// invalid values are refused before anything changes, and uninstalling keeps the CRDs.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	h := newHelmCLI(t)
	const name, ns = "oauth-client-operator", "oauth-helm"

	// The CRDs already exist (testenv installed them, as a previous install would
	// have): let the release adopt them, as Helm does for objects labelled for it.
	for _, crd := range []string{"oauthapis.oauth.operator.dev", "oauthclients.oauth.operator.dev", "oauthtrustedissuers.oauth.operator.dev"} {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("apiextensions.k8s.io/v1")
		u.SetKind("CustomResourceDefinition")
		g.Expect(admin.Get(ctx, types.NamespacedName{Name: crd}, u)).To(Succeed())
		patch := client.MergeFrom(u.DeepCopy())
		labels := u.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels["app.kubernetes.io/managed-by"] = "Helm"
		u.SetLabels(labels)
		ann := u.GetAnnotations()
		ann["meta.helm.sh/release-name"], ann["meta.helm.sh/release-namespace"] = name, ns
		u.SetAnnotations(ann)
		g.Expect(admin.Patch(ctx, u, patch)).To(Succeed())
	}

	out := h.must("install", name, chartDir, "--namespace", ns, "--create-namespace")
	g.Expect(out).To(ContainSubstring("STATUS: deployed"))
	g.Expect(out).To(ContainSubstring("kubectl -n oauth-helm port-forward service/oauth-client-operator 8443:8443"))
	g.Expect(out).To(ContainSubstring(`{\"grant_type\": \"client_credentials\", \"client_id\": \"$CLIENT_ID\", \"client_secret\": \"$CLIENT_SECRET\"}`))
	g.Expect(out).To(ContainSubstring("Token URL:  http://oauth-client-operator.oauth-helm.svc:8443/oauth2-token"))
	g.Expect(out).To(ContainSubstring("kind: OAuthAPI"))
	g.Expect(out).To(ContainSubstring("kind: OAuthClient"))

	deploy := &appsv1.Deployment{}
	g.Expect(admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, deploy)).To(Succeed())
	checksum := deploy.Spec.Template.Annotations["checksum/config"]
	g.Expect(checksum).NotTo(BeEmpty())

	// Upgrade with a new token lifetime: the ConfigMap changes and the pods roll.
	h.must("upgrade", name, chartDir, "--namespace", ns, "--reuse-values", "--set", "config.tokens.defaultTTL=2h")
	cm := &corev1.ConfigMap{}
	g.Expect(admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name + "-config"}, cm)).To(Succeed())
	cfg, err := config.Parse([]byte(cm.Data["config.yaml"]))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cfg.Tokens.DefaultTTL.Duration).To(Equal(2 * time.Hour))
	g.Expect(admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, deploy)).To(Succeed())
	g.Expect(deploy.Spec.Template.Annotations["checksum/config"]).NotTo(Equal(checksum))

	// Invalid values: refused by the schema, nothing changes.
	out, err = h.run("upgrade", name, chartDir, "--namespace", ns, "--reuse-values", "--set", "config.signing.algorithm=HS256")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("at '/config/signing/algorithm': value must be one of 'ES256', 'RS256', 'EdDSA'"))
	var history []map[string]any
	g.Expect(json.Unmarshal([]byte(h.must("history", name, "--namespace", ns, "-o", "json")), &history)).To(Succeed())
	g.Expect(history).To(HaveLen(2), "no revision for the refused upgrade")

	// Uninstall: the operator goes, the CRDs (and so every OAuthClient) stay.
	out = h.must("uninstall", name, "--namespace", ns)
	g.Expect(out).To(ContainSubstring("These resources were kept due to the resource policy"))
	err = admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &appsv1.Deployment{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Deployment is deleted: %v", err)
	for _, crd := range []string{"oauthapis.oauth.operator.dev", "oauthclients.oauth.operator.dev", "oauthtrustedissuers.oauth.operator.dev"} {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("apiextensions.k8s.io/v1")
		u.SetKind("CustomResourceDefinition")
		g.Expect(admin.Get(ctx, types.NamespacedName{Name: crd}, u)).To(Succeed(), "CRD %s is kept", crd)
		g.Expect(u.GetDeletionTimestamp()).To(BeNil(), "CRD %s is kept", crd)
	}
}
