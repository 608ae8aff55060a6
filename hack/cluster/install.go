package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
)

// What `make cluster` installs, and where.
const (
	release       = "oauth-client-operator"
	operatorNS    = "oauth-system"
	workloadNS    = "shop"
	apiService    = "http://example-api.shop.svc:8080"
	clusterPrefix = "cluster-ready:"
)

//go:embed manifests/coredns.yaml
var corednsYAML string

//go:embed manifests/examples.yaml
var examplesYAML string

// workload is one example-client Deployment: the OAuthClient of config/samples whose
// Secret it mounts, and its ServiceAccount for a ServiceAccountToken client.
type workload struct {
	Name, Method, ServiceAccount string
}

var workloads = []workload{
	{Name: "erp-sync", Method: "ClientSecret"},
	{Name: "inventory", Method: "ServiceAccountToken", ServiceAccount: "inventory"},
	{Name: "reports", Method: "PrivateKeyJWT"},
}

// target is a cluster to install into: the local node's or CLUSTER_KUBECONFIG's.
type target struct {
	p          paths
	kubeconfig string
	cfg        *rest.Config
	kube       kubernetes.Interface
	c          client.Client
	wait       func(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) error
}

func newTarget(p paths, kubeconfig string, wait func(context.Context, string, time.Duration, func(context.Context) (bool, error)) error) (*target, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, err
	}
	return &target{p: p, kubeconfig: kubeconfig, cfg: cfg, kube: kube, c: c, wait: wait}, nil
}

