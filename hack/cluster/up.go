package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// up runs the local cluster (or installs into CLUSTER_KUBECONFIG's) until ctx ends, then
// removes everything it started.
func up(ctx context.Context, p paths, external string) error {
	if external != "" {
		return upExternal(ctx, p, external)
	}
	if os.Geteuid() != 0 {
		return errors.New("the local node needs root (containerd, the kubelet, bridges, iptables): run as root, or set CLUSTER_KUBECONFIG to install into another cluster")
	}
	plan, err := planNetwork(envOr("CLUSTER_CIDR", "10.237.0.0/16"))
	if err != nil {
		return err
	}
	unlock, err := lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := cleanupStale(); err != nil {
		return fmt.Errorf("an earlier run's leftovers: %w", err)
	}
	if err := plan.checkFree(); err != nil {
		return err
	}
	if err := ensurePackages(); err != nil {
		return err
	}
	began := time.Now()
	bins, err := nodeBinaries(p)
	if err != nil {
		return err
	}
	type built struct {
		imgs *images
		err  error
	}
	imgc := make(chan built, 1)
	go func() {
		imgs, err := buildImages(ctx, p, bins)
		imgc <- built{imgs, err}
	}()

	if err := unmountUnder(p.run); err != nil {
		return err
	}
	if err := os.RemoveAll(p.run); err != nil {
		return err
	}
	if err := os.MkdirAll(p.logs, 0o755); err != nil {
		return err
	}
	st, err := recordHost(p.run)
	if err != nil {
		return err
	}
	var n *node
	defer func() {
		stopping := time.Now()
		logf("stopping: removing the pods, stopping the node's daemons, restoring the host")
		if n != nil {
			n.stop()
		}
		if err := restoreHost(st); err != nil {
			logf("restoring the host: %v", err)
			logf("run `go run ./hack/cluster down` to try again")
			return
		}
		_ = os.Remove(clusterFile)
		_ = os.Remove(hostFile)
		logf("stopped and cleaned up in %s", time.Since(stopping).Round(100*time.Millisecond))
	}()

	n, err = startNode(ctx, p, plan, bins)
	if err != nil {
		return err
	}
	b := <-imgc
	if b.err != nil {
		return b.err
	}
	if err := importImages(n.sock, b.imgs.tars); err != nil {
		return err
	}
	if err := n.startKubelet(ctx); err != nil {
		return err
	}
	t, err := newTarget(p, p.kubecfg, n.waitFor)
	if err != nil {
		return err
	}
	if err := t.installDNS(ctx, b.imgs.CoreDNS, plan.dnsIP.String()); err != nil {
		return err
	}
	ready, err := t.installProduct(ctx, b.imgs)
	if err != nil {
		return err
	}
	if err := writeJSON(clusterFile, clusterInfo{PID: os.Getpid(), Kubeconfig: p.kubecfg, Containerd: n.sock, Ready: ready}); err != nil {
		return err
	}
	logf("ready after %s; manager image %s (%.1f MiB tarball)", time.Since(began).Round(time.Second), b.imgs.Manager, float64(b.imgs.sizes["manager"])/(1<<20))
	fmt.Print(guide(p.kubecfg, filepath.Join(bins, "kubectl"), issuerOf(ready), t.tokenClusterIP(ctx), true))
	fmt.Println(ready)
	select {
	case <-ctx.Done():
		return nil
	case name := <-n.exited:
		return fmt.Errorf("%s stopped\n%s", name, n.proc(name).tail(30))
	}
}

// upExternal installs into the cluster of kubeconfig, loading the images with
// CLUSTER_IMAGE_LOAD, and uninstalls when ctx ends.
func upExternal(ctx context.Context, p paths, kubeconfig string) error {
	if _, err := os.Stat(kubeconfig); err != nil {
		return fmt.Errorf("CLUSTER_KUBECONFIG: %w", err)
	}
	if os.Getenv("CLUSTER_IMAGE_LOAD") == "" {
		return loadExternal(ctx, nil)
	}
	imgs, err := buildImages(ctx, p, "")
	if err != nil {
		return err
	}
	var tars []string
	for _, t := range imgs.tars {
		if filepath.Base(t) != "pause.tar" {
			tars = append(tars, t)
		}
	}
	if err := loadExternal(ctx, tars); err != nil {
		return err
	}
	wait := func(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) error {
		return poll(ctx, what, timeout, cond, nil)
	}
	t, err := newTarget(p, kubeconfig, wait)
	if err != nil {
		return err
	}
	defer func() {
		logf("removing what was installed")
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := t.uninstall(cctx); err != nil {
			logf("uninstall: %v", err)
		}
	}()
	ready, err := t.installProduct(ctx, imgs)
	if err != nil {
		return err
	}
	fmt.Print(guide(kubeconfig, "kubectl", issuerOf(ready), "", false))
	fmt.Println(ready)
	<-ctx.Done()
	return nil
}

// issuerOf reads token_service= from a ready line.
func issuerOf(ready string) string {
	for _, f := range strings.Fields(ready) {
		if v, ok := strings.CutPrefix(f, "token_service="); ok {
			return v
		}
	}
	return ""
}
