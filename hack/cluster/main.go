// Command cluster runs a real single-node Kubernetes cluster on this machine and
// installs the operator into it (`make cluster`), imports image tarballs into it
// (`make cluster-load`), and removes what a killed run left behind (`down`).
//
//	cluster [up]        start the node, build and import the images, install the chart,
//	                    the samples, the example API and one workload per authentication
//	                    method; print "cluster-ready: …"; Ctrl-C removes everything
//	cluster load TAR…   import image tarballs into the running node's containerd
//	cluster down        undo what a run that could not clean up left on the host
//
// The node: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd,
// kubelet, kube-proxy and CoreDNS, built from the Go module proxy (hack/cluster-binaries.sh)
// and Debian's containerd, runc and CNI plugins (installed when missing). Everything it
// changes on the host (links, routes, iptables rules, sysctls, mounts, network
// namespaces, cgroups) is recorded before the change and put back on stop.
//
// With CLUSTER_KUBECONFIG=<path> no node is started: the images are loaded with
// CLUSTER_IMAGE_LOAD (a command that gets each tarball's path as its last argument,
// e.g. "kind load image-archive") and everything is installed into that cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cluster: error:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	dir := fs.String("dir", envOr("CLUSTER_DIR", "bin/cluster"), "where binaries, images and the node's state are kept")
	root := fs.String("root", ".", "the repository's root")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cmd := "up"
	if fs.NArg() > 0 {
		cmd = fs.Arg(0)
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	p := newPaths(absRoot, absDir)
	switch cmd {
	case "up":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return up(ctx, p, os.Getenv("CLUSTER_KUBECONFIG"))
	case "load":
		if fs.NArg() < 2 {
			return errors.New("usage: cluster load TAR…")
		}
		return loadImages(fs.Args()[1:])
	case "down":
		return down()
	default:
		return fmt.Errorf("unknown command %q (up, load, down)", cmd)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// logf prints progress on stderr; stdout carries the guide and the ready line.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cluster: "+format+"\n", args...)
}
