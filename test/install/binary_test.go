//go:build integration

package install

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
)

// The manager binary starts with exactly the arguments, environment and config file the
// chart's Deployment gives it (listen addresses moved to loopback), becomes ready, and
// shuts down cleanly on SIGTERM: a renamed flag or config field would fail here, not
// in a user's cluster.
func TestManagerBinaryRunsWithChartDeployment(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	bins, err := devenv.BuildBinaries(context.Background(), root, filepath.Join(dir, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	bin := bins.Manager

	const ns = "oauth-binary"
	ensureNamespace(t, ns)
	objs := render(t, release{name: "oauth-client-operator", namespace: ns})
	d, c := manager(t, objs)

	// The config file, with the token server on loopback.
	cm := typed[corev1.ConfigMap](t, find(t, objs, "ConfigMap"))
	var cfg map[string]any
	g.Expect(yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg)).To(Succeed())
	tokenAddr, probeAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	cfg["issuer"] = "http://" + tokenAddr
	cfg["tokenServer"].(map[string]any)["address"] = tokenAddr
	data, err := yaml.Marshal(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	configFile := filepath.Join(dir, "config.yaml")
	g.Expect(os.WriteFile(configFile, data, 0o600)).To(Succeed())
	g.Expect(c.VolumeMounts).To(ContainElement(HaveField("MountPath", "/etc/oauth-client-operator/config.yaml")))

	var args []string
	for _, a := range c.Args {
		switch {
		case strings.HasPrefix(a, "--config="):
			a = "--config=" + configFile
		case strings.HasPrefix(a, "--metrics-bind-address="):
			a = "--metrics-bind-address=" + metricsAddr
		case strings.HasPrefix(a, "--health-probe-bind-address="):
			a = "--health-probe-bind-address=" + probeAddr
		}
		args = append(args, a)
	}

	user, err := env.AddUser(envtest.User{Name: "manager-binary", Groups: []string{"system:masters"}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	kubeconfig, err := user.KubeConfig()
	g.Expect(err).NotTo(HaveOccurred())
	kubeconfigFile := filepath.Join(dir, "kubeconfig")
	g.Expect(os.WriteFile(kubeconfigFile, kubeconfig, 0o600)).To(Succeed())
	environ := []string{"KUBECONFIG=" + kubeconfigFile, "HOME=" + dir}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			environ = append(environ, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			environ = append(environ, e.Name+"="+ns)
		case e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory":
			environ = append(environ, fmt.Sprintf("%s=%d", e.Name, c.Resources.Limits.Memory().Value()))
		default:
			t.Fatalf("env %s: a source the test does not emulate: %+v", e.Name, e.ValueFrom)
		}
	}

	cmd := exec.Command(bin, args...)
	cmd.Env = environ
	logs := &testenv.LogBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	g.Expect(cmd.Start()).To(Succeed())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if err := <-exited; err != nil {
			t.Logf("manager: %v", err)
		}
	})

	ready := func() (int, error) {
		select {
		case err := <-exited:
			exited <- err
			return 0, fmt.Errorf("manager exited: %v\n%s", err, logs.String())
		default:
		}
		resp, err := http.Get("http://" + probeAddr + "/readyz")
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	g.Eventually(ready, 60*time.Second, 200*time.Millisecond).Should(Equal(http.StatusOK), "logs:\n%s", logs)
	resp, err := http.Get("http://" + tokenAddr + "/.well-known/jwks.json")
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	resp, err = http.Get("http://" + metricsAddr + "/metrics")
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))

	// Graceful stop within the pod's termination grace period.
	g.Expect(cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
	grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	select {
	case err := <-exited:
		exited <- err
		g.Expect(err).NotTo(HaveOccurred(), "the manager exits 0 on SIGTERM; logs:\n%s", logs)
	case <-ctx.Done():
		t.Fatalf("the manager did not stop within the %s grace period; logs:\n%s", grace, logs)
	}
	g.Expect(logs.String()).To(ContainSubstring(`"level":"info"`), "JSON logs, as --zap-encoder=json asks")
}
