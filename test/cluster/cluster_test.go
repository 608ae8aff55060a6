//go:build cluster

package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// The suite's clients, in the test namespace, and the probe pod of each.
const clientsYAML = `
apiVersion: oauth.operator.dev/v1alpha1
kind: OAuthClient
metadata: {name: ct-secret, namespace: cluster-test}
spec:
  audiences: [back-office]
  scopes: [users:read]
  secretRotation: {gracePeriod: 1h}
---
apiVersion: oauth.operator.dev/v1alpha1
kind: OAuthClient
metadata: {name: ct-key, namespace: cluster-test}
spec:
  audiences: [back-office]
  scopes: [users:read]
  secretRotation: {gracePeriod: 1h}
  authentication: {method: PrivateKeyJWT}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ct-sa, namespace: cluster-test}
---
apiVersion: oauth.operator.dev/v1alpha1
kind: OAuthClient
metadata: {name: ct-sa, namespace: cluster-test}
spec:
  audiences: [back-office]
  scopes: [users:read]
  authentication: {method: ServiceAccountToken, serviceAccountName: ct-sa}
---
apiVersion: oauth.operator.dev/v1alpha1
kind: OAuthClient
metadata: {name: ct-storefront, namespace: cluster-test}
spec:
  audiences: [storefront]
  scopes: [catalog:read]
`

const probeYAML = `
apiVersion: v1
kind: Pod
metadata: {name: {{.Name}}, namespace: cluster-test, labels: {app: probe}}
spec:
  {{- if .ServiceAccount}}
  serviceAccountName: {{.ServiceAccount}}
  {{- end}}
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 2
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: probe
      image: {{.Image}}
      imagePullPolicy: IfNotPresent
      args:
      {{- range .Args}}
        - {{.}}
      {{- end}}
      ports: [{name: stats, containerPort: 8080}]
      readinessProbe:
        httpGet: {path: /stats, port: stats}
        periodSeconds: 2
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL]}
      volumeMounts:
        - {name: client, mountPath: /etc/oauth-client, readOnly: true}
        {{- if .ServiceAccount}}
        - {name: oauth-token, mountPath: /var/run/secrets/oauth, readOnly: true}
        {{- end}}
        {{- if .CA}}
        - {name: ca, mountPath: /etc/ca, readOnly: true}
        {{- end}}
  volumes:
    - name: client
      secret: {secretName: {{.Secret}}}
    {{- if .ServiceAccount}}
    - name: oauth-token
      projected:
        sources:
          - serviceAccountToken: {path: token, audience: "{{.Issuer}}", expirationSeconds: 3600}
    {{- end}}
    {{- if .CA}}
    - name: ca
      configMap: {name: {{.CA}}}
    {{- end}}
`

// probeSpec is one probe pod.
type probeSpec struct {
	Name, Secret, ServiceAccount, Audience, CA string
	API                                        bool // call the example API
	Expect                                     int  // the API's expected status
}

func startProbe(t *testing.T, s probeSpec) {
	t.Helper()
	args := []string{"--secret-dir=/etc/oauth-client", "--audience=" + s.Audience}
	if s.API {
		args = append(args, "--api-url="+apiSvc+"/api/users", fmt.Sprintf("--expect-status=%d", s.Expect))
	}
	if s.ServiceAccount != "" {
		args = append(args, "--sa-token-file=/var/run/secrets/oauth/token")
	}
	if s.CA != "" {
		args = append(args, "--ca-file=/etc/ca/ca.crt")
	}
	apply(t, probeYAML, map[string]any{
		"Name": s.Name, "Secret": s.Secret, "ServiceAccount": s.ServiceAccount, "CA": s.CA,
		"Image": probeImage, "Args": args, "Issuer": tokenSvc,
	})
}

// The probes of the methods: each gets a new token every round and calls the example
// API through its Service's DNS name.
var methodProbes = []probeSpec{
	{Name: "probe-secret", Secret: "ct-secret", Audience: "back-office", API: true, Expect: 200},
	{Name: "probe-sa", Secret: "ct-sa", ServiceAccount: "ct-sa", Audience: "back-office", API: true, Expect: 200},
	{Name: "probe-key", Secret: "ct-key", Audience: "back-office", API: true, Expect: 200},
	// A storefront token is refused by the back-office API.
	{Name: "probe-storefront", Secret: "ct-storefront", Audience: "storefront", API: true, Expect: 401},
}