// apply creates the objects of a YAML stream (a template rendered with data), or
// updates those that exist.
func (t *target) apply(ctx context.Context, tmpl string, data any) error {
	var buf bytes.Buffer
	if err := template.Must(template.New("").Parse(tmpl)).Execute(&buf, data); err != nil {
		return err
	}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(&buf))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return fmt.Errorf("%w\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		err = t.c.Create(ctx, obj)
		if apierrors.IsAlreadyExists(err) {
			cur := &unstructured.Unstructured{}
			cur.SetGroupVersionKind(obj.GroupVersionKind())
			if err = t.c.Get(ctx, client.ObjectKeyFromObject(obj), cur); err == nil {
				obj.SetResourceVersion(cur.GetResourceVersion())
				err = t.c.Update(ctx, obj)
			}
		}
		if err != nil {
			return fmt.Errorf("apply %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
}

// deploymentReady waits until a Deployment has rolled out all its replicas.
func (t *target) deploymentReady(ctx context.Context, ns, name string, timeout time.Duration) error {
	return t.wait(ctx, "deployment "+ns+"/"+name+" ready", timeout, func(ctx context.Context) (bool, error) {
		d, err := t.kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return rolledOut(d), nil
	})
}

func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.ReadyReplicas == want &&
		s.AvailableReplicas == want && s.Replicas == want
}

// helm runs bin/helm against the target.
func (t *target) helm(ctx context.Context, args ...string) error {
	bin := envOr("HELM", filepath.Join(t.p.root, "bin", "helm"))
	cmd := exec.CommandContext(ctx, bin, append(args, "--kubeconfig", t.kubeconfig)...)
	cmd.Dir = t.p.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// installDNS runs CoreDNS as the kube-dns Service.
func (t *target) installDNS(ctx context.Context, image, dnsIP string) error {
	logf("starting cluster DNS (CoreDNS as kube-dns at %s)", dnsIP)
	if err := t.apply(ctx, corednsYAML, map[string]string{"Image": image, "DNSIP": dnsIP, "Domain": dnsDomain}); err != nil {
		return err
	}
	return t.deploymentReady(ctx, "kube-system", "coredns", 3*time.Minute)
}

// installProduct installs the chart with the built image (only the image values set:
// the chart's defaults otherwise), the samples, the example API and the workloads, and
// waits until every workload has had a 200 from the API. It returns the ready line.
func (t *target) installProduct(ctx context.Context, imgs *images) (string, error) {
	repo, tag, _ := strings.Cut(imgs.Manager, ":")
	logf("helm install %s (image %s)", release, imgs.Manager)
	if err := t.helm(ctx, "upgrade", "--install", release, "charts/oauth-client-operator",
		"--namespace", operatorNS, "--create-namespace",
		"--set", "image.repository="+repo, "--set", "image.tag="+tag, "--set", "image.pullPolicy=IfNotPresent",
		"--wait", "--timeout", "5m"); err != nil {
		return "", err
	}
	if err := t.deploymentReady(ctx, operatorNS, release, 3*time.Minute); err != nil {
		return "", err
	}
	logf("applying config/samples, the example API and the workloads")
	if err := devenv.ApplyDir(ctx, t.c, filepath.Join(t.p.root, "config", "samples")); err != nil {
		return "", err
	}
	var issuer string
	if err := t.wait(ctx, "the sample client shop/erp-sync's Secret", 2*time.Minute, func(ctx context.Context) (bool, error) {
		s, err := t.kube.CoreV1().Secrets(workloadNS).Get(ctx, "erp-sync", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		issuer = string(s.Data["issuer"])
		return issuer != "", nil
	}); err != nil {
		return "", err
	}
	data := map[string]any{
		"ExampleAPI": imgs.ExampleAPI, "ExampleClient": imgs.ExampleClient,
		"Issuer": issuer, "APIService": apiService, "Workloads": workloads,
	}
	if err := t.apply(ctx, examplesYAML, data); err != nil {
		return "", err
	}
	deployments := []string{"example-api"}
	for _, w := range workloads {
		deployments = append(deployments, w.Name+"-client")
	}
	for _, d := range deployments {
		if err := t.deploymentReady(ctx, workloadNS, d, 3*time.Minute); err != nil {
			return "", err
		}
	}
	for _, w := range workloads {
		if err := t.wait(ctx, fmt.Sprintf("a 200 from the example API in the %s workload (%s)", w.Name, w.Method), 2*time.Minute, func(ctx context.Context) (bool, error) {
			return t.logsContain(ctx, workloadNS, "app="+w.Name+"-client", "200 OK"), nil
		}); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%s kubeconfig=%s namespace=%s token_service=%s api_service=%s", clusterPrefix, t.kubeconfig, operatorNS, issuer, apiService), nil
}

// logsContain says whether a pod of the selector has logged s.
func (t *target) logsContain(ctx context.Context, ns, selector, s string) bool {
	pods, err := t.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return false
	}
	for _, p := range pods.Items {
		b, err := t.kube.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err == nil && bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

// uninstall removes what installProduct added to a cluster of CLUSTER_KUBECONFIG: the
// workloads' and samples' namespace, the OAuthAPIs, the release, its namespace and the
// CRDs (kept by helm uninstall by design).
func (t *target) uninstall(ctx context.Context) error {
	var errs []error
	for _, ns := range []string{workloadNS, "cluster-test"} {
		if err := t.kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	for _, api := range []string{"back-office", "storefront"} {
		obj := &unstructured.Unstructured{}
		obj.SetAPIVersion("oauth.operator.dev/v1alpha1")
		obj.SetKind("OAuthAPI")
		obj.SetName(api)
		if err := t.c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, t.helm(ctx, "uninstall", release, "--namespace", operatorNS, "--ignore-not-found", "--wait"))
	if err := t.kube.CoreV1().Namespaces().Delete(ctx, operatorNS, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, err)
	}
	for _, crd := range []string{"oauthclients.oauth.operator.dev", "oauthapis.oauth.operator.dev"} {
		obj := &unstructured.Unstructured{}
		obj.SetAPIVersion("apiextensions.k8s.io/v1")
		obj.SetKind("CustomResourceDefinition")
		obj.SetName(crd)
		if err := t.c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// guide is what `make cluster` prints once everything is ready.
func guide(kubeconfig, kubectl, issuer, tokenClusterIP string, local bool) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("")
	if local {
		w("A single-node Kubernetes cluster runs on this machine (node %s), with the operator installed by its Helm chart.", nodeName)
	} else {
		w("The operator is installed in the cluster of %s.", kubeconfig)
	}
	w("")
	w("  export KUBECONFIG=%s", kubeconfig)
	w("  alias kubectl=%s   # the cluster's version", kubectl)
	w("  kubectl get pods -A")
	w("  kubectl -n shop get oauthclients")
	w("  kubectl -n shop logs deploy/erp-sync-client    # ClientSecret: the Secret mounted as a volume")
	w("  kubectl -n shop logs deploy/inventory-client   # ServiceAccountToken: a projected token (audience %s)", issuer)
	w("  kubectl -n shop logs deploy/reports-client     # PrivateKeyJWT: the generated key mounted")
	w("")
	w("Token server in the cluster: %s (example API: %s).", issuer, apiService)
	if tokenClusterIP != "" {
		w("From this machine, through the Service's ClusterIP:")
		w("  SECRET=$(kubectl -n shop get secret erp-sync -o jsonpath='{.data.client_secret}' | base64 -d)")
		w(`  curl -sS -X POST http://%s:8443/oauth2-token -d grant_type=client_credentials -d client_id=shop.erp-sync -d client_secret="$SECRET"`, tokenClusterIP)
		w("Run your own image next to it: make cluster-load IMAGE_TAR=<image tarball>, then imagePullPolicy: IfNotPresent.")
	}
	w("make test-cluster runs the end-to-end suite on it. Ctrl-C stops and removes everything.")
	return b.String()
}

// tokenClusterIP is the token-server Service's ClusterIP.
func (t *target) tokenClusterIP(ctx context.Context) string {
	svc, err := t.kube.CoreV1().Services(operatorNS).Get(ctx, release, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return svc.Spec.ClusterIP
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
