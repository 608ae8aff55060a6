//go:build cluster

package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"testing"
	"text/template"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// apply creates (or replaces) the objects of a YAML template rendered with data.
func apply(t *testing.T, tmpl string, data any) {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	var buf bytes.Buffer
	if err := template.Must(template.New("").Parse(tmpl)).Execute(&buf, data); err != nil {
		t.Fatal(err)
	}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(&buf))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		err = k8s.Create(ctx, obj)
		if apierrors.IsAlreadyExists(err) {
			cur := &unstructured.Unstructured{}
			cur.SetGroupVersionKind(obj.GroupVersionKind())
			if err = k8s.Get(ctx, client.ObjectKeyFromObject(obj), cur); err == nil {
				obj.SetResourceVersion(cur.GetResourceVersion())
				err = k8s.Update(ctx, obj)
			}
		}
		if err != nil {
			t.Fatalf("apply %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
}

// oauthClient returns an OAuthClient (unstructured: the suite runs on any version of the API types).
func oauthClient(ctx context.Context, ns, name string) (*unstructured.Unstructured, error) {
	oc := &unstructured.Unstructured{}
	oc.SetAPIVersion("oauth.operator.dev/v1alpha1")
	oc.SetKind("OAuthClient")
	err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, oc)
	return oc, err
}

// clientReady waits until the OAuthClient's Ready condition is True and its Secret exists.
func clientReady(t *testing.T, ns, name string, timeout time.Duration) {
	t.Helper()
	eventually(t, "OAuthClient "+ns+"/"+name+" Ready", timeout, func(ctx context.Context) (bool, string) {
		oc, err := oauthClient(ctx, ns, name)
		if err != nil {
			return false, err.Error()
		}
		conds, _, _ := unstructured.NestedSlice(oc.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Ready" {
				if m["status"] != "True" {
					return false, fmt.Sprintf("Ready=%v: %v", m["status"], m["message"])
				}
				_, err := kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
				return err == nil, fmt.Sprint("secret: ", err)
			}
		}
		return false, "no Ready condition"
	})
}

// stats is the probe's report (test/cluster/probe).
type stats struct {
	Requests  int      `json:"requests"`
	OK        int      `json:"ok"`
	Failed    int      `json:"failed"`
	Failures  []string `json:"failures"`
	Volume    string   `json:"volume"`
	TokenURL  string   `json:"tokenURL"`
	ExpiresIn int64    `json:"expiresIn"`
	TLSSerial string   `json:"tlsSerial"`
}

// readStats reads a probe's /stats through the API server's pod proxy.
func readStats(ctx context.Context, pod string) (stats, error) {
	var s stats
	b, err := kube.CoreV1().Pods(testNS).ProxyGet("http", pod, "8080", "/stats", nil).DoRaw(ctx)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

func mustStats(t *testing.T, pod string) stats {
	t.Helper()
	var s stats
	eventually(t, "the stats of probe "+pod, time.Minute, func(ctx context.Context) (bool, string) {
		var err error
		s, err = readStats(ctx, pod)
		return err == nil, fmt.Sprint(err)
	})
	return s
}

// waitRounds waits until a probe has answered n more rounds as expected than in from.
func waitRounds(t *testing.T, pod string, from stats, n int, timeout time.Duration) stats {
	t.Helper()
	var s stats
	eventually(t, fmt.Sprintf("%d more good rounds of probe %s", n, pod), timeout, func(ctx context.Context) (bool, string) {
		var err error
		s, err = readStats(ctx, pod)
		if err != nil {
			return false, err.Error()
		}
		return s.OK >= from.OK+n, fmt.Sprintf("ok %d → %d, failed %d → %d, last failures %v", from.OK, s.OK, from.Failed, s.Failed, lastN(s.Failures, 3))
	})
	return s
}

func lastN(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// noNewFailures fails when a probe failed since from.
func noNewFailures(t *testing.T, pod string, from, now stats) {
	t.Helper()
	if now.Failed != from.Failed {
		t.Errorf("probe %s: %d failed rounds out of %d during this step; last failures:\n  %s",
			pod, now.Failed-from.Failed, now.Requests-from.Requests, strings.Join(lastN(now.Failures, now.Failed-from.Failed), "\n  "))
	} else {
		t.Logf("probe %s: %d rounds, 0 failed", pod, now.Requests-from.Requests)
	}
}

// operatorPods lists the operator's pods that are not terminating.
func operatorPods(ctx context.Context) ([]corev1.Pod, error) {
	pods, err := kube.CoreV1().Pods(operatorNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=oauth-client-operator"})
	if err != nil {
		return nil, err
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live, nil
}

// rolledOut waits until the operator's Deployment has all its replicas updated, ready
// and available, and no pod of an older ReplicaSet is left.
func rolledOut(t *testing.T, timeout time.Duration) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	eventually(t, "the operator's rollout", timeout, func(ctx context.Context) (bool, string) {
		var err error
		d, err = kube.AppsV1().Deployments(operatorNS).Get(ctx, release, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		want := *d.Spec.Replicas
		s := d.Status
		if s.ObservedGeneration < d.Generation || s.UpdatedReplicas != want || s.ReadyReplicas != want || s.AvailableReplicas != want || s.Replicas != want {
			return false, fmt.Sprintf("generation %d/%d, replicas %d updated %d ready %d available %d (want %d)",
				s.ObservedGeneration, d.Generation, s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas, want)
		}
		all, err := kube.CoreV1().Pods(operatorNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=oauth-client-operator"})
		if err != nil {
			return false, err.Error()
		}
		if len(all.Items) != int(want) {
			return false, fmt.Sprintf("%d pods, want %d (old ones still terminating)", len(all.Items), want)
		}
		return true, ""
	})
	return d
}

// ensureNamespace creates the test namespace afresh (labelled so the back-office API
// admits its clients).
func ensureNamespace(t *testing.T) {
	t.Helper()
	ctx := ctxFor(t, 3*time.Minute)
	err := kube.CoreV1().Namespaces().Delete(ctx, testNS, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	eventually(t, "namespace "+testNS+" gone", 2*time.Minute, func(ctx context.Context) (bool, string) {
		_, err := kube.CoreV1().Namespaces().Get(ctx, testNS, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNS, Labels: map[string]string{"oauth.operator.dev/back-office": "allowed"}}}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// podRunning waits until a pod of the test namespace runs with every container ready.
func podRunning(t *testing.T, name string, timeout time.Duration) {
	t.Helper()
	eventually(t, "pod "+testNS+"/"+name+" running", timeout, func(ctx context.Context) (bool, string) {
		p, err := kube.CoreV1().Pods(testNS).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true, ""
			}
		}
		return false, podState(p)
	})
}

func rawMerge(patch string) client.Patch { return client.RawPatch(types.MergePatchType, []byte(patch)) }

// testCA issues the token server's certificates in the TLS step.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "cluster-test CA"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a serving certificate for hosts, its key (PEM) and its serial number.
func (c *testCA) issue(t *testing.T, hosts []string) ([]byte, []byte, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: hosts[0]}, DNSNames: hosts,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), serial.String()
}