func snapshot(t *testing.T) map[string]stats {
	t.Helper()
	m := map[string]stats{}
	for _, p := range methodProbes {
		m[p.Name] = mustStats(t, p.Name)
	}
	return m
}

// checkProbes waits for 20 more good rounds of each probe and fails on any failure since from.
func checkProbes(t *testing.T, from map[string]stats) {
	t.Helper()
	for _, p := range methodProbes {
		now := waitRounds(t, p.Name, from[p.Name], 20, 2*time.Minute)
		noNewFailures(t, p.Name, from[p.Name], now)
	}
}

// TestCluster runs the steps in order: each builds on the cluster state the previous
// ones left (clients, probes, a reinstalled chart).
func TestCluster(t *testing.T) {
	diagnoseOnFailure(t)
	var originalValues string
	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"operator runs 2 replicas as uid 65532 with a read-only root", testOperatorPods},
		{"each method gets tokens and calls the API through Services and DNS", testMethods},
		{"secret and key rotation under load", testRotation},
		{"rollout restart under load", testRolloutRestart},
		{"leader deleted: a new leader reconciles within the lease", testLeaderDeleted},
		{"helm upgrade with a changed value", func(t *testing.T) { originalValues = testUpgrade(t) }},
		{"TLS certificate replaced in place", testTLSReload},
		{"helm uninstall keeps CRDs, clients and Secrets", func(t *testing.T) { testUninstall(t, originalValues) }},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			t.Fatalf("step %q failed; the later steps depend on it", s.name)
		}
	}
}

