// Package testenv starts the real kube-apiserver and etcd of envtest for the project's
// tests, with the project's CRDs installed.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Root is the repository's root folder.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// AssetsDir finds the kube-apiserver and etcd binaries: $KUBEBUILDER_ASSETS, else the
// newest folder hack/envtest-assets.sh left in bin/k8s.
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob(filepath.Join(Root(), "bin", "k8s", "*"))
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "kube-apiserver")); err == nil {
			return dirs[i], nil
		}
	}
	return "", fmt.Errorf("no envtest binaries: run `make envtest` (or set KUBEBUILDER_ASSETS)")
}

// Environment is a running control plane.
type Environment struct {
	*envtest.Environment
	Config *rest.Config
}

// Start starts etcd and kube-apiserver on loopback and installs the CRDs of
// config/crd/bases.
func Start() (*Environment, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(Root(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest control plane: %w", err)
	}
	return &Environment{Environment: env, Config: cfg}, nil
}

// Main runs a test package whose TestMain needs set-up and tear-down: run sets up,
// calls m.Run and tears down (deferred); an error it returns is printed and the
// process exits 1, else with m.Run's code.
func Main(run func() (int, error)) {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}