// testOperatorPods: the chart's Deployment, defaults unchanged, has 2 ready replicas,
// and in each pod the manager process runs as 65532:65532 on a read-only root, as the
// kernel sees it: an ephemeral container in the manager's process namespace reads
// /proc/<manager>/status and mountinfo.
func testOperatorPods(t *testing.T) {
	d := rolledOut(t, 3*time.Minute)
	if *d.Spec.Replicas != 2 || d.Status.ReadyReplicas != 2 {
		t.Fatalf("the operator's Deployment: %d replicas, %d ready; the chart's default is 2", *d.Spec.Replicas, d.Status.ReadyReplicas)
	}
	ctx := ctxFor(t, 5*time.Minute)
	pods, err := operatorPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		name := fmt.Sprintf("inspect-%d", time.Now().UnixNano()%1e6)
		ec := corev1.EphemeralContainer{
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: name, Image: probeImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"/probe", "--inspect=/manager"},
				SecurityContext: &corev1.SecurityContext{
					RunAsUser: &[]int64{65532}[0], RunAsNonRoot: &[]bool{true}[0], AllowPrivilegeEscalation: &[]bool{false}[0],
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			},
			TargetContainerName: "manager",
		}
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, ec)
		if _, err := kube.CoreV1().Pods(operatorNS).UpdateEphemeralContainers(ctx, p.Name, &p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("add an ephemeral container to %s: %v", p.Name, err)
		}
		var out string
		eventually(t, "the inspection of "+p.Name, 2*time.Minute, func(ctx context.Context) (bool, string) {
			cur, err := kube.CoreV1().Pods(operatorNS).Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, s := range cur.Status.EphemeralContainerStatuses {
				if s.Name == name && s.State.Terminated != nil {
					b, err := kube.CoreV1().Pods(operatorNS).GetLogs(p.Name, &corev1.PodLogOptions{Container: name}).DoRaw(ctx)
					out = string(b)
					return err == nil, fmt.Sprint(err)
				}
			}
			return false, podState(cur)
		})
		var got struct {
			PID              int    `json:"pid"`
			UID              string `json:"uid"`
			GID              string `json:"gid"`
			RootReadOnly     bool   `json:"rootReadOnly"`
			RootMountOptions string `json:"rootMountOptions"`
			Error            string `json:"error"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &got); err != nil || got.Error != "" {
			t.Fatalf("inspection of %s: %v %s: %q", p.Name, err, got.Error, out)
		}
		if got.UID != "65532 65532 65532 65532" || got.GID != "65532 65532 65532 65532" || !got.RootReadOnly {
			t.Errorf("pod %s: the manager (pid %d) runs with uid %q gid %q, root mount %q; want 65532 everywhere and a read-only root", p.Name, got.PID, got.UID, got.GID, got.RootMountOptions)
		} else {
			t.Logf("pod %s: manager pid %d, uid/gid %s, root mount %s", p.Name, got.PID, got.UID, got.RootMountOptions)
		}
	}
}

// testMethods: a pod per method gets tokens from the token server's Service and calls
// the example API's Service by DNS name: ClientSecret (the Secret as a volume),
// ServiceAccountToken (a projected token of the issuer's audience), PrivateKeyJWT (the
// generated key mounted): 200 each; a storefront token: 401.
func testMethods(t *testing.T) {
	ensureNamespace(t)
	apply(t, clientsYAML, nil)
	for _, c := range []string{"ct-secret", "ct-key", "ct-sa", "ct-storefront"} {
		clientReady(t, testNS, c, 2*time.Minute)
	}
	for _, p := range methodProbes {
		startProbe(t, p)
	}
	for _, p := range methodProbes {
		podRunning(t, p.Name, 3*time.Minute)
	}
	for _, p := range methodProbes {
		s := waitRounds(t, p.Name, stats{}, 20, 2*time.Minute)
		if s.Failed != 0 {
			t.Errorf("probe %s: %d of %d rounds failed: %v", p.Name, s.Failed, s.Requests, lastN(s.Failures, 5))
		} else {
			t.Logf("probe %s: %d rounds, all answered %d", p.Name, s.Requests, p.Expect)
		}
	}
}

// testRotation: the secret of ct-secret and the key of ct-key are rotated while their
// probes keep requesting. Once the kubelet has swapped each volume (its ..data link),
// the grace period is cut to 0, so only the new credential works: every later round
// proves the probe reads the new files. No round fails.
func testRotation(t *testing.T) {
	ctx := ctxFor(t, 10*time.Minute)
	before := snapshot(t)
	secretsBefore := map[string][32]byte{}
	for _, c := range []string{"ct-secret", "ct-key"} {
		s, err := kube.CoreV1().Secrets(testNS).Get(ctx, c, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		secretsBefore[c] = sha256.Sum256(append(s.Data["client_secret"], s.Data["private_key"]...))
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"oauth.operator.dev/rotate-secret":"%d"}}}`, time.Now().UnixNano())
		if err := patchClient(ctx, c, patch); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ client, probe string }{{"ct-secret", "probe-secret"}, {"ct-key", "probe-key"}} {
		eventually(t, c.client+"'s credential rotated", time.Minute, func(ctx context.Context) (bool, string) {
			s, err := kube.CoreV1().Secrets(testNS).Get(ctx, c.client, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return sha256.Sum256(append(s.Data["client_secret"], s.Data["private_key"]...)) != secretsBefore[c.client], "unchanged"
		})
		start := time.Now()
		eventually(t, "the kubelet's update of "+c.probe+"'s volume", 3*time.Minute, func(ctx context.Context) (bool, string) {
			s, err := readStats(ctx, c.probe)
			return err == nil && s.Volume != before[c.probe].Volume, fmt.Sprintf("volume %s, %v", s.Volume, err)
		})
		t.Logf("%s: the kubelet swapped the volume %s after the rotation", c.probe, time.Since(start).Round(time.Second))
		if err := patchClient(ctx, c.client, `{"spec":{"secretRotation":{"gracePeriod":"0s"}}}`); err != nil {
			t.Fatal(err)
		}
	}
	// The token server has the new grace period within a second; rounds from here on
	// can only succeed with the new credential.
	time.Sleep(2 * time.Second)
	checkProbes(t, before)
}

func patchClient(ctx context.Context, name, patch string) error {
	oc, err := oauthClient(ctx, testNS, name)
	if err != nil {
		return err
	}
	return k8s.Patch(ctx, oc, rawMerge(patch))
}

// testRolloutRestart: `kubectl rollout restart` of the operator while every probe
// requests tokens through the Service: every pod is replaced, no round fails.
func testRolloutRestart(t *testing.T) {
	ctx := ctxFor(t, 10*time.Minute)
	before := snapshot(t)
	old, err := operatorPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339))
	if _, err := kube.AppsV1().Deployments(operatorNS).Patch(ctx, release, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rolledOut(t, 5*time.Minute)
	t.Logf("rolled out in %s", time.Since(start).Round(time.Second))
	now, err := operatorPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range old {
		for _, n := range now {
			if o.UID == n.UID {
				t.Fatalf("pod %s was not replaced", o.Name)
			}
		}
	}
	checkProbes(t, before)
}

// testLeaderDeleted: the pod holding the Lease is deleted. Once it is gone (it stopped
// leading, at the latest, when its process ended), a client created then is reconciled
// (Ready, with its Secret) by the new leader, another pod, within the lease duration;
// no probe round fails meanwhile.
func testLeaderDeleted(t *testing.T) {
	ctx := ctxFor(t, 10*time.Minute)
	before := snapshot(t)
	// Right after a rollout the lease may still name a pod that is gone, or nobody
	// (a leader that stops releases it): wait until one of today's pods leads.
	var lease *coordinationv1.Lease
	leader := ""
	eventually(t, "an operator pod holds the lease", 2*time.Minute, func(ctx context.Context) (bool, string) {
		l, err := kube.CoordinationV1().Leases(operatorNS).Get(ctx, leaseName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pods, err := operatorPods(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range pods {
			if holderIs(l.Spec.HolderIdentity, p.Name) && p.DeletionTimestamp == nil {
				lease, leader = l, p.Name
				return true, ""
			}
		}
		return false, fmt.Sprintf("holder %q", ptr.Deref(l.Spec.HolderIdentity, ""))
	})
	leaseDuration := 15 * time.Second
	if lease.Spec.LeaseDurationSeconds != nil {
		leaseDuration = time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second
	}
	deleted := time.Now()
	if err := kube.CoreV1().Pods(operatorNS).Delete(ctx, leader, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the leader's pod gone", 2*time.Minute, func(ctx context.Context) (bool, string) {
		_, err := kube.CoreV1().Pods(operatorNS).Get(ctx, leader, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	gone := time.Now()
	apply(t, `
apiVersion: oauth.operator.dev/v1alpha1
kind: OAuthClient
metadata: {name: ct-after-leader, namespace: cluster-test}
spec: {audiences: [back-office]}
`, nil)
	clientReady(t, testNS, "ct-after-leader", 2*time.Minute)
	took := time.Since(gone)
	lease, err := kube.CoordinationV1().Leases(operatorNS).Get(ctx, leaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil || holderIs(lease.Spec.HolderIdentity, leader) {
		t.Errorf("the lease is held by %v after the leader %s is gone", lease.Spec.HolderIdentity, leader)
	}
	t.Logf("leader %s deleted; its pod was gone %s later; a client created then was Ready %s later, reconciled by the new leader %s (lease duration %s)",
		leader, gone.Sub(deleted).Round(100*time.Millisecond), took.Round(100*time.Millisecond), *lease.Spec.HolderIdentity, leaseDuration)
	if took > leaseDuration {
		t.Errorf("the new client was reconciled %s after the old leader was gone, more than the lease duration %s", took.Round(100*time.Millisecond), leaseDuration)
	}
	rolledOut(t, 3*time.Minute)
	checkProbes(t, before)
}

// holderIs says whether a Lease holder identity (controller-runtime's "<pod>_<uuid>") is the pod's.
func holderIs(holder *string, pod string) bool {
	return holder != nil && (*holder == pod || strings.HasPrefix(*holder, pod+"_"))
}

// testUpgrade: helm upgrade with changed values (tokens.maxTTL and defaultTTL 20m) rolls the pods
// without a failed round, and the new value is in force: every new token lives at
// most 20 minutes. It returns the release's values before the upgrade.
func testUpgrade(t *testing.T) string {
	values := helm(t, "get", "values", release, "-n", operatorNS, "-o", "yaml")
	before := snapshot(t)
	helm(t, "upgrade", release, "charts/oauth-client-operator", "-n", operatorNS, "--reuse-values",
		"--set", "config.tokens.maxTTL=20m", "--set", "config.tokens.defaultTTL=20m", "--wait", "--timeout", "5m")
	rolledOut(t, 3*time.Minute)
	eventually(t, "tokens of at most 20 minutes", 2*time.Minute, func(ctx context.Context) (bool, string) {
		s, err := readStats(ctx, "probe-secret")
		return err == nil && s.ExpiresIn > 0 && s.ExpiresIn <= 1200, fmt.Sprintf("expires_in %d, %v", s.ExpiresIn, err)
	})
	checkProbes(t, before)
	return values
}

// testTLSReload: with tokenServer.tls enabled (a Secret of ours), a probe gets tokens
// over HTTPS verified against our CA; the Secret is then replaced in place with a new
// certificate, and once the kubelet updates the volume the token server presents it,
// with the same pods (no restart) and no failed request.
func testTLSReload(t *testing.T) {
	ctx := ctxFor(t, 15*time.Minute)
	hosts := []string{release + "." + operatorNS + ".svc", release + "." + operatorNS + ".svc.cluster.local", release + "." + operatorNS}
	ca := newTestCA(t)
	certA, keyA, serialA := ca.issue(t, hosts)
	certB, keyB, serialB := ca.issue(t, hosts)
	caPEM := ca.pem
	tlsSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "ct-tls", Namespace: operatorNS},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": certA, "tls.key": keyA},
	}
	_ = kube.CoreV1().Secrets(operatorNS).Delete(ctx, "ct-tls", metav1.DeleteOptions{})
	if _, err := kube.CoreV1().Secrets(operatorNS).Create(ctx, tlsSecret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	caMap := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ct-tls-ca", Namespace: testNS}, Data: map[string]string{"ca.crt": string(caPEM)}}
	if _, err := kube.CoreV1().ConfigMaps(testNS).Create(ctx, caMap, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// The HTTP probes would fail from here on (the issuer becomes https://…): their
	// part is done.
	for _, p := range methodProbes {
		_ = kube.CoreV1().Pods(testNS).Delete(ctx, p.Name, metav1.DeleteOptions{})
	}
	helm(t, "upgrade", release, "charts/oauth-client-operator", "-n", operatorNS, "--reuse-values",
		"--set", "tokenServer.tls.enabled=true", "--set", "tokenServer.tls.secretName=ct-tls", "--wait", "--timeout", "5m")
	t.Cleanup(func() {
		helm(t, "upgrade", release, "charts/oauth-client-operator", "-n", operatorNS, "--reuse-values",
			"--set", "tokenServer.tls.enabled=false", "--set", "tokenServer.tls.secretName=", "--wait", "--timeout", "5m")
		_ = kube.CoreV1().Secrets(operatorNS).Delete(context.Background(), "ct-tls", metav1.DeleteOptions{})
	})
	rolledOut(t, 3*time.Minute)
	startProbe(t, probeSpec{Name: "probe-tls", Secret: "ct-secret", Audience: "back-office", CA: "ct-tls-ca"})
	podRunning(t, "probe-tls", 3*time.Minute)
	var first stats
	eventually(t, "tokens over HTTPS with the first certificate", 4*time.Minute, func(ctx context.Context) (bool, string) {
		s, err := readStats(ctx, "probe-tls")
		first = s
		return err == nil && strings.HasPrefix(s.TokenURL, "https://") && s.TLSSerial == serialA && s.OK > 0,
			fmt.Sprintf("token_url %q serial %s (want %s), ok %d failed %d %v %v", s.TokenURL, s.TLSSerial, serialA, s.OK, s.Failed, lastN(s.Failures, 2), err)
	})
	first = waitRounds(t, "probe-tls", first, 5, time.Minute)
	podsBefore, err := operatorPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := kube.CoreV1().Secrets(operatorNS).Get(ctx, "ct-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Data = map[string][]byte{"tls.crt": certB, "tls.key": keyB}
	if _, err := kube.CoreV1().Secrets(operatorNS).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, "the new certificate served", 4*time.Minute, func(ctx context.Context) (bool, string) {
		s, err := readStats(ctx, "probe-tls")
		return err == nil && s.TLSSerial == serialB, fmt.Sprintf("serial %s (want %s), %v", s.TLSSerial, serialB, err)
	})
	t.Logf("the new certificate was served %s after the Secret's update", time.Since(start).Round(time.Second))
	now := waitRounds(t, "probe-tls", first, 20, 2*time.Minute)
	noNewFailures(t, "probe-tls", first, now)
	podsAfter, err := operatorPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(podsAfter) != len(podsBefore) {
		t.Fatalf("%d operator pods before the certificate change, %d after", len(podsBefore), len(podsAfter))
	}
	for i := range podsBefore {
		found := false
		for _, a := range podsAfter {
			if a.UID == podsBefore[i].UID {
				found = true
				if restarts(&a) != restarts(&podsBefore[i]) {
					t.Errorf("pod %s restarted while the certificate changed", a.Name)
				}
			}
		}
		if !found {
			t.Errorf("pod %s was replaced while the certificate changed", podsBefore[i].Name)
		}
	}
	_ = kube.CoreV1().Pods(testNS).Delete(ctx, "probe-tls", metav1.DeleteOptions{})
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}

// testUninstall: helm uninstall keeps the CRDs, every OAuthClient and its Secret (same
// credential) and the signing keys; installing again with the same values takes over,
// and the kept credential gets tokens again.
func testUninstall(t *testing.T, values string) {
	ctx := ctxFor(t, 10*time.Minute)
	secret, err := kube.CoreV1().Secrets(testNS).Get(ctx, "ct-secret", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kube.CoreV1().Secrets(operatorNS).Get(ctx, "oauth-client-operator-signing-keys", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	helm(t, "uninstall", release, "-n", operatorNS, "--wait", "--timeout", "3m")
	eventually(t, "the operator's pods gone", 2*time.Minute, func(ctx context.Context) (bool, string) {
		pods, err := kube.CoreV1().Pods(operatorNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=oauth-client-operator"})
		return err == nil && len(pods.Items) == 0, fmt.Sprint(err)
	})
	for _, crd := range []string{"oauthclients.oauth.operator.dev", "oauthapis.oauth.operator.dev"} {
		if _, err := kube.Discovery().RESTClient().Get().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/" + crd).DoRaw(ctx); err != nil {
			t.Errorf("CRD %s after helm uninstall: %v", crd, err)
		}
	}
	for _, c := range []struct{ ns, name string }{{testNS, "ct-secret"}, {testNS, "ct-key"}, {testNS, "ct-sa"}, {"shop", "erp-sync"}} {
		if _, err := oauthClient(ctx, c.ns, c.name); err != nil {
			t.Errorf("OAuthClient %s/%s after helm uninstall: %v", c.ns, c.name, err)
		}
		if _, err := kube.CoreV1().Secrets(c.ns).Get(ctx, c.name, metav1.GetOptions{}); err != nil {
			t.Errorf("Secret %s/%s after helm uninstall: %v", c.ns, c.name, err)
		}
	}
	kept, err := kube.CoreV1().Secrets(testNS).Get(ctx, "ct-secret", metav1.GetOptions{})
	if err != nil || string(kept.Data["client_secret"]) != string(secret.Data["client_secret"]) {
		t.Errorf("ct-secret's credential changed or is gone after helm uninstall: %v", err)
	}
	keysKept, err := kube.CoreV1().Secrets(operatorNS).Get(ctx, "oauth-client-operator-signing-keys", metav1.GetOptions{})
	if err != nil || keysKept.UID != keys.UID {
		t.Errorf("the signing-key Secret is gone or new after helm uninstall: %v", err)
	}
	// Install again with the values of before the suite.
	// Not in t.TempDir(): helm splits -f at commas, and the test's name has one.
	f, err := os.CreateTemp("", "cluster-values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	valuesFile := f.Name()
	t.Cleanup(func() { _ = os.Remove(valuesFile) })
	if _, err := f.WriteString(values); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	helm(t, "install", release, "charts/oauth-client-operator", "-n", operatorNS, "-f", valuesFile, "--wait", "--timeout", "5m")
	rolledOut(t, 3*time.Minute)
	startProbe(t, methodProbes[0])
	podRunning(t, methodProbes[0].Name, 3*time.Minute)
	// The reinstalled Service has a new ClusterIP, and cluster DNS may answer the old
	// one for its cache time (30 s): rounds may fail until then. Once 20 have succeeded,
	// none may fail.
	s := waitRounds(t, methodProbes[0].Name, stats{}, 20, 2*time.Minute)
	t.Logf("after reinstalling, the kept credential got tokens; %d rounds failed before (%v)", s.Failed, lastN(s.Failures, 2))
	now := waitRounds(t, methodProbes[0].Name, s, 20, time.Minute)
	noNewFailures(t, methodProbes[0].Name, s, now)
	after, err := kube.CoreV1().Secrets(operatorNS).Get(ctx, "oauth-client-operator-signing-keys", metav1.GetOptions{})
	if err != nil || after.UID != keys.UID {
		t.Errorf("the reinstalled operator did not take over the signing-key Secret (a new one replaced it): %v", err)
	}
}
